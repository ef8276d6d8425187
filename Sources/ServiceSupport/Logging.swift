// The process's log output: one level and one format shared by every logger, changeable while
// running (SIGHUP reload), so that a new `log-level` or `log-format` takes effect without a
// restart. `text` is swift-log's StreamLogHandler line; `json` is one object a line with the
// same fields (ts, level, logger, source, msg, and the metadata), for journald and log shippers.
import Foundation
import Logging
import Synchronization

/// The level and format every `forewarn` logger of this process logs at.
public final class LogControl: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    private let state: Mutex<(level: Logger.Level, format: Format)>

    public init(level: Logger.Level, format: Format = .text) { state = Mutex((level, format)) }

    public var level: Logger.Level {
        get { state.withLock { $0.level } }
        set { state.withLock { $0.level = newValue } }
    }

    public var format: Format {
        get { state.withLock { $0.format } }
        set { state.withLock { $0.format = newValue } }
    }
}

/// Writes to stderr at the level and in the format that `control` holds now.
public struct ControlledLogHandler: LogHandler {
    private var inner: StreamLogHandler
    private let control: LogControl

    public init(label: String, control: LogControl) {
        inner = StreamLogHandler.standardError(label: label)
        inner.logLevel = .trace  // the level is decided here, from `control`
        self.control = control
        self.label = label
    }

    private let label: String

    /// Set on one logger, a level holds for that logger only; otherwise the process's level applies.
    private var levelOverride: Logger.Level?

    public var logLevel: Logger.Level {
        get { levelOverride ?? control.level }
        set { levelOverride = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        switch control.format {
        case .text: inner.log(event: event)
        case .json: writeStandardError(JSONLogLine.render(event: event, label: label, metadata: mergedMetadata(event)))
        }
    }

    private func mergedMetadata(_ event: LogEvent) -> Logger.Metadata {
        var m = inner.metadata
        if let provided = inner.metadataProvider?.get() { m.merge(provided) { _, new in new } }
        if let explicit = event.metadata { m.merge(explicit) { _, new in new } }
        if let error = event.error { m["error.message"] = "\(error)"; m["error.type"] = "\(String(reflecting: type(of: error)))" }
        return m
    }
}

/// One line to stderr in a single write, so that lines from several threads never interleave.
private func writeStandardError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(2, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}

/// A log event as one JSON object on one line.
public enum JSONLogLine {
    static let reserved: Set<String> = ["ts", "level", "logger", "source", "msg"]

    /// `{"ts":"2026-12-01T14:00:00.123Z","level":"info","logger":"forewarn.gateway","source":"Gateway","msg":"…",KEY:VALUE…}`:
    /// the metadata keys follow, sorted; one that collides with a field above gets a `meta.` prefix.
    public static func render(event: LogEvent, label: String, metadata: Logger.Metadata, now: Date = Date()) -> String {
        var out = "{\"ts\":\(quote(timestamp(now))),\"level\":\(quote(event.level.rawValue)),\"logger\":\(quote(label))"
        out += ",\"source\":\(quote(event.source)),\"msg\":\(quote(event.message.description))"
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            out += ",\(quote(reserved.contains(k) ? "meta." + k : k)):\(quote(v.description))"
        }
        return out + "}\n"
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var t = time_t(ms / 1000)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                      Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), Int(ms % 1000))
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
