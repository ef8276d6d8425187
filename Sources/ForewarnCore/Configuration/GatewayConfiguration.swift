import Foundation

/// What the journal does when it reaches `journal.max-bytes`.
public enum JournalFullPolicy: String, Sendable, CaseIterable {
    /// Delete the oldest journaled readings to make room; drops are counted per machine.
    case dropOldest = "drop-oldest"
    /// Stop reading MQTT until the journal drains, so the broker holds data for the persistent session.
    case backpressure
}

public enum MQTTProtocolVersion: String, Sendable, CaseIterable {
    case v311 = "3.1.1"
    case v5 = "5"
}

/// SQLite durability of a group commit: `full` survives power loss, `normal` survives a process crash.
public enum JournalSynchronous: String, Sendable, CaseIterable {
    case full
    case normal
}

/// An MQTT broker address: `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS).
public struct MQTTURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var tls: Bool

    public init(host: String, port: Int, tls: Bool) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    public var description: String { "\(tls ? "mqtts" : "mqtt")://\(host):\(port)" }

    public static func parse(_ raw: String, key: String) throws(ConfigError) -> MQTTURL {
        let tls: Bool
        let rest: Substring
        if raw.hasPrefix("mqtt://") { tls = false; rest = raw.dropFirst(7) }
        else if raw.hasPrefix("mqtts://") { tls = true; rest = raw.dropFirst(8) }
        else { throw ConfigError(key: key, "'\(raw)' must start with mqtt:// or mqtts://") }
        let hostPort = rest.hasSuffix("/") ? String(rest.dropLast()) : String(rest)
        if !hostPort.contains(":") {
            guard !hostPort.isEmpty else { throw ConfigError(key: key, "'\(raw)' has no host") }
            return MQTTURL(host: hostPort, port: tls ? 8883 : 1883, tls: tls)
        }
        let hp = try HostPort.parse(hostPort, key: key)
        return MQTTURL(host: hp.host, port: hp.port, tls: tls)
    }
}

/// Everything the gateway needs. Each field documents its default; `load` validates
/// at start-up and names the key of the first problem.
public struct GatewayConfiguration: Sendable {
    /// `gateway.id`: stamped on every Kafka record as the `gateway` header. Default: the host name.
    public var gatewayID: String
    /// `gateway.site`: the site for topics whose template has no `{site}`. Default `default`.
    public var defaultSite: String
    /// `state-dir`: where the journal lives. Default `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/forewarn`, else `~/.local/state/forewarn`.
    public var stateDirectory: String
    /// `http`: the `/metrics` and `/healthz` endpoint, `HOST:PORT` or `off`. Default `127.0.0.1:9464`.
    public var http: HostPort?
    /// `log-level`: trace, debug, info, notice, warning, error, critical. Default `info`.
    public var logLevel: String
    /// `log-format`: `text` (default) or `json`, one object a line with the same fields.
    public var logFormat: String

    public var mqtt: MQTT
    public var kafka: Kafka
    public var journal: Journal
    public var health: Health

    public struct MQTT: Sendable {
        /// `mqtt.url`: default `mqtt://127.0.0.1:1883`. `mqtts://` turns TLS on.
        public var url: MQTTURL
        /// `mqtt.client-id`: fixed so the broker keeps the persistent session. Default `forewarn-<gateway.id>`.
        public var clientID: String
        /// `mqtt.topic-template`: default `factory/{site}/{machine}/{sensor}`.
        public var topicTemplate: TopicTemplate
        /// `mqtt.protocol`: `3.1.1` or `5`. Default `3.1.1`.
        public var protocolVersion: MQTTProtocolVersion
        /// `mqtt.clean-session`: default false (persistent session: the broker queues QoS 1 while we are away).
        public var cleanSession: Bool
        /// `mqtt.keepalive`: default 30s.
        public var keepalive: Duration
        /// `mqtt.reconnect-min` / `mqtt.reconnect-max`: reconnect backoff bounds. Defaults 500ms and 30s.
        public var reconnectMin: Duration
        public var reconnectMax: Duration
        /// `mqtt.max-payload-bytes`: larger payloads are dead-lettered. Default 65536.
        public var maxPayloadBytes: Int
        /// `mqtt.username`; the password comes from `mqtt.password-file` or `FOREWARN_MQTT_PASSWORD`, never from the file itself.
        public var username: String?
        public var password: String?
        /// `mqtt.tls.ca-file`, `mqtt.tls.cert-file`, `mqtt.tls.key-file`: TLS trust and client certificate.
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        /// `mqtt.tls.insecure`: skip host-name verification (never in production). Default false.
        public var tlsInsecure: Bool
    }

