// Gateway owns the pipeline MQTT → parse → journal → forwarder → Kafka as three services
// (ingest, forwarder, and the health/metrics state they share). It is built from a
// validated `GatewayConfiguration`; `GatewayServices` wires it up for the CLI.
import ForewarnCore
import Foundation
import Synchronization

/// What /healthz reports. Written by ingest and forwarder, read by the HTTP endpoint.
public final class GatewayHealth: Sendable {
    struct State {
        var mqttDownSince: ContinuousClock.Instant? = .now
        var mqttError: String?
        var mqttSubscribed = false
        var kafkaDownSince: ContinuousClock.Instant? = .now
        var kafkaError: String?
        var lastDrop: ContinuousClock.Instant?
        var dropsTotal = 0
        var backpressure: [BackpressureReason] = []
        var journalError: String?
        /// The forwarder's own journal failures (reads, deletes), kept apart from the ingest
        /// side's write failure, which the ingest loop re-states on every probe.
        var journalReadError: String?
        var journalFreeBytes: Int64?
        /// The ballast: its configured size, and why it is released (nil while held or off).
        var ballastBytes: Int64 = 0
        var ballastHeld = false
        var ballastReleased: String?
        var journal = JournalSnapshot()
    }

    public struct JournalSnapshot: Sendable {
        public var entries = 0
        public var bytes: Int64 = 0
        public var oldestAgeSeconds: Double = 0
    }

    private let state = Mutex(State())
    private let graceNanoseconds: Atomic<Int64>

    public init(grace: Duration) { graceNanoseconds = Atomic(Self.nanoseconds(grace)) }

    /// `health.grace`; a SIGHUP reload may change it.
    public var grace: Duration {
        get { .nanoseconds(graceNanoseconds.load(ordering: .relaxed)) }
        set { graceNanoseconds.store(Self.nanoseconds(newValue), ordering: .relaxed) }
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return s.multipliedReportingOverflow(by: 1_000_000_000).overflow ? .max : s * 1_000_000_000 + a / 1_000_000_000
    }

    func mqtt(connected: Bool, error: String?) {
        state.withLock { s in
            if connected { s.mqttDownSince = nil; s.mqttError = nil }
            else { if s.mqttDownSince == nil { s.mqttDownSince = .now }; s.mqttError = error }
        }
    }

    func kafka(reachable: Bool, error: String? = nil) {
        state.withLock { s in
            if reachable { s.kafkaDownSince = nil; s.kafkaError = nil }
            else { if s.kafkaDownSince == nil { s.kafkaDownSince = .now }; if let error { s.kafkaError = error } }
        }
    }

    func dropped(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.lastDrop = .now; $0.dropsTotal += count }
    }

    func mqttSubscribed(_ on: Bool) { state.withLock { $0.mqttSubscribed = on } }
    /// Sets why intake is paused (empty: running). Returns true if that changed.
    @discardableResult
    func setBackpressure(_ reasons: [BackpressureReason]) -> Bool {
        state.withLock { s in
            guard s.backpressure != reasons else { return false }
            s.backpressure = reasons
            return true
        }
    }
    func setJournalFreeBytes(_ bytes: Int64) { state.withLock { $0.journalFreeBytes = bytes } }
    /// The ballast's state: held (its blocks reserved), or released and why.
    func setBallast(bytes: Int64, held: Bool, released: String?) {
        state.withLock { $0.ballastBytes = bytes; $0.ballastHeld = held; $0.ballastReleased = released }
    }
    func setJournalError(_ e: String?) { state.withLock { $0.journalError = e } }
    func setJournalReadError(_ e: String?) { state.withLock { if $0.journalReadError != e { $0.journalReadError = e } } }
    func setJournal(_ j: JournalSnapshot) { state.withLock { $0.journal = j } }

    public var isKafkaReachable: Bool { state.withLock { $0.kafkaDownSince == nil } }
    public var isBackpressured: Bool { state.withLock { !$0.backpressure.isEmpty } }

    /// Healthy unless MQTT or Kafka has been unreachable for longer than the grace period,
    /// data was dropped within the grace period, or the journal cannot be written.
    public func report() -> (healthy: Bool, json: String) {
        let s = state.withLock { $0 }
        let now = ContinuousClock.now
        var problems: [String] = []
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        if let since = s.mqttDownSince, s.backpressure.isEmpty, now - since > grace {
            problems.append("mqtt unreachable for \(Int(seconds(now - since)))s" + (s.mqttError.map { ": \($0)" } ?? ""))
        }
        if let since = s.kafkaDownSince, now - since > grace {
            problems.append("kafka unreachable for \(Int(seconds(now - since)))s" + (s.kafkaError.map { ": \($0)" } ?? ""))
        }
        if let last = s.lastDrop, now - last <= grace {
            problems.append("journal dropped data \(Int(seconds(now - last)))s ago (\(s.dropsTotal) dropped in total)")
        }
        if let e = s.journalError { problems.append("journal write failing: \(e)") }
        if let e = s.journalReadError { problems.append("journal read failing: \(e)") }
        for r in s.backpressure where r.isProblem {
            if case .writeFailing = r { continue }   // said above
            problems.append("MQTT intake paused: \(r)")
        }
        var w = JSONWriter()
        w.beginObject()
        w.field("status", problems.isEmpty ? "ok" : "unhealthy")
        w.key("problems"); w.beginArray(); for p in problems { w.string(p) }; w.endArray()
        w.key("mqtt"); w.beginObject(); w.key("connected"); w.bool(s.mqttDownSince == nil); w.key("subscribed"); w.bool(s.mqttDownSince == nil && s.mqttSubscribed); w.endObject()
        w.key("kafka"); w.beginObject(); w.key("reachable"); w.bool(s.kafkaDownSince == nil); w.endObject()
        w.key("journal"); w.beginObject()
        w.field("entries", Int64(s.journal.entries)); w.field("bytes", s.journal.bytes); w.field("oldest_age_s", s.journal.oldestAgeSeconds)
        if let free = s.journalFreeBytes { w.field("free_bytes", free) }
        if s.ballastBytes > 0 {
            w.key("ballast"); w.beginObject()
            w.field("bytes", s.ballastBytes); w.key("held"); w.bool(s.ballastHeld)
            if let why = s.ballastReleased { w.field("released", why) }
            w.endObject()
        }
        w.endObject()
        w.key("backpressure"); w.bool(!s.backpressure.isEmpty)
        w.key("backpressure_reasons"); w.beginArray(); for r in s.backpressure { w.string(r.label) }; w.endArray()
        w.field("drops_total", Int64(s.dropsTotal))
        w.endObject()
        return (problems.isEmpty, w.string + "\n")
    }
}

func epochMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
