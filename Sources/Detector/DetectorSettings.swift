// Detector owns the detection service: a Kafka consumer group on the readings topic, one
// `MachineDetector` per machine (models from `models/`), alerts to the alerts topic, and
// per-partition checkpoints so a restart or a rebalance needs no new warm-up. Offsets are
// committed only after the alerts they caused are acknowledged by Kafka, together with the
// checkpoint of the state they produced.
import ForewarnCore
import Foundation

/// The detector service's settings. Same sources and rules as the gateway's:
/// YAML file, then `FOREWARN_*` environment, then flags; errors name the key.
public struct DetectorSettings: Sendable {
    /// `kafka.bootstrap`: default `127.0.0.1:9092`.
    public var bootstrap: String
    /// `kafka.readings-topic`: default `forewarn.readings`.
    public var readingsTopic: String
    /// `kafka.alerts-topic`: default `forewarn.alerts`.
    public var alertsTopic: String
    /// `kafka.group`: the consumer group that instances share. Default `forewarn-detector`.
    public var group: String
    /// `kafka.properties.*`: passed to librdkafka (SASL, TLS, ...).
    public var kafkaProperties: [String: String]
    /// `models`: directory of machine-type model files. Default `/etc/forewarn/models` if present, else `./models`, else built-in defaults.
    public var modelsDirectory: String?
    /// `state-dir`: checkpoints live under `<state-dir>/detector`. Default as for the gateway.
    public var stateDirectory: String
    /// `http`: `/metrics` and `/healthz`, `HOST:PORT` or `off`. Default `127.0.0.1:9465`.
    public var http: HostPort?
    /// `checkpoint-interval`: how often state is saved and offsets committed. Default 5s.
    public var checkpointInterval: Duration
    /// `log-level`: default `info`.
    public var logLevel: String
    /// `log-format`: `text` (default) or `json`, one object a line with the same fields.
    public var logFormat: String

    public static func load(file: String?, environment: [String: String], overrides: [(key: String, value: String, flag: String)]) throws(ConfigError) -> DetectorSettings {
        let source = try ConfigSource.gather(file: file, environment: environment, knownKeys: knownKeys, overrides: overrides)
        var r = ConfigReader(source)
        let settings = try read(&r, environment: environment)
        try source.checkUnknownKeys(known: r.knownKeys, openPrefixes: ["kafka.properties"])
        return settings
    }

    /// The effective configuration for `--print-config`: every key, its value and its source.
    public static func effectiveSettings(file: String?, environment: [String: String],
                                         overrides: [(key: String, value: String, flag: String)]) throws(ConfigError) -> [EffectiveSetting] {
        let source = try ConfigSource.gather(file: file, environment: environment, knownKeys: knownKeys, overrides: overrides)
        var r = ConfigReader(source)
        _ = try read(&r, environment: environment)
        try source.checkUnknownKeys(known: r.knownKeys, openPrefixes: ["kafka.properties"])
        return r.effectiveSettings(openPrefixes: ["kafka.properties"])
    }

    public static let knownKeys: [String] = {
        var r = ConfigReader(ConfigSource())
        _ = try? read(&r, environment: [:])
        return r.knownKeys.sorted()
    }()

    static func read(_ r: inout ConfigReader, environment: [String: String]) throws(ConfigError) -> DetectorSettings {
        r.markKnown("kafka.properties")
        let bootstrap = r.string("kafka.bootstrap", default: "127.0.0.1:9092")
        for part in bootstrap.split(separator: ",") { _ = try HostPort.parse(String(part), key: "kafka.bootstrap") }
        let defaultModels: String? = FileManager.default.fileExists(atPath: "/etc/forewarn/models") ? "/etc/forewarn/models"
            : FileManager.default.fileExists(atPath: "models") ? "models" : nil
        let models = r.optionalString("models", shownDefault: defaultModels ?? "none (built-in models)") ?? defaultModels
        if let models, !FileManager.default.fileExists(atPath: models) {
            throw ConfigError(key: "models", "directory \(models) does not exist")
        }
        let level = try r.logLevel()
        let format = try r.logFormat()
        return DetectorSettings(
            bootstrap: bootstrap,
            readingsTopic: r.string("kafka.readings-topic", default: "forewarn.readings"),
            alertsTopic: r.string("kafka.alerts-topic", default: "forewarn.alerts"),
            group: r.string("kafka.group", default: "forewarn-detector"),
            kafkaProperties: r.source.values(under: "kafka.properties"),
            modelsDirectory: models,
            stateDirectory: r.string("state-dir", default: GatewayConfiguration.defaultStateDirectory(environment)),
            http: try r.listenAddress("http", default: HostPort(host: "127.0.0.1", port: 9465)),
            checkpointInterval: try r.duration("checkpoint-interval", default: .seconds(5), min: .milliseconds(100)),
            logLevel: level,
            logFormat: format)
    }
}
