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
    func headers(for e: JournalEntry) -> [KafkaHeader] {
        var h = [gatewayHeader, KafkaHeader("seq", decimalBytes(e.seq)), KafkaHeader("mqtt_topic", e.mqttTopic)]
        if let reason = e.reason {
            h.append(KafkaHeader("reason", reason))
            h.append(KafkaHeader("received_at", String(e.receivedAt)))
        }
        return h
    }

    private func forwardLoop(stop: StopFlag, heartbeat: Heartbeat) throws(KafkaError) {
        var cursor: Int64 = 0           // highest seq handed to librdkafka since the last rewind
        var outstanding: [Int64: JournalEntryKind] = [:]  // handed over, not yet reported
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
        // Delivered seqs not yet deleted from the journal: gathered over a few delivery reports,
        // so the reports of all partitions add up to runs of consecutive seqs, which the journal
        // deletes with one statement each (a drain spent most of its time in one-row deletes).
        // A crash before the delete means a re-send with the same seq, as an uncommitted delete does.
        var pendingDeletes: [Int64] = []
        var pendingSince = ContinuousClock.now
        func flushDeletes() {
            guard !pendingDeletes.isEmpty else { return }
            journalCall { try journal.markDelivered(pendingDeletes) }
            pendingDeletes.removeAll(keepingCapacity: true)
        }

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
            if kafkaSeen, !rewinding, now >= retryAfter, outstanding.count < config.kafka.maxInFlight {
                let batch = journalCall { try journal.readCommitted(after: cursor, limit: min(2000, config.kafka.maxInFlight - outstanding.count)) }
                for e in batch ?? [] {
                    let topic = e.kind == .reading ? config.kafka.readingsTopic : config.kafka.deadletterTopic
                    do throws(KafkaError) {
                        try producer.produce(topic: topic, key: Array(e.machine.utf8), value: e.payload, headers: headers(for: e), id: UInt64(e.seq))
                    } catch {
                        if error.kind != .queueFull {
                            logger.error("produce failed, will retry from the journal: \(error)")
                            Counter(label: "forewarn_gateway_kafka_delivery_errors_total", dimensions: [("error", "\(error.kind)")]).increment()
                            retryAfter = now + .milliseconds(500)
                        }
                        break
                    }
                    outstanding[e.seq] = e.kind
                    cursor = e.seq
                    handed += 1
                }
            }

            // Delivery reports.
            var delivered: [Int64] = []
            var deadLetters = 0
            for event in producer.poll(timeout: handed > 0 ? .zero : .milliseconds(10)) {
                switch event {
                case let .delivered(id, _, _):
                    if outstanding.removeValue(forKey: Int64(id)) == .deadLetter { deadLetters += 1 }
                    delivered.append(Int64(id))
                case let .failed(id, error):
                    outstanding.removeValue(forKey: Int64(id))
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
            if !delivered.isEmpty {
                if pendingDeletes.isEmpty { pendingSince = now }
                pendingDeletes.append(contentsOf: delivered)
                health.kafka(reachable: true)
                readingsOut.increment(by: delivered.count - deadLetters)
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
            if pendingDeletes.count >= Self.deleteBatch || now - pendingSince >= Self.deleteDelay || outstanding.isEmpty || rewinding || stopping != nil {
                flushDeletes()
            }
            if rewinding && outstanding.isEmpty {
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

/// The decimal digits of `n` as bytes (what `String(n).utf8` holds, without the String).
func decimalBytes(_ n: Int64) -> [UInt8] {
    if n == 0 { return [UInt8(ascii: "0")] }
    var digits: [UInt8] = []
    digits.reserveCapacity(20)
    var m = n.magnitude
    while m > 0 {
        digits.append(UInt8(ascii: "0") + UInt8(m % 10))
        m /= 10
    }
    if n < 0 { digits.append(UInt8(ascii: "-")) }
    digits.reverse()
    return digits
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
