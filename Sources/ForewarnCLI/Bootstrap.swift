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
