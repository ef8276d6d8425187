import Foundation
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol without libsystemd: datagrams to `$NOTIFY_SOCKET`.
/// Outside systemd (no socket) every call is a no-op.
public struct SystemdNotifier: Sendable {
    let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func notify(_ state: String) {
        guard let path = socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let maxLen = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < maxLen else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = state.withCString { msg in
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, msg, strlen(msg), Int32(MSG_NOSIGNAL), sa, len)
                }
            }
        }
    }

    /// Half of `$WATCHDOG_USEC`, the interval to ping at; nil when no watchdog is set.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 else { return nil }
        return .microseconds(usec / 2)
    }
}

/// Tells systemd READY=1 once started, pings the watchdog (`WATCHDOG=1`) every `interval`
/// while no worker heartbeat is stale, and says STOPPING=1 when it ends: on graceful shutdown
/// and on task cancellation alike.
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let heartbeats: Heartbeats?
    let interval: Duration
    let logger: Logger?

    /// `interval`: how often to ping; by default half of `$WATCHDOG_USEC`, else 5 s.
    /// `heartbeats`: the worker loops whose liveness the pings vouch for.
    public init(notifier: SystemdNotifier = SystemdNotifier(), heartbeats: Heartbeats? = nil, interval: Duration? = nil, logger: Logger? = nil) {
        self.notifier = notifier
        self.heartbeats = heartbeats
        self.interval = interval ?? SystemdNotifier.watchdogInterval() ?? .seconds(5)
        self.logger = logger
    }

    public func run() async throws {
        notifier.notify("READY=1")
        var pinger = WatchdogPinger(interval: interval)
        let tick = min(.milliseconds(100), interval / 5)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for action in pinger.tick(now: ContinuousClock.now, staleWorkers: heartbeats?.staleWorkers ?? []) {
                switch action {
                case .ping:
                    notifier.notify("WATCHDOG=1")
                case let .reportStale(workers):
                    logger?.critical("worker loop stalled, no heartbeat from \(workers.joined(separator: ", ")); not pinging the systemd watchdog")
                case .reportRecovered:
                    logger?.notice("every worker loop beats again; pinging the systemd watchdog")
                }
            }
            try? await Task.sleep(for: tick)
        }
        notifier.notify("STOPPING=1")
    }
}
