import ForewarnCore
import Foundation
import Journal
import Kafka
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Logging to stderr (journald takes it) and Prometheus metrics, once per process.
enum Bootstrap {
    /// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and each
    /// arena keeps its freed pages. With two, the gateway's peak anonymous memory during a
    /// 1,000,000-entry drain fell by ~1.5 MiB (docs/benchmarks.md). `MALLOC_ARENA_MAX` in the
    /// environment still wins. Call before the service threads start.
    static func limitMallocArenas(_ count: Int32 = 2) {
        guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil else { return }
        _ = glibcMallopt(glibcMArenaMax, count)
    }

    nonisolated(unsafe) private static var registry: PrometheusCollectorRegistry?

    /// The level of every logger in the process; a SIGHUP reload changes it.
    static let logControl = LogControl(level: .info)

    static func logging(level: String, format: String = "text", label: String) -> Logger {
        logControl.level = Logger.Level(rawValue: level) ?? .info
        logControl.format = LogControl.Format(rawValue: format) ?? .text
        LoggingSystem.bootstrap { label in ControlledLogHandler(label: label, control: logControl) }
        return Logger(label: label)
    }

    static func metrics() -> PrometheusCollectorRegistry {
        if let registry { return registry }
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        registry = r
        return r
    }

    /// Serves /metrics from the registry (with HELP from `help`, `forewarn_build_info` and the
    /// process metrics) and /healthz from `health`.
    static func httpHandler(registry: PrometheusCollectorRegistry, service: String, help: [String: String],
                            health: @escaping @Sendable () -> HTTPResponse) -> HTTPServer.Handler {
        let buildInfo = MetricsExposition.buildInfo([("version", forewarnVersion), ("service", service), ("librdkafka", librdkafkaVersion)])
        return { method, path in
            guard method == "GET" || method == "HEAD" else { return HTTPResponse(status: 405, body: "only GET\n") }
            switch path {
            case "/metrics":
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                var text = MetricsExposition.addingHelp(String(decoding: buffer, as: UTF8.self), help: help)
                if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
                text += buildInfo
                if let p = ProcessSnapshot.current() { text += MetricsExposition.processMetrics(p) }
                var r = HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: "")
                r.body = Array(text.utf8)
                return r
            case "/healthz":
                return health()
            default:
                return HTTPResponse(status: 404, body: "not found: try /metrics or /healthz\n")
            }
        }
    }
}

/// How a `forewarn` process ends when it does not end well.
enum ExitStatus: Int32 {
    /// A fatal error at run time or start-up that is not the configuration's fault (a fatal
    /// Kafka error, a taken port). systemd restarts the service.
    case failure = 1
    /// A usage error of a tool command (simulate, evaluate, ...).
    case usage = 2
    /// EX_DATAERR (sysexits.h): the journal found at start-up is damaged (truncated, a damaged
    /// page or WAL, not SQLite) or is not a forewarn journal. It may hold readings, so it is left
    /// as it is; the units set `RestartPreventExitStatus=65`: restarting would not help.
    case dataError = 65
    /// EX_CONFIG (sysexits.h): the configuration is wrong, wherever it came from (file,
    /// environment, flag): unknown key, wrong type, out of range, contradiction, unreadable
    /// file. The units set `RestartPreventExitStatus=78`: restarting would not help.
    case config = 78

    /// The status for an error that stopped a service, at start-up or while running.
    init(for error: any Error) {
        switch error {
        case is ConfigError:
            self = .config
        case let e as KafkaError:
            // A property librdkafka rejects, or a client it cannot create from the properties.
            if case .configuration = e.kind { self = .config } else { self = e.kind == .creation ? .config : .failure }
        case let e as HTTPServerError:
            self = e.isConfiguration ? .config : .failure
        case let e as JournalError:
            self = e.kind == .corrupt || e.kind == .schema ? .dataError : .failure
        default:
            self = .failure
        }
    }
}

/// Writes a line to stderr and exits with `status`: for start-up errors that must name their key.
func fail(_ message: String, status: ExitStatus = .usage) -> Never {
    FileHandle.standardError.write(Data("forewarn: \(message)\n".utf8))
    exit(status.rawValue)
}

/// Fails for an error that stopped start-up: "invalid configuration" and 78 when it is the
/// configuration's fault, else `what` and 1.
func failStarting(_ what: String, _ error: any Error) -> Never {
    let status = ExitStatus(for: error)
    fail(status == .config ? "invalid configuration: \(error)" : "\(what): \(error)", status: status)
}