    public struct Kafka: Sendable {
        /// `kafka.bootstrap`: default `127.0.0.1:9092`.
        public var bootstrap: String
        /// `kafka.readings-topic`: default `forewarn.readings`.
        public var readingsTopic: String
        /// `kafka.deadletter-topic`: default `forewarn.deadletter`.
        public var deadletterTopic: String
        /// `kafka.max-in-flight`: journal entries handed to librdkafka and not yet reported. Default 2500
        /// (5000 drained a 1,000,000-entry backlog no faster and held ~2 MiB more at the peak, 10000 ~1.5 MiB
        /// more again: the records and the request buffers that copy them; docs/benchmarks.md, session 11).
        public var maxInFlight: Int
        /// `kafka.flush-timeout`: how long SIGTERM waits for outstanding deliveries. Default 10s.
        public var flushTimeout: Duration
        /// `kafka.properties.*`: passed to librdkafka as they are (SASL, TLS, ...).
        public var properties: [String: String]
    }

    public struct Journal: Sendable {
        /// `journal.commit-every`: group commit after this many entries. Default 200.
        public var commitEvery: Int
        /// `journal.commit-interval`: or after this long. Default 20ms. Bounds the crash loss window.
        public var commitInterval: Duration
        /// `journal.commit-when-idle`: also commit as soon as no more MQTT input is queued on the
        /// socket (nothing would join the group by waiting). Default true. false commits only on
        /// `commit-every` or `commit-interval`.
        public var commitWhenIdle: Bool
        /// `journal.commit-min-gap`: an idle commit waits until the previous commit is this long
        /// ago, which caps the commit rate (CPU and syncs) under steady load. Default 2ms;
        /// at most `commit-interval`. 0 commits at once.
        public var commitMinGap: Duration
        /// `journal.max-bytes`: bound on journaled payload bytes. Default 1GiB.
        public var maxBytes: Int64
        /// `journal.max-age`: entries older than this are dropped (counted, reason `max-age`). Default 7d.
        public var maxAge: Duration
        /// `journal.full-policy`: `drop-oldest` or `backpressure`. Default `backpressure`.
        public var fullPolicy: JournalFullPolicy
        /// `journal.resume-at`: under backpressure, resume MQTT when bytes fall below this fraction of max. Default 0.8.
        public var resumeFraction: Double
        /// `journal.synchronous`: `full` or `normal`. Default `full`.
        public var synchronous: JournalSynchronous
        /// `journal.min-free-bytes`: the free-space reserve on the state directory's file system.
        /// MQTT intake stops while less than this is free (counting free pages inside the journal
        /// file) and resumes at 1.5 times it; the WAL is kept within a quarter of it. It must cover
        /// the readings in flight when intake stops plus SQLite's room for deletes and checkpoints.
        /// Default 64MiB, at least 64KiB.
        public var minFreeBytes: Int64
        /// `journal.ballast-bytes`: a file of this size (`journal.ballast` in the state directory)
        /// that holds room back for SQLite. When a write, delete or checkpoint fails because the
        /// disk is full (intake can outrun the WAL budget), or intake is paused with less than one
        /// WAL budget free, the gateway deletes it, so the drain's deletes and the checkpoint can
        /// commit; it is made again once the file system has the ballast plus 0.75 ×
        /// `min-free-bytes` free. Default half of `min-free-bytes` (two WAL budgets), at least 256KiB;
        /// 0 turns it off; other values below 256KiB are refused.
        public var ballastBytes: Int64 = 0

        /// The smallest ballast accepted (other than 0): with 32KiB at a 64KiB reserve the gateway
        /// stayed paused with accepted readings it could not write (docs/durability.md).
        public static let minimumBallastBytes: Int64 = 256 << 10
    }

    public struct Health: Sendable {
        /// `health.grace`: how long Kafka or MQTT may be unreachable, or drops recent, before /healthz says 503. Default 30s.
        public var grace: Duration
    }

    /// Every key this configuration understands (for unknown-key errors and environment names).
    public static let knownKeys: [String] = {
        var reader = ConfigReader(ConfigSource())
        _ = try? GatewayConfiguration.read(&reader, environment: [:])
        return reader.knownKeys.sorted()
    }()

