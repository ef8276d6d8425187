import ForewarnCore
import Journal
import Kafka
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport
import Foundation
import Synchronization

/// Journal → Kafka. Reads committed entries in sequence order, produces them with the
/// idempotent producer (readings keyed by machine to the readings topic, rejects to the
/// dead-letter topic), and deletes each entry only when its delivery report says it is in Kafka.
///
/// A failed delivery (a `message.timeout.ms` expiry, a purge, a broker error) never loses
/// the entry: the forwarder purges what is still queued in librdkafka, waits for the
/// in-flight rest to report, then rewinds to the oldest undelivered entry and sends again
/// in journal order, so each machine's order holds.
///
/// Pickup latency: the journal calls back on every commit, which wakes the forwarder's wait for
/// delivery reports (`KafkaProducer.wakeUp`), so a committed entry is handed to librdkafka at
/// once rather than after the 10 ms poll timeout.
// @unchecked: every stored property is a `let` of a thread-safe type (Journal, GatewayHealth and
// KafkaProducer lock or are thread-safe themselves); the loops' state lives in their locals.
public final class ForwarderService: Service, @unchecked Sendable {
    let config: GatewayConfiguration
    let journal: Journal
    let health: GatewayHealth
    let logger: Logger
    let producer: KafkaProducer
    let heartbeats: Heartbeats?
    /// Test hook: once a broker has answered, make librdkafka raise this fabricated fatal error.
    let injectFatalError: String?

    private let readingsOut = Counter(label: "forewarn_gateway_readings_out_total")
    private let deadLettersOut = Counter(label: "forewarn_gateway_deadletters_out_total")
    private let journalBytes = Gauge(label: "forewarn_gateway_journal_bytes")
    private let journalEntries = Gauge(label: "forewarn_gateway_journal_readings")
    private let journalOldest = Gauge(label: "forewarn_gateway_journal_oldest_age_seconds")
    private let kafkaReachable = Gauge(label: "forewarn_gateway_kafka_reachable")
    private let inFlightGauge = Gauge(label: "forewarn_gateway_kafka_in_flight")

    /// The same for every record: built once.
    let gatewayHeader: KafkaHeader
    /// Delivered seqs on their way to the journal's deletes, on a thread of their own.
    let deletes = DeleteQueue()

    /// `heartbeats`: the forward loop beats as `forwarder`, the probe loop as `kafka-probe`.
    /// `injectFatalError` is for tests only (see `KafkaProducer.triggerFatalErrorForTesting`).
    public init(config: GatewayConfiguration, journal: Journal, health: GatewayHealth, logger: Logger,
                heartbeats: Heartbeats? = nil, injectFatalError: String? = nil) throws {
        self.config = config
        self.journal = journal
        self.health = health
        self.logger = logger
        self.heartbeats = heartbeats
        self.injectFatalError = injectFatalError
        gatewayHeader = KafkaHeader("gateway", config.gatewayID)
        producer = try KafkaProducer(bootstrap: config.kafka.bootstrap, properties: config.kafka.properties, logger: logger)
        journal.onCommit { [producer] in producer.wakeUp() }
    }