/// Runs the services until SIGTERM/SIGINT (graceful shutdown, in reverse order) or until one
/// of them fails, which cancels the rest. Every service ends on cancellation; should one not,
/// `maximumCancellationDuration` ends the process (ServiceLifecycle's fatalError). A failure
/// is logged as one critical line naming the cause, and the process exits with its status.
func runServices(_ services: [any Service], name: String, logger: Logger, maximumCancellationDuration: Duration) async {
    var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumCancellationDuration = maximumCancellationDuration
    do {
        try await ServiceGroup(configuration: configuration).run()
    } catch {
        let status = ExitStatus(for: error)
        logger.critical("\(name) stopped by a fatal error\(status == .config ? " (invalid configuration)" : ""): \(error)",
                        metadata: ["exit_status": "\(status.rawValue)"])
        exit(status.rawValue)
    }
}

/// Heartbeats for the worker loops: stale after half the systemd watchdog period (the ping
/// interval), or after 15 s when there is no watchdog (then staleness is only logged).
/// `FOREWARN_TEST_STALL_WORKER=WORKER:AFTER:FOR` (a test hook) wedges one worker's thread.
func makeHeartbeats(environment: [String: String]) -> Heartbeats {
    Heartbeats(maxSilence: SystemdNotifier.watchdogInterval() ?? .seconds(15),
               stall: environment[StallInjection.environmentVariable].flatMap(StallInjection.init))
}

/// `--print-config`: the effective configuration of `command`, each key with its value and
/// source, secrets masked; a configuration error exits 78 as at start-up.
func printEffectiveConfiguration(command: String, file: String?, _ settings: () throws(ConfigError) -> [EffectiveSetting]) -> Never {
    let effective: [EffectiveSetting]
    do { effective = try settings() } catch { fail("invalid configuration: \(error)", status: .config) }
    print("# forewarn \(command): effective configuration. Sources, later ones winning: default, \(file.map { "file \($0)" } ?? "(no file)"), environment, flags")
    print(EffectiveSetting.render(effective), terminator: "")
    exit(0)
}

/// SIGHUP: loads the configuration again and applies the `reloadable` keys that changed (the
/// log level and format always; `apply` gets the changes to carry out the rest), logging one line that lists
/// them and the changed keys that need a restart. An invalid configuration changes nothing and
/// is logged with its error.
func makeConfigReloader(logger: Logger, reloadable: Set<String>, running initial: [EffectiveSetting],
                        load: @escaping @Sendable () throws(ConfigError) -> [EffectiveSetting],
                        apply: @escaping @Sendable ([EffectiveSetting]) -> Void = { _ in }) -> @Sendable () -> Void {
    let running = Mutex(initial)
    return {
        let new: [EffectiveSetting]
        do { new = try load() } catch {
            logger.error("SIGHUP: the configuration is invalid, keeping the running one: \(error)")
            return
        }
        let plan = running.withLock { r in
            let plan = ReloadPlan.compare(running: r, new: new, reloadable: reloadable.union(["log-level", "log-format"]))
            r = plan.applied(to: r)
            return plan
        }
        for s in plan.apply {
            if s.key == "log-level", let level = Logger.Level(rawValue: s.value) { Bootstrap.logControl.level = level }
            if s.key == "log-format", let format = LogControl.Format(rawValue: s.value) { Bootstrap.logControl.format = format }
        }
        apply(plan.apply)
        logger.notice("SIGHUP: configuration reloaded: \(plan.summary)")
    }
}

/// Configuration overrides from flags: the named flags first, then each `--set KEY=VALUE`.
func configOverrides(_ flags: [(key: String, value: String?, flag: String)], settings: [String]) -> [(key: String, value: String, flag: String)] {
    var out: [(key: String, value: String, flag: String)] = flags.compactMap { f in f.value.map { (f.key, $0, f.flag) } }
    for s in settings {
        guard let eq = s.firstIndex(of: "="), eq != s.startIndex else { fail("invalid configuration: --set '\(s)' must be KEY=VALUE", status: .config) }
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

/// glibc's `int mallopt(int param, int value)` from <malloc.h>, which the Glibc module does not
/// export; `M_ARENA_MAX` is -8 there.
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
private let glibcMArenaMax: Int32 = -8