    /// Loads from an optional YAML file, the environment, and flag overrides (key → value), then validates.
    public static func load(file: String?, environment: [String: String], overrides: [(key: String, value: String, flag: String)]) throws(ConfigError) -> GatewayConfiguration {
        let source = try ConfigSource.gather(file: file, environment: environment, knownKeys: knownKeys, overrides: overrides)
        var reader = ConfigReader(source)
        let config = try read(&reader, environment: environment)
        try source.checkUnknownKeys(known: reader.knownKeys, openPrefixes: ["kafka.properties"])
        return config
    }

    /// The effective configuration for `--print-config`: every key, its value and its source,
    /// and `mqtt.password` (masked when shown). Fails like `load` on an invalid configuration.
    public static func effectiveSettings(file: String?, environment: [String: String],
                                         overrides: [(key: String, value: String, flag: String)]) throws(ConfigError) -> [EffectiveSetting] {
        let source = try ConfigSource.gather(file: file, environment: environment, knownKeys: knownKeys, overrides: overrides)
        var reader = ConfigReader(source)
        let config = try read(&reader, environment: environment)
        try source.checkUnknownKeys(known: reader.knownKeys, openPrefixes: ["kafka.properties"])
        let passwordSource = source.entries["mqtt.password-file"].map { "file named by mqtt.password-file (\($0.origin))" }
            ?? (environment["FOREWARN_MQTT_PASSWORD"] != nil ? "environment FOREWARN_MQTT_PASSWORD" : "default")
        return reader.effectiveSettings(openPrefixes: ["kafka.properties"])
            + [EffectiveSetting(key: "mqtt.password", value: config.mqtt.password ?? "none", source: passwordSource)]
    }

    static func read(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> GatewayConfiguration {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "gateway"
        let gatewayID = r.string("gateway.id", default: host)
        do { try Identifier.validate(gatewayID, field: "gateway.id") } catch { throw ConfigError(key: "gateway.id", error.detail) }
        let site = r.string("gateway.site", default: "default")
        do { try Identifier.validate(site, field: "gateway.site") } catch { throw ConfigError(key: "gateway.site", error.detail) }

        let stateDir = r.string("state-dir", default: defaultStateDirectory(environment))
        let http = try r.listenAddress("http", default: HostPort(host: "127.0.0.1", port: 9464))
        let logLevel = try r.logLevel()
        let logFormat = try r.logFormat()

        let url = try MQTTURL.parse(r.string("mqtt.url", default: "mqtt://127.0.0.1:1883"), key: "mqtt.url")
        let templateText = r.string("mqtt.topic-template", default: "factory/{site}/{machine}/{sensor}")
        let template: TopicTemplate
        do { template = try TopicTemplate(templateText) } catch { throw ConfigError(key: "mqtt.topic-template", error.description) }
        var password = environment["FOREWARN_MQTT_PASSWORD"]
        if let file = r.optionalString("mqtt.password-file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigError(key: "mqtt.password-file", "cannot read \(file)")
            }
            password = text.trimmingCharacters(in: .newlines)
        }
        let mqtt = MQTT(
            url: url,
            clientID: r.string("mqtt.client-id", default: "forewarn-\(gatewayID)"),
            topicTemplate: template,
            protocolVersion: try r.choice("mqtt.protocol", default: .v311),
            cleanSession: try r.bool("mqtt.clean-session", default: false),
            // MQTT carries the keepalive as 16-bit seconds.
            keepalive: try r.duration("mqtt.keepalive", default: .seconds(30), min: .seconds(5), max: .seconds(65_535)),
            reconnectMin: try r.duration("mqtt.reconnect-min", default: .milliseconds(500), min: .milliseconds(10)),
            reconnectMax: try r.duration("mqtt.reconnect-max", default: .seconds(30), min: .milliseconds(10)),
            maxPayloadBytes: try r.int("mqtt.max-payload-bytes", default: 65_536, range: 16...16_777_216),
            username: r.optionalString("mqtt.username"),
            password: password,
            caFile: r.optionalString("mqtt.tls.ca-file"),
            certFile: r.optionalString("mqtt.tls.cert-file"),
            keyFile: r.optionalString("mqtt.tls.key-file"),
            tlsInsecure: try r.bool("mqtt.tls.insecure", default: false))
        if (mqtt.certFile == nil) != (mqtt.keyFile == nil) {
            throw ConfigError(key: mqtt.certFile == nil ? "mqtt.tls.cert-file" : "mqtt.tls.key-file", "client certificates need both mqtt.tls.cert-file and mqtt.tls.key-file")
        }
        for (key, path) in [("mqtt.tls.ca-file", mqtt.caFile), ("mqtt.tls.cert-file", mqtt.certFile), ("mqtt.tls.key-file", mqtt.keyFile)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigError(key: key, "cannot read \(path)")
            }
        }
        if mqtt.reconnectMax < mqtt.reconnectMin {
            throw ConfigError(key: "mqtt.reconnect-max", "must not be below mqtt.reconnect-min")
        }

