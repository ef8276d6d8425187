import Foundation

/// Reads typed values out of a `ConfigSource`, recording which keys were read so that
/// the rest can be reported as unknown. Every error names the key and the allowed values.
public struct ConfigReader {
    public let source: ConfigSource
    public private(set) var knownKeys: Set<String> = []

    public init(_ source: ConfigSource) { self.source = source }

    public mutating func string(_ key: String, default d: String) -> String {
        known(key, default: d)
        return source.value(key) ?? d
    }

    /// `shownDefault`: what `--print-config` shows when the key is not set.
    public mutating func optionalString(_ key: String, shownDefault: String = "none") -> String? {
        known(key, default: shownDefault)
        guard let v = source.value(key), !v.isEmpty else { return nil }
        return v
    }

    public mutating func int(_ key: String, default d: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        known(key, default: String(d))
        guard let raw = try scalar(key) else { return d }
        guard let v = Int(raw.trimmedSpaces) else {
            throw error(key, "'\(raw)' is not a whole number (allowed: \(range.lowerBound)...\(range.upperBound))")
        }
        guard range.contains(v) else {
            throw error(key, "\(v) is out of range (allowed: \(range.lowerBound)...\(range.upperBound))")
        }
        return v
    }

    public mutating func double(_ key: String, default d: Double, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        known(key, default: String(d))
        guard let raw = try scalar(key) else { return d }
        guard let v = Double(raw.trimmedSpaces), v.isFinite else {
            throw error(key, "'\(raw)' is not a number (allowed: \(range.lowerBound)...\(range.upperBound))")
        }
        guard range.contains(v) else {
            throw error(key, "\(v) is out of range (allowed: \(range.lowerBound)...\(range.upperBound))")
        }
        return v
    }

