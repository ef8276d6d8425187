import ForewarnCore
import Foundation
import Journal
import Logging
import Metrics
import MQTT
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// MQTT → parse → journal. Runs libmosquitto's loop on its own thread; each message is parsed
/// and appended to the journal inside the message callback, so the window between the broker's
/// PUBACK and the journal is one parse and one SQLite insert. The loop ticks after every
/// packet it reads (and every ~10 ms when idle); each tick asks the journal's `CommitPolicy`
/// whether to commit, telling it whether more input is already queued on the socket, so a
/// group is committed as soon as nothing more would join it (`journal.commit-when-idle`), at
/// `journal.commit-every` entries, or after `journal.commit-interval`.
///
/// libmosquitto acknowledges QoS 1 before we see a message, so intake must stop *before* the
/// journal cannot write: every tick measures the state directory's free space, and the
/// `IntakeGate` pauses MQTT (backpressure) below `journal.min-free-bytes`, on a read-only or
/// vanished journal, or after a failed write (the journal keeps what it accepted and retries).
/// The same gate says when to delete the ballast file (`journal.ballast-bytes`) so that the
/// drain's deletes and checkpoints can commit on a full disk, and when to make it again.
// @unchecked: stored properties are `let`s of thread-safe types; the gate and the probe time are behind Mutexes.
public final class IngestService: Service, @unchecked Sendable {
    let config: GatewayConfiguration
    let journal: Journal
    let health: GatewayHealth
    let logger: Logger
    let parser: PayloadParser
    let client: MQTTClient
    /// Beaten by the MQTT loop every 5–10 ms (with the storage probe), suspended during a blocking connect (bounded by TCP).
    let heartbeat: Heartbeat

    private let readingsIn = Counter(label: "forewarn_gateway_readings_in_total")
    private let messagesIn = Counter(label: "forewarn_gateway_mqtt_messages_total")
    private let redeliveries = Counter(label: "forewarn_gateway_mqtt_redeliveries_dropped_total")
    private let mqttConnected = Gauge(label: "forewarn_gateway_mqtt_connected")
    private let backpressureGauge = Gauge(label: "forewarn_gateway_backpressure")
    private let freeBytesGauge = Gauge(label: "forewarn_gateway_journal_free_bytes")
    private let walPendingGauge = Gauge(label: "forewarn_gateway_journal_wal_pending_bytes")
    private let reserveGauge = Gauge(label: "forewarn_gateway_journal_min_free_bytes")
    private let keptGauge = Gauge(label: "forewarn_gateway_journal_kept_in_memory")
    private let writeFailures = Counter(label: "forewarn_gateway_journal_write_failures_total")
    private let ballastGauge = Gauge(label: "forewarn_gateway_journal_ballast_bytes")
    private let ballastReleases = Counter(label: "forewarn_gateway_journal_ballast_releases_total")
    /// The ballast file; `ballastHeld` and `ballastReleased` are touched on the MQTT loop thread only.
    private let ballast: BallastFile
    private let ballastState = Mutex<(held: Bool, released: String?)>((false, nil))
    /// The last compaction of a drained journal while the ballast is owed (at most one a second).
    private let lastCompaction = Mutex(ContinuousClock.now - .seconds(10))
    private let lastPausedCheckpoint = Mutex(ContinuousClock.now - .seconds(10))
    /// How often a TRUNCATE checkpoint is tried while intake is paused for disk space.
    static let pausedCheckpointInterval: Duration = .milliseconds(250)
    /// A failed creation is tried again after this long, not on every probe.
    private let ballastRetryAt = Mutex(ContinuousClock.now)
    private let reasonGauges = Dictionary(uniqueKeysWithValues: BackpressureReason.labels.map {
        ($0, Gauge(label: "forewarn_gateway_intake_paused", dimensions: [("reason", $0)]))
    })
    /// Decides pause and resume; touched on the MQTT loop thread only (the lock keeps it Sendable).
    private let gate: Mutex<IntakeGate>
    private let lastProbe = Mutex(ContinuousClock.now - .seconds(1))
    static let probeInterval: Duration = .milliseconds(5)

