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

/// Tells systemd READY=1 once started, pings the watchdog while `isHealthy` allows,
/// and says STOPPING=1 on shutdown.
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let isAlive: @Sendable () -> Bool

    /// `isAlive` should be false only when the process is wedged (not merely degraded),
    /// so that systemd's watchdog restarts it.
    public init(notifier: SystemdNotifier = SystemdNotifier(), isAlive: @escaping @Sendable () -> Bool = { true }) {
        self.notifier = notifier
        self.isAlive = isAlive
    }

    public func run() async throws {
        notifier.notify("READY=1")
        let interval = SystemdNotifier.watchdogInterval() ?? .seconds(5)
        var next = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if ContinuousClock.now >= next {
                if isAlive() { notifier.notify("WATCHDOG=1") }
                next = .now + interval
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        notifier.notify("STOPPING=1")
    }
}