    public mutating func bool(_ key: String, default d: Bool) throws(ConfigError) -> Bool {
        known(key, default: String(d))
        guard let raw = try scalar(key) else { return d }
        switch raw.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw error(key, "'\(raw)' is not a boolean (allowed: true, false)")
        }
    }

    public mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, default d: E) throws(ConfigError) -> E where E.RawValue == String {
        known(key, default: d.rawValue)
        guard let raw = try scalar(key) else { return d }
        guard let v = E(rawValue: raw) else {
            throw error(key, "'\(raw)' is not allowed (allowed: \(E.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return v
    }

    /// Durations like `250ms`, `5s`, `2m`, `1h`, `7d`; a bare number means seconds.
    /// At most `max` (and never more than `maximumDuration`).
    public mutating func duration(_ key: String, default d: Duration, min: Duration = .zero, max: Duration = ConfigReader.maximumDuration) throws(ConfigError) -> Duration {
        known(key, default: Self.formatDuration(d))
        guard let raw = try scalar(key) else { return d }
        guard let v = Self.parseDuration(raw) else {
            throw error(key, "'\(raw)' is not a duration (allowed: a number ≥ 0 with ms, s, m, h or d, e.g. 250ms, 30s, 7d; at most \(Self.maximumDurationText))")
        }
        guard v >= min else { throw error(key, "\(raw) is below the minimum \(min)") }
        guard v <= max else { throw error(key, "\(raw) is above the maximum \(max)") }
        return v
    }

    /// Sizes like `512MiB`, `1GiB`, `100MB`, `64KiB`, or a number of bytes.
    public mutating func size(_ key: String, default d: Int64, min: Int64 = 0) throws(ConfigError) -> Int64 {
        known(key, default: Self.formatSize(d))
        guard let raw = try scalar(key) else { return d }
        guard let v = Self.parseSize(raw) else {
            throw error(key, "'\(raw)' is not a size (allowed: bytes, or a number ≥ 0 with KB, MB, GB, KiB, MiB, GiB; at most \(Self.maximumSizeText))")
        }
        guard v >= min else { throw error(key, "\(raw) is below the minimum of \(min) bytes") }
        return v
    }

    /// `host:port`, with the port in 1...65535.
    public mutating func hostPort(_ key: String, default d: HostPort?) throws(ConfigError) -> HostPort? {
        known(key, default: d?.description ?? "off")
        guard let raw = try scalar(key) else { return d }
        if raw == "off" || raw == "none" || raw.isEmpty { return nil }
        do { return try HostPort.parse(raw, key: key) } catch { throw self.error(key, error.message) }
    }

    /// An address to listen on: `IPV4:PORT` or `localhost:PORT`, or nil for `off`. The HTTP
    /// endpoint binds IPv4 only, so an IPv6 address or a host name is refused here, at validation,
    /// rather than at start-up.
    public mutating func listenAddress(_ key: String, default d: HostPort?) throws(ConfigError) -> HostPort? {
        guard let hp = try hostPort(key, default: d) else { return nil }
        var addr = in_addr()
        guard hp.host == "localhost" || inet_pton(AF_INET, hp.host, &addr) == 1 else {
            throw error(key, "'\(hp.host)' is not an IPv4 address: the HTTP endpoint listens on IPv4 only (e.g. 127.0.0.1:\(hp.port), 0.0.0.0:\(hp.port), localhost:\(hp.port))")
        }
        return hp
    }

    public mutating func markKnown(_ key: String) { knownKeys.insert(key) }

    /// Each key read so far, with its default as text (for `--print-config`).
    public private(set) var defaults: [String: String] = [:]

    private mutating func known(_ key: String, default d: String) {
        knownKeys.insert(key)
        if defaults[key] == nil { defaults[key] = d }
    }

    /// The key's value for a setting that takes a single value: a YAML list is the wrong type.
    private func scalar(_ key: String) throws(ConfigError) -> String? {
        guard let entry = source.entries[key] else { return nil }
        guard !entry.isList else { throw error(key, "a list was given, expected a single value") }
        return entry.value
    }

    /// An error naming the key, the problem and where the value was set.
    private func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(key: key, message + (source.entries[key].map { " (set in \($0.origin))" } ?? ""))
    }

    /// A swift-log level name. Default `info`.
    public mutating func logLevel(_ key: String = "log-level") throws(ConfigError) -> String {
        let level = string(key, default: "info")
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(level) else { throw error(key, "'\(level)' is not allowed (allowed: \(levels.joined(separator: ", ")))") }
        return level
    }

    /// A duration in the largest unit that divides it: `7d`, `30s`, `500ms`.
    public static func formatDuration(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        for (unit, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms != 0 && ms % scale == 0 {
            return "\(ms / scale)\(unit)"
        }
        return "\(ms)ms"
    }

    /// A size in the largest binary unit that divides it: `1GiB`, `64KiB`, or bytes.
    public static func formatSize(_ bytes: Int64) -> String {
        for (unit, scale) in [("TiB", Int64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes != 0 && bytes % scale == 0 {
            return "\(bytes / scale)\(unit)"
        }
        return "\(bytes)"
    }

    /// The log line format: `text` (default) or `json` (one object a line).
    public mutating func logFormat(_ key: String = "log-format") throws(ConfigError) -> String {
        let format = string(key, default: "text")
        guard ["text", "json"].contains(format) else { throw error(key, "'\(format)' is not allowed (allowed: text, json)") }
        return format
    }

    /// The longest duration any key accepts: 36500 days (100 years). Keeps every millisecond
    /// count far inside Int64, so no later arithmetic on a configured duration can overflow.
    public static let maximumDuration: Duration = .seconds(36_500 * 86_400)
    static let maximumDurationText = "36500d"
    /// The largest size any key accepts: 10^18 bytes (1000000TB), inside Int64.
    public static let maximumSize: Int64 = 1_000_000_000_000_000_000
    static let maximumSizeText = "1000000TB"

    /// A duration, or nil when `raw` is not one or is above `maximumDuration` (never traps).
    public static func parseDuration(_ raw: String) -> Duration? {
        let s = raw.trimmedSpaces
        let maxMillis = Double(maximumDuration.components.seconds) * 1000
        func millis(_ v: Double, _ scale: Double) -> Duration? {
            let ms = (v * scale * 1000).rounded()
            // Checked in Double before converting: Int64(_:) traps on anything it cannot hold.
            guard v.isFinite, v >= 0, ms.isFinite, ms <= maxMillis else { return nil }
            return .milliseconds(Int64(ms))
        }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            // "ms" also ends in "s": only accept the longest unit whose prefix is a number.
            if let v = Double(number), v.isFinite, v >= 0 { return millis(v, scale) }
        }
        if let v = Double(s) { return millis(v, 1) }
        return nil
    }

    /// A size in bytes, or nil when `raw` is not one or is above `maximumSize` (never traps).
    public static func parseSize(_ raw: String) -> Int64? {
        let s = raw.trimmedSpaces
        let units: [(String, Int64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
                                        ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000), ("B", 1)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            guard let v = Double(s.dropLast(suffix.count).trimmedSpaces), v.isFinite, v >= 0 else { return nil }
            let bytes = (v * Double(scale)).rounded(.down)
            // Checked in Double before converting: Int64(_:) traps on anything it cannot hold.
            guard bytes.isFinite, bytes <= Double(maximumSize) else { return nil }
            return Int64(bytes)
        }
        guard let v = Int64(s), v >= 0, v <= maximumSize else { return nil }
        return v
    }
}

/// A TCP endpoint, `host:port`.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { "\(host):\(port)" }

    public static func parse(_ raw: String, key: String) throws(ConfigError) -> HostPort {
        guard let colon = raw.lastIndex(of: ":") else {
            throw ConfigError(key: key, "'\(raw)' must be HOST:PORT")
        }
        var host = String(raw[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let portText = raw[raw.index(after: colon)...]
        guard !host.isEmpty else { throw ConfigError(key: key, "'\(raw)' has no host (expected HOST:PORT)") }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ConfigError(key: key, "port '\(portText)' is out of range (allowed: 1...65535)")
        }
        return HostPort(host: host, port: port)
    }
}

extension StringProtocol {
    var trimmedSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
