import ArgumentParser
import Detector
import Foundation
import ForewarnCore
import Logging
import ServiceLifecycle
import ServiceSupport

struct DetectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detector",
        abstract: "Consume readings from Kafka, run the anomaly models per machine, publish maintenance alerts.",
        discussion: """
        Instances share the readings topic through the consumer group (--group); a machine's state \
        lives with its partition and is checkpointed under --state-dir. Configuration: --config \
        (default /etc/forewarn/detector.yaml when it exists), FOREWARN_* environment, then flags.
        """)

    @Option(help: "YAML configuration file.") var config: String?
    @Option(help: "Kafka bootstrap servers (key kafka.bootstrap).") var kafka: String?
    @Option(help: "Directory of machine-type model files (key models).") var models: String?
    @Option(name: .customLong("state-dir"), help: "Checkpoint directory (key state-dir).") var stateDir: String?
    @Option(help: "HTTP endpoint for /metrics and /healthz, HOST:PORT or off (key http).") var http: String?
    @Option(help: "Consumer group shared by detector instances (key kafka.group).") var group: String?
    @Option(name: .customLong("set"), help: "Set any configuration key, KEY=VALUE (repeatable).") var settings: [String] = []
    @Flag(name: .customLong("check-config"), help: "Validate configuration and model files, then exit.") var checkConfig = false
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration, each value with its source (default, file:line, environment, flag), secrets masked, and exit.")
    var printConfig = false

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let overrides = configOverrides([("kafka.bootstrap", kafka, "--kafka"), ("models", models, "--models"), ("state-dir", stateDir, "--state-dir"),
                                         ("http", http, "--http"), ("kafka.group", group, "--group")], settings: settings)
        let file = configFile(config, name: "detector")
        if printConfig {
            printEffectiveConfiguration(command: "detector", file: file) { () throws(ConfigError) in
                try DetectorSettings.effectiveSettings(file: file, environment: env, overrides: overrides)
            }
        }
        let cfg: DetectorSettings
        let machineModels: MachineModels
        do {
            cfg = try DetectorSettings.load(file: file, environment: env, overrides: overrides)
            machineModels = try cfg.modelsDirectory.map { dir throws(ConfigError) in try MachineModels(directory: dir) } ?? MachineModels()
        } catch { fail("invalid configuration: \(error)", status: .config) }
        if checkConfig {
            print("configuration OK: kafka.bootstrap=\(cfg.bootstrap) group=\(cfg.group) models=\(cfg.modelsDirectory ?? "built-in") state-dir=\(cfg.stateDirectory)")
            for t in machineModels.types { print("  model \(t.name): machines \(t.machines), sensors \(t.template.sensors.map(\.name))") }
            return
        }
        // SIGHUP is a reload request (ReloadService), never the end of the process, even this early.
        signal(SIGHUP, SIG_IGN)
        let logger = Bootstrap.logging(level: cfg.logLevel, format: cfg.logFormat, label: "forewarn.detector")
        let registry = Bootstrap.metrics()
        let heartbeats = makeHeartbeats(environment: env)
        let service: DetectorService
        do { service = try DetectorService(settings: cfg, models: machineModels, logger: logger, heartbeats: heartbeats) } catch {
            failStarting("cannot start the detector", error)
        }
        let reloadConfiguration = makeConfigReloader(
            logger: logger, reloadable: [],
            running: (try? DetectorSettings.effectiveSettings(file: file, environment: env, overrides: overrides)) ?? [],
            load: { () throws(ConfigError) in try DetectorSettings.effectiveSettings(file: file, environment: env, overrides: overrides) })
        let modelsDirectory = cfg.modelsDirectory
        var services: [any Service] = [ReloadService {
            reloadConfiguration()
            reloadModels(directory: modelsDirectory, into: service, logger: logger)
        }]
        if let http = cfg.http {
            let status = service.status
            do {
                services.append(try HTTPServer(host: http.host, port: http.port, logger: logger, heartbeats: heartbeats,
                                               handler: Bootstrap.httpHandler(registry: registry, service: "detector", help: DetectorMetricHelp.help) {
                    let (ok, json) = status.report()
                    return HTTPResponse(status: ok ? 200 : 503, contentType: "application/json", body: json)
                }))
            } catch { failStarting("cannot start the detector", error) }
        }
        services.append(SystemdService(heartbeats: heartbeats, logger: logger))
        services.append(service)
        // On cancellation the detector still checkpoints (waiting up to 10 s for alert acks) and leaves the group.
        await runServices(services, name: "detector", logger: logger, maximumCancellationDuration: .seconds(25))
    }
}

/// SIGHUP: the model files again, from the directory in force. All of them or none: an invalid
/// file keeps the running models and is logged with its error.
private func reloadModels(directory: String?, into service: DetectorService, logger: Logger) {
    guard let directory else { return }
    do {
        let models = try MachineModels(directory: directory)
        service.reload(models: models)
        logger.notice("SIGHUP: model files reloaded from \(directory): \(models.types.map { "\($0.name) (\(($0.file as NSString).lastPathComponent))" }.joined(separator: ", "))")
    } catch {
        logger.error("SIGHUP: a model file is invalid, keeping the running models: \(error)")
    }
}