    public init(config: GatewayConfiguration, journal: Journal, health: GatewayHealth, logger: Logger, heartbeats: Heartbeats? = nil) throws {
        heartbeat = heartbeats?.register("mqtt") ?? .none
        self.config = config
        self.journal = journal
        self.health = health
        self.logger = logger
        gate = Mutex(IntakeGate(fullPolicy: config.journal.fullPolicy, maxBytes: config.journal.maxBytes,
                                resumeFraction: config.journal.resumeFraction, minFreeBytes: config.journal.minFreeBytes,
                                ballastBytes: config.journal.ballastBytes, walBudgetBytes: journal.walBudgetBytes))
        ballast = BallastFile(path: BallastFile.path(besideJournal: journal.options.path), bytes: config.journal.ballastBytes)
        if config.journal.ballastBytes == 0 {
            BallastFile(path: ballast.path, bytes: 0).release()
            logger.warning("journal.ballast-bytes=0: no ballast; once the disk is full, SQLite may have no room left even to delete what Kafka has taken, and intake then stays paused until space is freed by hand")
        }
        let held = config.journal.ballastBytes > 0 && ballast.isPresent()
        ballastState.withLock { $0 = (held, nil) }
        ballastGauge.record(held ? config.journal.ballastBytes : 0)
        health.setBallast(bytes: config.journal.ballastBytes, held: held, released: nil)
        parser = PayloadParser(template: config.mqtt.topicTemplate, defaultSite: config.defaultSite, maxPayloadBytes: config.mqtt.maxPayloadBytes)
        let m = config.mqtt
        client = try MQTTClient(options: MQTTOptions(
            host: m.url.host, port: m.url.port, clientID: m.clientID, cleanSession: m.cleanSession, keepalive: m.keepalive,
            version: m.protocolVersion == .v5 ? .v5 : .v311, username: m.username, password: m.password, tls: m.url.tls,
            caFile: m.caFile, certFile: m.certFile, keyFile: m.keyFile, tlsInsecure: m.tlsInsecure,
            reconnectMin: m.reconnectMin, reconnectMax: m.reconnectMax), logger: logger)
        client.subscribe(m.topicTemplate.subscriptionFilter, qos: 1)
        reserveGauge.record(config.journal.minFreeBytes)
        for gauge in reasonGauges.values { gauge.record(0) }
        client.onMessageView = { [unowned self] msg in self.handle(msg) }
        client.onTick = { [unowned self] in self.tick() }
        client.onConnectStart = { [heartbeat] in heartbeat.suspend() }
        client.onConnectionChange = { [unowned self] up, error in
            self.health.mqtt(connected: up, error: error)
            self.mqttConnected.record(up ? 1 : 0)
        }
    }

    public func run() async throws {
        let client = self.client
        logger.info("ingest starting", metadata: ["mqtt": "\(config.mqtt.url)", "subscription": "\(config.mqtt.topicTemplate.subscriptionFilter)"])
        await withTaskCancellationOrGracefulShutdownHandler {
            await runOnDedicatedThread(name: "mqtt") { client.run() }
        } onCancelOrGracefulShutdown: {
            client.stop()
        }
        heartbeat.retire()
        // Intake has stopped: make everything accepted durable before the forwarder drains.
        flushPending()
        do { try journal.commit() } catch { logger.error("final journal commit failed: \(error)") }
        logger.info("ingest stopped; journal committed")
    }

    /// One message, its payload read in libmosquitto's buffer: copied only into a dead letter.
    func handle(_ msg: MQTTMessageView) {
        messagesIn.increment()
        let now = epochMillis()
        var entries: [NewJournalEntry]
        var digest: Int64?
        do {
            let parsed = try parser.parseMessage(topic: msg.topic, payload: msg.payload, receivedAt: now)
            entries = parsed.readings.map {
                NewJournalEntry(kind: .reading, machine: $0.machine, mqttTopic: msg.topic, receivedAt: now, payload: $0.canonicalJSON())
            }
            if Self.needsFingerprint(stamped: parsed.stamped, qos: msg.qos, retain: msg.retain) {
                digest = messageDigest(topic: msg.topic, payload: msg.payload)
            }
        } catch {
            entries = [deadLetter(msg, error, now: now)]
            Counter(label: "forewarn_gateway_rejected_total", dimensions: [("reason", error.reason.rawValue)]).increment()
            logger.debug("rejected MQTT message", metadata: ["topic": "\(msg.topic)", "reason": "\(error)"])
        }
        append(entries, digest: digest)
    }

    /// Whether a message's fingerprint is journaled to drop a later redelivery of it. Only a
    /// stamped message can be recognised, and only a QoS 1 message or a retained one comes again
    /// (the broker redelivers the first after a reconnect and re-sends the second on every
    /// subscribe); a plain QoS 0 message never does, so it costs no hash and no second insert.
    static func needsFingerprint(stamped: Bool, qos: Int, retain: Bool) -> Bool {
        stamped && (qos > 0 || retain)
    }

