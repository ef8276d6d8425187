// Liveness for the systemd watchdog: every worker loop that runs on its own thread stamps a
// heartbeat, and the watchdog is pinged only while no heartbeat is stale. A wedged thread
// (a C call that never returns, a deadlock) therefore stops the pings and systemd restarts
// the service, even though Swift's cooperative pool, where the pinger runs, is still fine.
import Foundation
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

/// A test hook: wedge one worker's thread for a while, as a C call that does not return would.
public struct StallInjection: Sendable, Equatable {
    public var worker: String
    public var after: Duration
    public var duration: Duration

    /// The environment variable that carries it, as `WORKER:AFTER:FOR` (seconds), e.g. `http:2:4`.
    public static let environmentVariable = "FOREWARN_TEST_STALL_WORKER"

    /// Parses `WORKER:AFTER:FOR`; nil (and the hook off) for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let a = Double(parts[1]), let d = Double(parts[2]),
              a.isFinite, d.isFinite, (0...3600).contains(a), (0...3600).contains(d) else { return nil }
        worker = String(parts[0])
        after = .milliseconds(Int64(a * 1000))
        duration = .milliseconds(Int64(d * 1000))
    }
}

/// The process's heartbeats: a `LivenessMonitor` behind a lock, shared by the worker threads
/// (which beat) and the systemd pinger (which asks for stale workers).
public final class Heartbeats: Sendable {
    private let monitor: Mutex<LivenessMonitor>
    private let stall: StallInjection?
    private let stallStart: ContinuousClock.Instant
    private let stalled = Atomic<Bool>(false)

    /// `stall`: a test hook; the named worker's thread blocks in the first `beat()` after
    /// `stall.after`, for `stall.duration`.
    public init(maxSilence: Duration, stall: StallInjection? = nil) {
        monitor = Mutex(LivenessMonitor(maxSilence: maxSilence))
        self.stall = stall
        stallStart = .now + (stall?.after ?? .zero)
    }

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

    /// The stall test hook: blocks the calling (worker) thread once, if it is the chosen one and its time has come.
    fileprivate func stallIfChosen(_ name: String) {
        guard let stall, stall.worker == name, ContinuousClock.now >= stallStart,
              stalled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        Thread.sleep(forTimeInterval: Double(stall.duration.components.seconds) + Double(stall.duration.components.attoseconds) / 1e18)
    }
}

/// One worker loop's heartbeat.
public struct Heartbeat: Sendable {
    public let name: String
    let heartbeats: Heartbeats?

    /// A heartbeat that goes nowhere (for services run without a watchdog, and tests).
    public static let none = Heartbeat(name: "", heartbeats: nil)

    public func beat() {
        heartbeats?.stallIfChosen(name)
        heartbeats?.update { $0.beat(name, at: $1) }
    }
    /// Before a call bounded elsewhere that may outlast `maxSilence`; the next `beat()` ends it.
    public func suspend() { heartbeats?.update { $0.suspend(name, at: $1) } }
    /// The loop has ended on purpose.
    public func retire() { heartbeats?.update { m, _ in m.retire(name) } }
}
