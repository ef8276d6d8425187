import Foundation
import Yams

/// A configuration error. It always names the key (or flag) and says what is allowed.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public var key: String
    public var message: String
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { key.isEmpty ? message : "config key '\(key)': \(message)" }
}

/// Configuration as flat dotted keys (`mqtt.url`), gathered from a YAML file, then
/// the environment (`FOREWARN_MQTT_URL`), then CLI flags, later sources winning.
/// Typed settings read from it; whatever no setting reads is an unknown key.
public struct ConfigSource: Sendable {
    public struct Entry: Sendable {
        public var value: String
        /// Where the value was set: `FILE:LINE`, `environment NAME` or `flag --NAME`.
        public var origin: String
        /// A YAML list (stored comma-joined); only list-taking settings accept it.
        public var isList = false
    }

    public private(set) var entries: [String: Entry] = [:]

    public init() {}

    /// The usual layering: the YAML file (if any), then `FOREWARN_*` variables, then flag overrides.
    public static func gather(file: String?, environment: [String: String], knownKeys: [String],
                              overrides: [(key: String, value: String, flag: String)]) throws(ConfigError) -> ConfigSource {
        var source = ConfigSource()
        if let file { try source.loadYAML(path: file) }
        try source.loadEnvironment(environment, knownKeys: knownKeys)
        for o in overrides { source.set(o.key, o.value, origin: "flag \(o.flag)") }
        return source
    }

    /// Loads a YAML file of nested mappings with scalar leaves.
    public mutating func loadYAML(path: String) throws(ConfigError) {
        try loadYAML(text: Self.readText(path), origin: path)
    }

    /// The file's text, or an error that says why it cannot be read (missing, a directory,
    /// permission denied, not UTF-8) in the operating system's words.
    static func readText(_ path: String) throws(ConfigError) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ConfigError(key: "", "cannot read config file \(path): it is a directory")
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ConfigError(key: "", "cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        let data = FileHandle(fileDescriptor: fd, closeOnDealloc: true).readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "", "cannot read config file \(path): it is not UTF-8 text")
        }
        return text
    }

    public mutating func loadYAML(text: String, origin: String) throws(ConfigError) {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigError(key: "", "\(origin) is not valid YAML: \(error)")
        }
        guard let node else { return }  // empty file: all defaults
        guard case .mapping = node else { throw ConfigError(key: "", "\(origin) must be a mapping of keys") }
        try flatten(node, prefix: "", origin: origin)
    }

    private mutating func flatten(_ node: Node, prefix: String, origin: String) throws(ConfigError) {
        switch node {
        case let .mapping(mapping):
            for (k, v) in mapping {
                guard case let .scalar(keyScalar) = k else {
                    throw ConfigError(key: prefix, "keys must be plain strings")
                }
                let key = prefix.isEmpty ? keyScalar.string : "\(prefix).\(keyScalar.string)"
                try flatten(v, prefix: key, origin: origin)
            }
        case let .scalar(s):
            entries[prefix] = Entry(value: s.string, origin: "\(origin):\(node.mark?.line ?? 0)")
        case .sequence(let seq):
            // Lists are stored comma-joined; settings that take lists split them.
            var items: [String] = []
            for item in seq {
                guard case let .scalar(s) = item else { throw ConfigError(key: prefix, "list items must be scalars") }
                items.append(s.string)
            }
            entries[prefix] = Entry(value: items.joined(separator: ","), origin: "\(origin):\(node.mark?.line ?? 0)", isList: true)
        case .alias:
            throw ConfigError(key: prefix, "YAML aliases are not supported")
        }
    }

    /// Applies `FOREWARN_*` variables: `FOREWARN_MQTT_URL` sets `mqtt.url`. Keys are matched
    /// against `knownKeys` (underscores stand for both '.' and '-'); unmatched variables are errors.
    public mutating func loadEnvironment(_ env: [String: String], knownKeys: [String]) throws(ConfigError) {
        var byEnvName: [String: String] = [:]
        for key in knownKeys { byEnvName[Self.environmentName(for: key)] = key }
        for (name, value) in env where name.hasPrefix("FOREWARN_") {
            if let key = byEnvName[name] {
                entries[key] = Entry(value: value, origin: "environment \(name)")
            } else if name.hasPrefix("FOREWARN_KAFKA_PROPERTY_") {
                // librdkafka settings: FOREWARN_KAFKA_PROPERTY_SASL_MECHANISMS → kafka.properties.sasl.mechanisms
                let prop = name.dropFirst("FOREWARN_KAFKA_PROPERTY_".count).lowercased().replacingOccurrences(of: "_", with: ".")
                entries["kafka.properties.\(prop)"] = Entry(value: value, origin: "environment \(name)")
            } else if Self.ignoredEnvironment.contains(name) {
                continue
            } else {
                throw ConfigError(key: name, "unknown environment variable; known ones are FOREWARN_ followed by a key, e.g. \(Self.environmentName(for: knownKeys.first ?? "mqtt.url"))")
            }
        }
    }

    /// Variables with the prefix that are not configuration (secrets read by name, test hooks).
    static let ignoredEnvironment: Set<String> = ["FOREWARN_MQTT_PASSWORD", "FOREWARN_CONFIG", "FOREWARN_BIN", "FOREWARN_TEST_INJECT_FATAL_KAFKA_ERROR", "FOREWARN_TEST_STALL_WORKER"]

    public static func environmentName(for key: String) -> String {
        "FOREWARN_" + key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
    }

    /// Sets a key from a CLI flag.
    public mutating func set(_ key: String, _ value: String, origin: String) {
        entries[key] = Entry(value: value, origin: origin)
    }

    public func value(_ key: String) -> String? { entries[key]?.value }

    /// Keys under `prefix.` (for pass-through maps such as `kafka.properties`).
    public func values(under prefix: String) -> [String: String] {
        var out: [String: String] = [:]
        for (k, e) in entries where k.hasPrefix(prefix + ".") {
            out[String(k.dropFirst(prefix.count + 1))] = e.value
        }
        return out
    }

    /// Fails on the first key that is neither known nor under an open prefix.
    public func checkUnknownKeys(known: Set<String>, openPrefixes: [String]) throws(ConfigError) {
        for key in entries.keys.sorted() where !known.contains(key) {
            if openPrefixes.contains(where: { key.hasPrefix($0 + ".") }) { continue }
            let near = known.sorted().min(by: { editDistance($0, key) < editDistance($1, key) })
            var hint = ""
            if let near, editDistance(near, key) <= 3 { hint = " (did you mean '\(near)'?)" }
            throw ConfigError(key: key, "unknown key\(hint), set in \(entries[key]!.origin)")
        }
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