    private func deadLetter(_ msg: MQTTMessageView, _ rejection: PayloadRejection, now: Int64) -> NewJournalEntry {
        // Keep the key per machine where the topic names one, so dead letters stay in machine order too.
        let machine = (try? parser.template.match(msg.topic).machine) ?? msg.topic
        let payload = Array(msg.payload.prefix(config.mqtt.maxPayloadBytes))
        var reason = rejection.description
        if msg.payload.count > config.mqtt.maxPayloadBytes {
            reason += " (dead letter truncated to \(config.mqtt.maxPayloadBytes) of \(msg.payload.count) bytes)"
        }
        return NewJournalEntry(kind: .deadLetter, machine: machine, mqttTopic: msg.topic, receivedAt: now, payload: payload, reason: reason)
    }

    private func append(_ entries: [NewJournalEntry], digest: Int64?) {
        do {
            switch try journal.append(entries, messageDigest: digest) {
            case let .appended(drops):
                readingsIn.increment(by: entries.count(where: { $0.kind == .reading }))
                if !drops.isEmpty { recordDrops(drops) }
            case let .held(error):
                // Already acknowledged to the broker: the journal keeps it in memory and retries.
                // Stop intake now; the next tick reports why.
                readingsIn.increment(by: entries.count(where: { $0.kind == .reading }))
                if !client.isPaused {
                    client.setPaused(true)
                    logger.error("journal write failed; pausing MQTT intake, accepted readings are kept in memory: \(error)")
                }
            case .duplicate:
                redeliveries.increment()
            }
        } catch {
            logger.error("journal append: \(error)")
        }
    }

    func recordDrops(_ drops: [JournalDrop]) {
        var byKey: [JournalDrop: Int] = [:]
        for d in drops { byKey[d, default: 0] += 1 }
        for (d, n) in byKey {
            Counter(label: "forewarn_gateway_dropped_total", dimensions: [("machine", d.machine), ("reason", d.reason)]).increment(by: n)
        }
        health.dropped(drops.count)
    }