        r.markKnown("kafka.properties")
        let kafka = Kafka(
            bootstrap: r.string("kafka.bootstrap", default: "127.0.0.1:9092"),
            readingsTopic: r.string("kafka.readings-topic", default: "forewarn.readings"),
            deadletterTopic: r.string("kafka.deadletter-topic", default: "forewarn.deadletter"),
            maxInFlight: try r.int("kafka.max-in-flight", default: 2_500, range: 1...1_000_000),
            flushTimeout: try r.duration("kafka.flush-timeout", default: .seconds(10)),
            properties: r.source.values(under: "kafka.properties"))
        if kafka.bootstrap.isEmpty { throw ConfigError(key: "kafka.bootstrap", "must not be empty (HOST:PORT[,HOST:PORT...])") }
        for part in kafka.bootstrap.split(separator: ",") { _ = try HostPort.parse(String(part), key: "kafka.bootstrap") }

        var journal = Journal(
            commitEvery: try r.int("journal.commit-every", default: 200, range: 1...100_000),
            commitInterval: try r.duration("journal.commit-interval", default: .milliseconds(20), min: .milliseconds(1)),
            commitWhenIdle: try r.bool("journal.commit-when-idle", default: true),
            commitMinGap: try r.duration("journal.commit-min-gap", default: .milliseconds(2)),
            maxBytes: try r.size("journal.max-bytes", default: 1 << 30, min: 4096),
            maxAge: try r.duration("journal.max-age", default: .seconds(7 * 86_400), min: .seconds(1)),
            fullPolicy: try r.choice("journal.full-policy", default: .backpressure),
            resumeFraction: try r.double("journal.resume-at", default: 0.8, range: 0.05...0.99),
            synchronous: try r.choice("journal.synchronous", default: .full),
            minFreeBytes: try r.size("journal.min-free-bytes", default: 64 << 20, min: 64 << 10))
        // At least 256 KiB: at the smallest reserves half of it (32 KiB) did not cover a drain's deletes.
        journal.ballastBytes = try r.size("journal.ballast-bytes", default: max(journal.minFreeBytes / 2, Journal.minimumBallastBytes))
        if journal.ballastBytes > 0 && journal.ballastBytes < Journal.minimumBallastBytes {
            throw ConfigError(key: "journal.ballast-bytes", "\(journal.ballastBytes) bytes is below the minimum of \(Journal.minimumBallastBytes) bytes (256KiB): a smaller ballast can leave SQLite no room to write what intake accepted once the disk is full, and the gateway then stays paused; allowed: 0 (off) or at least 256KiB")
        }
        if journal.commitMinGap > journal.commitInterval {
            throw ConfigError(key: "journal.commit-min-gap", "\(journal.commitMinGap) is above journal.commit-interval (\(journal.commitInterval)); allowed: 0ms up to journal.commit-interval")
        }
        let health = Health(grace: try r.duration("health.grace", default: .seconds(30)))
        return GatewayConfiguration(gatewayID: gatewayID, defaultSite: site, stateDirectory: stateDir, http: http,
                                    logLevel: logLevel, logFormat: logFormat, mqtt: mqtt, kafka: kafka, journal: journal, health: health)
    }

    /// systemd's StateDirectory, else the XDG state directory of the current user.
    public static func defaultStateDirectory(_ env: [String: String]) -> String {
        if let d = env["STATE_DIRECTORY"], !d.isEmpty { return d.split(separator: ":").first.map(String.init) ?? d }
        if let x = env["XDG_STATE_HOME"], !x.isEmpty { return x + "/forewarn" }
        return (env["HOME"] ?? "/tmp") + "/.local/state/forewarn"
    }
}
