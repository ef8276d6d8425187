import Foundation
import Logging
import Metrics
import Prometheus
import ServiceSupport

/// Logging to stderr (journald takes it) and Prometheus metrics, once per process.
enum Bootstrap {
    nonisolated(unsafe) private static var registry: PrometheusCollectorRegistry?

    static func logging(level: String, label: String) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: level) ?? .info
            return handler
        }
        return Logger(label: label)
    }

    static func metrics() -> PrometheusCollectorRegistry {
        if let registry { return registry }
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        registry = r
        return r
    }

    /// Serves /metrics from the registry and /healthz from `health`.
    static func httpHandler(registry: PrometheusCollectorRegistry, health: @escaping @Sendable () -> HTTPResponse) -> HTTPServer.Handler {
        { method, path in
            guard method == "GET" || method == "HEAD" else { return HTTPResponse(status: 405, body: "only GET\n") }
            switch path {
            case "/metrics":
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                var r = HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4", body: "")
                r.body = buffer
                return r
            case "/healthz":
                return health()
            default:
                return HTTPResponse(status: 404, body: "not found: try /metrics or /healthz\n")
            }
        }
    }
}

/// Writes a line to stderr and exits with `code`: for start-up errors that must name their key.
func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("forewarn: \(message)\n".utf8))
    exit(code)
}

/// Configuration overrides from flags: the named flags first, then each `--set KEY=VALUE`.
func configOverrides(_ flags: [(key: String, value: String?, flag: String)], settings: [String]) -> [(key: String, value: String, flag: String)] {
    var out: [(key: String, value: String, flag: String)] = flags.compactMap { f in f.value.map { (f.key, $0, f.flag) } }
    for s in settings {
        guard let eq = s.firstIndex(of: "="), eq != s.startIndex else { fail("--set '\(s)' must be KEY=VALUE") }
        out.append((String(s[..<eq]), String(s[s.index(after: eq)...]), "--set \(s[..<eq])"))
    }
    return out
}

/// `--config`, else `$FOREWARN_CONFIG`, else `/etc/forewarn/<name>.yaml` when it exists, else none.
func configFile(_ explicit: String?, name: String) -> String? {
    if let explicit { return explicit }
    if let env = ProcessInfo.processInfo.environment["FOREWARN_CONFIG"] { return env }
    let path = "/etc/forewarn/\(name).yaml"
    return FileManager.default.fileExists(atPath: path) ? path : nil
}