    /// At shutdown: entries the journal keeps in memory (the disk refused them) get a few more
    /// tries over up to 5 s; what still cannot be written is named in the log.
    private func flushPending() {
        let deadline = ContinuousClock.now + .seconds(5)
        while journal.writeFailure != nil, ContinuousClock.now < deadline {
            if (try? journal.commit()) != nil { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        if let failure = journal.writeFailure {
            logger.critical("stopping with \(journal.keptEntries) acknowledged entries that the journal could not write: \(failure)")
        }
    }

    func tick() {
        do {
            // An idle commit held back by journal.commit-min-gap is due within that gap: look again soon.
            let pending = try journal.commitIfDue(inputQueued: client.hasQueuedInput)
            client.setTickInterval(pending && config.journal.commitWhenIdle ? .milliseconds(1) : .milliseconds(10))
        } catch {
            health.setJournalError(error.description)
            logger.error("journal commit failed: \(error)")
        }
        // Under load the loop ticks after every read; measuring every 5 ms bounds the cost (a
        // statvfs, a stat and a PRAGMA) while the readings between two probes stay far inside the reserve.
        let now = ContinuousClock.now
        guard lastProbe.claim(at: now, every: Self.probeInterval) else { return }
        // Under load the loop ticks after every packet: the heartbeat (a lock, a dictionary
        // write) and the subscription flag are refreshed with the probe, at most every 5 ms.
        heartbeat.beat()
        health.mqttSubscribed(client.isSubscribed)
        var probe = journal.probeStorage()
        let ballastOwed = ballastState.withLock { !$0.held && $0.released != nil }
        if ballastOwed { probe.ballastOwedBytes = gate.withLock { $0.ballast.restoreAtBytes } }
        let failure = journal.writeFailure
        let bytes = journal.bytes
        let (reasons, change, lowSpace) = gate.withLock { g in
            if failure != nil, !g.reasons.contains(where: { $0.label == "write-failing" }) { writeFailures.increment() }
            let change = g.update(journalBytes: bytes, probe: probe, writeFailure: failure?.description)
            return (g.reasons, change, g.disk.pausedFor?.isLowSpace == true)
        }
        freeBytesGauge.record(probe.availableBytes)
        walPendingGauge.record(probe.pendingCheckpointBytes)
        keptGauge.record(journal.keptEntries)
        health.setJournalError(failure?.description)
        health.setJournalFreeBytes(probe.availableBytes)
        switch change {
        case let .pause(reason)?:
            let until = reason.label == "disk-low" ? " until \(config.journal.minFreeBytes * 3 / 2) bytes are free" : ""
            logger.warning("\(reason): pausing MQTT intake\(until)")
            journal.checkpoint()   // a truncated WAL gives space back
        case .resume?:
            logger.notice("journal storage has room again (\(probe.availableBytes) bytes free)")
            journal.checkpoint()
        case nil:
            // Paused for space: the WAL file gives its blocks back only to a TRUNCATE checkpoint,
            // and with intake paused no commit leads to one. Without this a drained journal whose
            // WAL held the room stayed paused for good (512 KiB reserve, 1 run in 4).
            if lowSpace, lastPausedCheckpoint.claim(at: now, every: Self.pausedCheckpointInterval) { journal.checkpoint() }
        }
        // After the pause's checkpoint: if it failed for the full disk, the ballast goes in this
        // same probe, before intake's pause is visible, so what health shows has settled.
        tendBallast(probe: probe, failedFull: failure?.kind == .diskFull || journal.checkpointFailedForFullDisk)
        applyBackpressure(reasons)
    }

    /// Deletes or recreates the ballast file as the gate decides, and says so in the log, health and metrics.
    private func tendBallast(probe: StorageProbe, failedFull: Bool) {
        let (held, owed) = ballastState.withLock { ($0.held, !$0.held && $0.released != nil) }
        if gate.withLock({ $0.ballast.shouldCompact(owed: owed, filesystemFreeBytes: probe.filesystemFreeBytes, journalEntries: journal.entryCount) }),
           lastCompaction.claim(at: .now, every: .seconds(1)), let given = journal.compactIfEmpty() {
            logger.notice("compacted the drained journal to make room for the ballast again", metadata: ["bytes_given_back": "\(given)"])
        }
        guard let action = gate.withLock({ $0.ballastAction(present: held, probe: probe, failedFull: failedFull) }) else { return }
        switch action {
        case let .release(trigger):
            ballast.release()
            ballastReleases.increment()
            let why = "\(trigger); released \(ballast.bytes) bytes for the journal's deletes and checkpoint"
            ballastState.withLock { $0 = (false, why) }
            logger.warning("deleted the ballast file \(ballast.path): \(why)")
            health.setBallast(bytes: ballast.bytes, held: false, released: why)
            ballastGauge.record(0)
            // Use the room at once, on this thread, before another message's append can take it:
            // fold the WAL into the database (it needs the room to grow the file), write what the
            // journal keeps in memory, and checkpoint again (the WAL starts over, and is truncated).
            journal.checkpoint()
            try? journal.commit()
            journal.checkpoint()
        case .restore:
            guard ballastRetryAt.withLock({ $0 <= .now }) else { return }
            do {
                try ballast.create()
                ballastState.withLock { $0 = (true, nil) }
                logger.notice("ballast file \(ballast.path) holds \(ballast.bytes) bytes back for SQLite", metadata: ["free_bytes": "\(probe.filesystemFreeBytes)"])
                health.setBallast(bytes: ballast.bytes, held: true, released: nil)
                ballastGauge.record(ballast.bytes)
            } catch {
                ballastRetryAt.withLock { $0 = .now + .seconds(5) }
                logger.warning("cannot make the ballast file (tried again in 5 s): \(error)")
            }
        }
    }

    private func applyBackpressure(_ reasons: [BackpressureReason]) {
        let pause = !reasons.isEmpty
        if pause != client.isPaused {
            client.setPaused(pause)
            if pause { logger.warning("pausing MQTT intake: \(reasons.map(\.description).joined(separator: "; "))") }
            else { logger.notice("resuming MQTT intake") }
        }
        if health.setBackpressure(reasons) {
            backpressureGauge.record(pause ? 1 : 0)
            let on = Set(reasons.map(\.label))
            for (label, gauge) in reasonGauges { gauge.record(on.contains(label) ? 1 : 0) }
        }
    }
}

extension Mutex where Value == ContinuousClock.Instant {
    /// True at most once per `interval` (the value is the last time it was): bounds how often
    /// the loop, which ticks after every packet under load, does a costly thing.
    func claim(at now: ContinuousClock.Instant, every interval: Duration) -> Bool {
        withLock { last in
            guard now - last >= interval else { return false }
            last = now
            return true
        }
    }
}