    /// Forwards until graceful shutdown or task cancellation (then drains for up to
    /// `kafka.flush-timeout`), or until a fatal Kafka error, which it throws as `ForwarderError`.
    public func run() async throws {
        let stop = StopFlag()
        let forwardBeat = heartbeats?.register("forwarder") ?? .none
        let probeBeat = heartbeats?.register("kafka-probe") ?? .none
        logger.info("forwarder starting", metadata: ["kafka": "\(config.kafka.bootstrap)", "topic": "\(config.kafka.readingsTopic)"])
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { [self] in
                    let failure = Mutex<KafkaError?>(nil)
                    await runOnDedicatedThread(name: "forwarder") { [self] in
                        do throws(KafkaError) { try forwardLoop(stop: stop, heartbeat: forwardBeat) } catch { failure.withLock { $0 = error } }
                        forwardBeat.retire()
                    }
                    if let error = failure.withLock({ $0 }) {
                        stop.set()
                        throw ForwarderError.fatalKafkaError(error)
                    }
                }
                group.addTask { [self] in
                    await runOnDedicatedThread(name: "journal-deletes") { [self] in
                        deletes.run { seqs in journalCall { try journal.markDelivered(seqs) } }
                    }
                }
                group.addTask { [self] in
                    await runOnDedicatedThread(name: "kafka-probe") { [self] in
                        probeLoop(stop: stop, heartbeat: probeBeat)
                        probeBeat.retire()
                    }
                }
                try await group.waitForAll()
            }
        } onCancelOrGracefulShutdown: {
            stop.set()
        }
    }

    /// Headers that identify a record forever: consumers de-duplicate on (gateway, seq).
    /// Written from the journal's row buffers (librdkafka copies them).
    func addHeaders(seq: Int64, mqttTopic: UnsafeRawBufferPointer, reason: UnsafeRawBufferPointer?, receivedAt: Int64, to list: KafkaHeaderList) {
        gatewayHeader.value.withUnsafeBytes { list.add(gatewayHeader.key, $0) }
        withDecimalDigits(seq) { list.add("seq", $0) }
        list.add("mqtt_topic", mqttTopic)
        if let reason {
            list.add("reason", reason)
            withDecimalDigits(receivedAt) { list.add("received_at", $0) }
        }
    }

    private func forwardLoop(stop: StopFlag, heartbeat: Heartbeat) throws(KafkaError) {
        var cursor: Int64 = 0           // highest seq handed to librdkafka since the last rewind
        var outstanding = InFlight()    // handed over, not yet reported
        var rewinding = false
        var stopping: ContinuousClock.Instant?
        var lastHousekeeping = ContinuousClock.now - .seconds(1)
        var retryAfter = ContinuousClock.now
        var dropGeneration = journal.dropGeneration
        // Hand nothing to librdkafka until a broker has answered once: records produced before
        // the producer has metadata and a producer id can expire (message.timeout.ms) and force
        // an early rewind while later records are already in flight.
        var kafkaSeen = false

        var injected = injectFatalError == nil
        // The entries read from the journal, reused: its buffers keep their capacity.
        var batch = JournalBatch()
        // Delivered seqs not yet deleted from the journal: gathered over a few delivery reports,
        // so the reports of all partitions add up to runs of consecutive seqs, which the journal
        // deletes with one statement each (a drain spent most of its time in one-row deletes).
        // A crash before the delete means a re-send with the same seq, as an uncommitted delete does.
        var pendingDeletes: [Int64] = []
        var pendingSince = ContinuousClock.now
        // The top of the last flush that formed no runs yet (`DeleteTail`): deleted with the next.
        var heldDeletes: [Int64] = []
        // The deletes run on the journal-deletes thread, while this one reads and produces the
        // next entries (in a drain they were ~40% of this thread's time, on the critical path).
        // `force`: hold nothing back (nothing else in flight, a rewind, the stop).
        func flushDeletes(force: Bool) {
            if force {
                pendingDeletes.append(contentsOf: heldDeletes)
                heldDeletes.removeAll(keepingCapacity: true)
            } else if !pendingDeletes.isEmpty {
                (pendingDeletes, heldDeletes) = DeleteTail.split(fresh: pendingDeletes, held: heldDeletes)
            }
            guard !pendingDeletes.isEmpty else { return }
            deletes.enqueue(&pendingDeletes)
        }
        defer { deletes.finish() }   // the thread deletes what is queued, then ends

        while true {
            heartbeat.beat()
            let now = ContinuousClock.now
            if stopping == nil, stop.isSet { stopping = now }

            // Hand committed entries to librdkafka, in order.
            var handed = 0
            if !kafkaSeen { kafkaSeen = health.isKafkaReachable }
            if kafkaSeen, !injected, let reason = injectFatalError {
                injected = true
                logger.warning("test hook: injecting a fatal Kafka error")
                producer.triggerFatalErrorForTesting(reason: reason)
            }
            if kafkaSeen, !rewinding, now >= retryAfter,
               ReadGate.mayRead(inFlight: outstanding.count, maxInFlight: config.kafka.maxInFlight,
                                deletesWaiting: deletes.waiting + pendingDeletes.count + heldDeletes.count, maxDeletesWaiting: Self.maxDeletesWaiting) {
                let limit = min(2000, config.kafka.maxInFlight - outstanding.count)
                journalCall { try journal.readCommitted(after: cursor, limit: limit, into: &batch) }
                batch.forEach { row in
                    let topic = row.kind == .reading ? config.kafka.readingsTopic : config.kafka.deadletterTopic
                    do throws(KafkaError) {
                        try producer.produce(topic: topic, key: row.machine, value: row.payload, id: UInt64(row.seq)) { list in
                            addHeaders(seq: row.seq, mqttTopic: row.mqttTopic, reason: row.reason, receivedAt: row.receivedAt, to: list)
                        }
                    } catch {
                        if error.kind != .queueFull {
                            logger.error("produce failed, will retry from the journal: \(error)")
                            Counter(label: "forewarn_gateway_kafka_delivery_errors_total", dimensions: [("error", "\(error.kind)")]).increment()
                            retryAfter = now + .milliseconds(500)
                        }
                        return false
                    }
                    outstanding.handed(row.seq, kind: row.kind)
                    cursor = row.seq
                    handed += 1
                    return true
                }
            }

            // Delivery reports.
            var delivered = 0
            var deadLetters = 0
            if pendingDeletes.isEmpty { pendingSince = now }
            try producer.poll(timeout: handed > 0 ? .zero : .milliseconds(10)) { (event) throws(KafkaError) in
                switch event {
                case let .delivered(id, _, _):
                    if outstanding.reported(Int64(id)) == .deadLetter { deadLetters += 1 }
                    pendingDeletes.append(Int64(id))
                    delivered += 1
                case let .failed(id, error):
                    _ = outstanding.reported(Int64(id))
                    Counter(label: "forewarn_gateway_kafka_delivery_errors_total", dimensions: [("error", "\(error.kind)")]).increment()
                    if !rewinding {
                        rewinding = true
                        logger.warning("delivery failed (\(error)); re-sending from the journal in order")
                        producer.purgeQueued()
                    }
                case let .error(error, fatal):
                    if error.kind == .brokersDown { health.kafka(reachable: false, error: error.message) }
                    if fatal {
                        throw error   // the idempotent producer cannot continue; exit and let systemd restart us
                    }
                    logger.warning("\(error)")
                }
            }
            if delivered > 0 {
                health.kafka(reachable: true)
                readingsOut.increment(by: delivered - deadLetters)
                deadLettersOut.increment(by: deadLetters)
            }
            // The journal dropped entries (drop-oldest, max-age): what librdkafka still queues may
            // include them, and a dropped reading must not arrive after all. Take the queue back
            // and resend from the journal, which holds exactly what survived.
            let generation = journal.dropGeneration
            if generation != dropGeneration {
                dropGeneration = generation
                if !outstanding.isEmpty && !rewinding {
                    rewinding = true
                    producer.purgeQueued()
                }
            }
            // Before a rewind reads the journal again, and whenever nothing is in flight (the
            // journal then empties at once), the gathered deletes go to the journal.
            let forceDeletes = outstanding.isEmpty || rewinding || stopping != nil
            if pendingDeletes.count >= Self.deleteBatch || now - pendingSince >= Self.deleteDelay || forceDeletes {
                flushDeletes(force: forceDeletes)
            }
            if rewinding && outstanding.isEmpty {
                deletes.waitUntilDone()   // the journal read again from the start must not hold what was delivered
                rewinding = false
                cursor = 0
                retryAfter = now + .milliseconds(200)
            }

            if now - lastHousekeeping >= .milliseconds(500) {
                lastHousekeeping = now
                housekeeping(inFlight: outstanding.count)
            }

            if let since = stopping {
                let caughtUp = outstanding.isEmpty && (try? journal.readCommitted(after: cursor, limit: 1).isEmpty) ?? true
                if caughtUp || now - since >= config.kafka.flushTimeout {
                    deletes.waitUntilDone()
                    if !outstanding.isEmpty {
                        logger.warning("flush timeout: \(outstanding.count) records not acknowledged; they stay in the journal for the next start")
                        producer.purgeAll()
                        _ = producer.poll(timeout: .milliseconds(100))
                    }
                    try? journal.commit()
                    logger.info("forwarder stopped", metadata: ["journal_entries": "\(journal.stats.entries)"])
                    return
                }
            }
        }
    }

    /// Delivered seqs gathered before the journal deletes them: at most this many, for at most `deleteDelay`.
    static let deleteBatch = 8192
    static let deleteDelay: Duration = .milliseconds(10)
    /// Delivered seqs queued for the journal-deletes thread (8 bytes each) beyond which the
    /// forwarder reads no more entries until it catches up: a bound on memory, and on the re-sends after a crash.
    static let maxDeletesWaiting = 3 * deleteBatch

    /// Runs a journal call; a failure is logged, reported in health, and retried later.
    @discardableResult
    private func journalCall<T>(_ body: () throws -> T) -> T? {
        do {
            let v = try body()
            health.setJournalReadError(nil)
            return v
        } catch {
            logger.error("journal: \(error)")
            health.setJournalReadError("\(error)")
            Thread.sleep(forTimeInterval: 0.1)
            return nil
        }
    }

    private func housekeeping(inFlight: Int) {
        do {
            let drops = try journal.expire(nowMillis: epochMillis())
            if !drops.isEmpty {
                var byKey: [JournalDrop: Int] = [:]
                for d in drops { byKey[d, default: 0] += 1 }
                for (d, n) in byKey {
                    Counter(label: "forewarn_gateway_dropped_total", dimensions: [("machine", d.machine), ("reason", d.reason)]).increment(by: n)
                }
                health.dropped(drops.count)
                logger.warning("journal.max-age: dropped \(drops.count) entries older than \(config.journal.maxAge)")
            }
            try journal.commitIfDue()
        } catch {
            logger.error("journal housekeeping: \(error)")
        }
        let s = journal.stats
        let age = s.oldestReceivedAt.map { Double(epochMillis() - $0) / 1000 } ?? 0
        journalBytes.record(s.bytes)
        journalEntries.record(s.entries)
        journalOldest.record(age)
        inFlightGauge.record(inFlight)
        kafkaReachable.record(health.isKafkaReachable ? 1 : 0)
        health.setJournal(.init(entries: s.entries, bytes: s.bytes, oldestAgeSeconds: age))
    }

    /// Asks the cluster for metadata every 2 s, so /healthz knows Kafka's state even when idle.
    private func probeLoop(stop: StopFlag, heartbeat: Heartbeat) {
        var next = ContinuousClock.now
        while !stop.isSet {
            heartbeat.beat()
            if ContinuousClock.now >= next {
                let ok = producer.probe(timeout: .milliseconds(1500))
                health.kafka(reachable: ok, error: ok ? nil : "no broker answered a metadata request")
                next = .now + .seconds(2)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}

/// Whether the forwarder reads (and hands to librdkafka) more journal entries now.
enum ReadGate {
    /// While fewer than `maxInFlight` records are in flight, and the deletes of delivered ones
    /// are not `maxDeletesWaiting` behind.
    static func mayRead(inFlight: Int, maxInFlight: Int, deletesWaiting: Int, maxDeletesWaiting: Int) -> Bool {
        inFlight < maxInFlight && deletesWaiting < maxDeletesWaiting
    }
}

/// Delivered seqs at the top of a flush that form no runs yet: the partitions' delivery reports
/// reach different seqs, so above the slowest partition only every few seqs is delivered, and
/// those were deleted one row at a time (12-14 % of the delete thread in a drain, docs/benchmarks.md
/// session 14). Held for one more flush, most of them join a range. Delaying a delete is always
/// safe: a crash before it is a re-send with the same seq.
enum DeleteTail {
    /// This flush's seqs (`fresh`) and the last flush's tail (`held`) as the seqs to delete now and
    /// the new tail: the fresh seqs above the last run of at least `DeliveredRuns.rangeMin`
    /// consecutive seqs of both together. A held seq is never held again.
    static func split(fresh: [Int64], held: [Int64]) -> (now: [Int64], hold: [Int64]) {
        let all = (fresh + held).sorted()
        var cut = Int64.min   // the top of the last long run
        var start = 0
        for i in all.indices where i + 1 == all.count || all[i + 1] != all[i] + 1 {
            if i - start + 1 >= DeliveredRuns.rangeMin { cut = all[i] }
            start = i + 1
        }
        var now = held
        var hold: [Int64] = []
        for seq in fresh {
            if seq > cut { hold.append(seq) } else { now.append(seq) }
        }
        return (now, hold)
    }
}

/// Delivered seqs handed from the forwarder to the thread that deletes them from the journal.
/// An entry is still deleted only after its delivery report; a crash before the delete means a
/// re-send with the same seq, as before.
// @unchecked: all state is guarded by `condition`.
final class DeleteQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var queued: [Int64] = []
    private var spare: [Int64] = []   // the batch being deleted; swapped with `queued`, so both keep their capacity
    private var deleting = 0   // seqs handed to `delete`, not yet done
    private var finished = false

    /// Seqs queued or being deleted.
    var waiting: Int {
        condition.lock(); defer { condition.unlock() }
        return queued.count + deleting
    }

    /// Queues `seqs` and empties it (keeping its capacity).
    func enqueue(_ seqs: inout [Int64]) {
        condition.lock()
        queued.append(contentsOf: seqs)
        condition.broadcast()
        condition.unlock()
        seqs.removeAll(keepingCapacity: true)
    }

    /// Returns once everything queued so far is deleted.
    func waitUntilDone() {
        condition.lock()
        while !queued.isEmpty || deleting > 0 { condition.wait() }
        condition.unlock()
    }

    /// The thread ends once what is queued is deleted.
    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The delete thread's loop: hands each batch to `delete` until `finish`.
    func run(_ delete: ([Int64]) -> Void) {
        condition.lock()
        while true {
            while queued.isEmpty && !finished { condition.wait() }
            if queued.isEmpty { break }
            swap(&queued, &spare)
            deleting = spare.count
            condition.unlock()
            delete(spare)   // only this thread touches `spare`
            condition.lock()
            spare.removeAll(keepingCapacity: true)
            deleting = 0
            condition.broadcast()
        }
        condition.unlock()
    }
}

/// The records handed to librdkafka and not yet reported: librdkafka reports each exactly once
/// (delivered, failed or purged), so a count does, plus the dead letters among them (rare) to
/// count them apart. A dictionary of every seq in flight was a hash insert and remove per record.
struct InFlight {
    private(set) var count = 0
    private var deadLetters: Set<Int64> = []

    var isEmpty: Bool { count == 0 }

    mutating func handed(_ seq: Int64, kind: JournalEntryKind) {
        count += 1
        if kind == .deadLetter { deadLetters.insert(seq) }
    }

    /// The report of `seq` came back: what it was.
    mutating func reported(_ seq: Int64) -> JournalEntryKind {
        count = max(0, count - 1)
        return !deadLetters.isEmpty && deadLetters.remove(seq) != nil ? .deadLetter : .reading
    }
}

/// Calls `body` with the decimal digits of `n`, written into a stack buffer (one per record: no heap).
func withDecimalDigits<R>(_ n: Int64, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    // 20 bytes: Int64.min is a sign and 19 digits.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
        var i = buf.count
        var m = n.magnitude
        repeat {
            i -= 1
            buf[i] = UInt8(ascii: "0") + UInt8(m % 10)
            m /= 10
        } while m > 0
        if n < 0 {
            i -= 1
            buf[i] = UInt8(ascii: "-")
        }
        return body(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buf[i...])))
    }
}

/// Why the forwarder stopped on its own.
public enum ForwarderError: Error, CustomStringConvertible {
    /// librdkafka raised a fatal error: the idempotent producer cannot go on. What it had not
    /// delivered stays in the journal; a restart (systemd's) sends it again with a new producer.
    case fatalKafkaError(KafkaError)

    public var description: String {
        switch self {
        case let .fatalKafkaError(e): "forwarder: fatal Kafka error, the producer cannot continue (journaled entries are kept for the next start): \(e.message)"
        }
    }
}
