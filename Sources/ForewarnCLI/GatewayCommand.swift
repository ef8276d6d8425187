import ArgumentParser
import Foundation
import ForewarnCore
import Gateway
import Logging
import ServiceLifecycle
import ServiceSupport

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Subscribe to MQTT readings, journal them durably in SQLite, and forward them to Kafka.",
        discussion: """
        Configuration comes from --config (default /etc/forewarn/gateway.yaml when it exists), then FOREWARN_* \
        environment variables (FOREWARN_MQTT_URL sets mqtt.url), then flags. With no file at all it runs on \
        local-demo defaults: MQTT on 127.0.0.1:1883, Kafka on 127.0.0.1:9092. See README.md for every key.
        """)

    @Option(help: "YAML configuration file.") var config: String?
    @Option(help: "MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (key mqtt.url).") var mqtt: String?
    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (key kafka.bootstrap).") var kafka: String?
    @Option(name: .customLong("state-dir"), help: "Directory for the journal (key state-dir).") var stateDir: String?
    @Option(help: "HTTP endpoint for /metrics and /healthz, HOST:PORT or off (key http).") var http: String?
    @Option(name: .customLong("set"), help: "Set any configuration key, KEY=VALUE (repeatable), e.g. --set journal.max-bytes=64MiB.")
    var settings: [String] = []
    @Flag(name: .customLong("check-config"), help: "Validate the configuration, print it, and exit.") var checkConfig = false
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration, each value with its source (default, file:line, environment, flag), secrets masked, and exit.")
    var printConfig = false

    /// Test hook: the forwarder makes librdkafka raise a fatal error with this reason once Kafka has answered.
    static let injectFatalKafkaErrorVariable = "FOREWARN_TEST_INJECT_FATAL_KAFKA_ERROR"

    func run() async throws {
        Bootstrap.limitMallocArenas()
        let env = ProcessInfo.processInfo.environment
        let overrides = configOverrides([("mqtt.url", mqtt, "--mqtt"), ("kafka.bootstrap", kafka, "--kafka"),
                                         ("state-dir", stateDir, "--state-dir"), ("http", http, "--http")], settings: settings)
        let file = configFile(config, name: "gateway")
        if printConfig {
            printEffectiveConfiguration(command: "gateway", file: file) { () throws(ConfigError) in
                try GatewayConfiguration.effectiveSettings(file: file, environment: env, overrides: overrides)
            }
        }

        let cfg: GatewayConfiguration
        do { cfg = try GatewayConfiguration.load(file: file, environment: env, overrides: overrides) } catch {
            fail("invalid configuration: \(error)", status: .config)
        }
        if checkConfig {
            print("configuration OK\(file.map { " (\($0))" } ?? " (defaults, no file)")")
            print("  gateway.id=\(cfg.gatewayID) mqtt.url=\(cfg.mqtt.url) topic=\(cfg.mqtt.topicTemplate) kafka.bootstrap=\(cfg.kafka.bootstrap)")
            print("  state-dir=\(cfg.stateDirectory) http=\(cfg.http.map(\.description) ?? "off") journal.full-policy=\(cfg.journal.fullPolicy.rawValue) journal.max-bytes=\(cfg.journal.maxBytes)")
            print("  mqtt.password=\(cfg.mqtt.password == nil ? "unset" : "set (hidden)")")
            return
        }

        // SIGHUP is a reload request (ReloadService), never the end of the process, even this early.
        signal(SIGHUP, SIG_IGN)
        let logger = Bootstrap.logging(level: cfg.logLevel, format: cfg.logFormat, label: "forewarn.gateway")
        let registry = Bootstrap.metrics()
        let heartbeats = makeHeartbeats(environment: env)
        let gateway: GatewayServices
        do {
            gateway = try GatewayServices(config: cfg, logger: logger, heartbeats: heartbeats,
                                          injectFatalKafkaError: env[Self.injectFatalKafkaErrorVariable])
        } catch {
            failStarting("cannot start the gateway", error)
        }
        let health = gateway.health
        var services: [any Service] = [ReloadService(reload: makeConfigReloader(
            logger: logger, reloadable: ["health.grace"],
            running: (try? GatewayConfiguration.effectiveSettings(file: file, environment: env, overrides: overrides)) ?? [],
            load: { () throws(ConfigError) in try GatewayConfiguration.effectiveSettings(file: file, environment: env, overrides: overrides) },
            apply: { changes in
                for c in changes where c.key == "health.grace" { if let d = ConfigReader.parseDuration(c.value) { health.grace = d } }
            }))]
        if let http = cfg.http {
            let g = gateway
            do {
                services.append(try HTTPServer(host: http.host, port: http.port, logger: logger, heartbeats: heartbeats,
                                               handler: Bootstrap.httpHandler(registry: registry, service: "gateway", help: GatewayMetricHelp.help,
                                                                               health: { g.healthResponse() })))
            } catch { failStarting("cannot start the gateway", error) }
        }
        services.append(SystemdService(heartbeats: heartbeats, logger: logger))
        services.append(gateway.forwarder)
        services.append(gateway.ingest)
        logger.info("gateway starting", metadata: ["gateway_id": "\(cfg.gatewayID)", "state_dir": "\(cfg.stateDirectory)"])
        // On cancellation the forwarder still drains for up to kafka.flush-timeout.
        await runServices(services, name: "gateway", logger: logger, maximumCancellationDuration: cfg.kafka.flushTimeout + .seconds(10))
        logger.info("gateway stopped")
    }
}
