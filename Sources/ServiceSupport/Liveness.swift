// Liveness for the systemd watchdog: every worker loop that runs on its own thread stamps a
// heartbeat, and the watchdog is pinged only while no heartbeat is stale. A wedged thread
// (a C call that never returns, a deadlock) therefore stops the pings and systemd restarts
// the service, even though Swift's cooperative pool, where the pinger runs, is still fine.
import Synchronization

/// Decides which workers are stale from their last heartbeats. Pure: the caller passes the time.
public struct LivenessMonitor: Sendable, Equatable {
    public struct Worker: Sendable, Equatable {
        public var lastBeat: ContinuousClock.Instant
        /// In a call that is bounded elsewhere (for example a TCP connect, bounded by the kernel):
        /// not stale while suspended.
        public var suspended = false
    }

    /// A worker silent for longer than this is stale.
    public let maxSilence: Duration
    public private(set) var workers: [String: Worker] = [:]

    public init(maxSilence: Duration) { self.maxSilence = maxSilence }

    /// Starts watching `name` (again), as if it had just beaten.
    public mutating func register(_ name: String, at now: ContinuousClock.Instant) { workers[name] = Worker(lastBeat: now) }

    public mutating func beat(_ name: String, at now: ContinuousClock.Instant) {
        guard workers[name] != nil else { return }
        workers[name] = Worker(lastBeat: now)
    }

    public mutating func suspend(_ name: String, at now: ContinuousClock.Instant) {
        guard workers[name] != nil else { return }
        workers[name] = Worker(lastBeat: now, suspended: true)
    }

    /// A worker that ended on purpose is no longer watched.
    public mutating func retire(_ name: String) { workers.removeValue(forKey: name) }

    /// Workers that have not beaten for longer than `maxSilence` at `now`, sorted by name.
    public func staleWorkers(at now: ContinuousClock.Instant) -> [String] {
        workers.filter { !$0.value.suspended && now - $0.value.lastBeat > maxSilence }.keys.sorted()
    }
}

/// When to send `WATCHDOG=1`, and what to report, tick by tick. Pure: the caller passes the
/// time and the stale workers, and carries out the actions.
public struct WatchdogPinger: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case ping
        /// Some workers are stale (this set is new): stop pinging and say which.
        case reportStale([String])
        /// Every worker beats again: pinging resumes.
        case reportRecovered
    }

    public let interval: Duration
    private var nextPing: ContinuousClock.Instant?
    public private(set) var stale: [String] = []

    public init(interval: Duration) { self.interval = interval }

    public mutating func tick(now: ContinuousClock.Instant, staleWorkers: [String]) -> [Action] {
        if !staleWorkers.isEmpty {
            defer { stale = staleWorkers }
            return staleWorkers == stale ? [] : [.reportStale(staleWorkers)]
        }
        var actions: [Action] = []
        if !stale.isEmpty {
            stale = []
            actions.append(.reportRecovered)
            nextPing = nil
        }
        if nextPing.map({ now >= $0 }) ?? true {
            actions.append(.ping)
            nextPing = now + interval
        }
        return actions
    }
}

/// The process's heartbeats: a `LivenessMonitor` behind a lock, shared by the worker threads
/// (which beat) and the systemd pinger (which asks for stale workers).
public final class Heartbeats: Sendable {
    private let monitor: Mutex<LivenessMonitor>

    public init(maxSilence: Duration) { monitor = Mutex(LivenessMonitor(maxSilence: maxSilence)) }

    /// Registers a worker loop; it must call `beat()` more often than `maxSilence`.
    public func register(_ name: String) -> Heartbeat {
        let now = ContinuousClock.now
        monitor.withLock { $0.register(name, at: now) }
        return Heartbeat(name: name, heartbeats: self)
    }

    public var staleWorkers: [String] {
        let now = ContinuousClock.now
        return monitor.withLock { $0.staleWorkers(at: now) }
    }

    fileprivate func update(_ body: (inout LivenessMonitor, ContinuousClock.Instant) -> Void) {
        let now = ContinuousClock.now
        monitor.withLock { body(&$0, now) }
    }
}

/// One worker loop's heartbeat.
public struct Heartbeat: Sendable {
    public let name: String
    let heartbeats: Heartbeats?

    /// A heartbeat that goes nowhere (for services run without a watchdog, and tests).
    public static let none = Heartbeat(name: "", heartbeats: nil)

    public func beat() { heartbeats?.update { $0.beat(name, at: $1) } }
    /// Before a call bounded elsewhere that may outlast `maxSilence`; the next `beat()` ends it.
    public func suspend() { heartbeats?.update { $0.suspend(name, at: $1) } }
    /// The loop has ended on purpose.
    public func retire() { heartbeats?.update { m, _ in m.retire(name) } }
}
