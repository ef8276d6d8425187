import ForewarnCore
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
public final class IngestService: Service, @unchecked Sendable {
    let config: GatewayConfiguration
    let journal: Journal
    let health: GatewayHealth
    let logger: Logger
    let parser: PayloadParser
    let client: MQTTClient

    private let readingsIn = Counter(label: "forewarn_gateway_readings_in_total")
    private let messagesIn = Counter(label: "forewarn_gateway_mqtt_messages_total")
    private let redeliveries = Counter(label: "forewarn_gateway_mqtt_redeliveries_dropped_total")
    private let mqttConnected = Gauge(label: "forewarn_gateway_mqtt_connected")
    private let backpressureGauge = Gauge(label: "forewarn_gateway_backpressure")
    /// Entries whose journal write failed (disk full): retried on every tick, MQTT paused meanwhile.
    private let pending = Mutex<[NewJournalEntry]>([])

    public init(config: GatewayConfiguration, journal: Journal, health: GatewayHealth, logger: Logger) throws {
        self.config = config
        self.journal = journal
        self.health = health
        self.logger = logger
        parser = PayloadParser(template: config.mqtt.topicTemplate, defaultSite: config.defaultSite, maxPayloadBytes: config.mqtt.maxPayloadBytes)
        let m = config.mqtt
        client = try MQTTClient(options: MQTTOptions(
            host: m.url.host, port: m.url.port, clientID: m.clientID, cleanSession: m.cleanSession, keepalive: m.keepalive,
            version: m.protocolVersion == .v5 ? .v5 : .v311, username: m.username, password: m.password, tls: m.url.tls,
            caFile: m.caFile, certFile: m.certFile, keyFile: m.keyFile, tlsInsecure: m.tlsInsecure,
            reconnectMin: m.reconnectMin, reconnectMax: m.reconnectMax), logger: logger)
        client.subscribe(m.topicTemplate.subscriptionFilter, qos: 1)
        client.onMessage = { [unowned self] msg in self.handle(msg) }
        client.onTick = { [unowned self] in self.tick() }
        client.onConnectionChange = { [unowned self] up, error in
            self.health.mqtt(connected: up, error: error)
            self.mqttConnected.record(up ? 1 : 0)
        }
    }

    public func run() async throws {
        let client = self.client
        logger.info("ingest starting", metadata: ["mqtt": "\(config.mqtt.url)", "subscription": "\(config.mqtt.topicTemplate.subscriptionFilter)"])
        await withGracefulShutdownHandler {
            await runOnDedicatedThread(name: "mqtt") { client.run() }
        } onGracefulShutdown: {
            client.stop()
        }
        // Intake has stopped: make everything accepted durable before the forwarder drains.
        flushPending()
        do { try journal.commit() } catch { logger.error("final journal commit failed: \(error)") }
        logger.info("ingest stopped; journal committed")
    }

    func handle(_ msg: MQTTMessage) {
        messagesIn.increment()
        let now = epochMillis()
        var entries: [NewJournalEntry]
        var digest: Int64?
        do {
            let parsed = try parser.parseMessage(topic: msg.topic, payload: msg.payload, receivedAt: now)
            entries = parsed.readings.map {
                NewJournalEntry(kind: .reading, machine: $0.machine, mqttTopic: msg.topic, receivedAt: now, payload: $0.canonicalJSON())
            }
            if parsed.stamped { digest = messageDigest(topic: msg.topic, payload: msg.payload) }
        } catch {
            entries = [deadLetter(msg, error, now: now)]
            Counter(label: "forewarn_gateway_rejected_total", dimensions: [("reason", error.reason.rawValue)]).increment()
            logger.debug("rejected MQTT message", metadata: ["topic": "\(msg.topic)", "reason": "\(error)"])
        }
        if !pending.withLock({ $0.isEmpty }) {
            pending.withLock { $0.append(contentsOf: entries) }  // keep order behind the failed ones
            return
        }
        append(entries, digest: digest)
    }

    private func deadLetter(_ msg: MQTTMessage, _ rejection: PayloadRejection, now: Int64) -> NewJournalEntry {
        // Keep the key per machine where the topic names one, so dead letters stay in machine order too.
        let machine = (try? parser.template.match(msg.topic).machine) ?? msg.topic
        var payload = msg.payload
        var reason = rejection.description
        if payload.count > config.mqtt.maxPayloadBytes {
            payload = Array(payload.prefix(config.mqtt.maxPayloadBytes))
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
            case .duplicate:
                redeliveries.increment()
            }
            health.setJournalError(nil)
        } catch {
            // Already acknowledged to the broker: hold in memory, stop intake, retry on ticks.
            pending.withLock { $0.append(contentsOf: entries) }
            health.setJournalError(error.description)
            client.setPaused(true)
            logger.error("journal write failed; pausing MQTT intake and retrying: \(error)")
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

    private func flushPending() {
        let held = pending.withLock { p in defer { p.removeAll() }; return p }
        guard !held.isEmpty else { return }
        do {
            recordDrops(try journal.append(held))
            health.setJournalError(nil)
        } catch {
            pending.withLock { $0.insert(contentsOf: held, at: 0) }
            health.setJournalError(error.description)
        }
    }

    func tick() {
        health.mqttSubscribed(client.isSubscribed)
        flushPending()
        do {
            // An idle commit held back by journal.commit-min-gap is due within that gap: look again soon.
            let pending = try journal.commitIfDue(inputQueued: client.hasQueuedInput)
            client.setTickInterval(pending && config.journal.commitWhenIdle ? .milliseconds(1) : .milliseconds(10))
        } catch {
            health.setJournalError(error.description)
            logger.error("journal commit failed: \(error)")
        }
        let writeFailing = !pending.withLock { $0.isEmpty }
        if config.journal.fullPolicy == .backpressure || writeFailing {
            if !client.isPaused, journal.isFull || writeFailing {
                client.setPaused(true)
                health.setBackpressure(true)
                backpressureGauge.record(1)
                logger.warning("journal full (journal.max-bytes=\(config.journal.maxBytes)): pausing MQTT intake until it drains below \(Int(config.journal.resumeFraction * 100))%")
            } else if client.isPaused, !writeFailing, journal.isBelow(fraction: config.journal.resumeFraction) {
                client.setPaused(false)
                health.setBackpressure(false)
                backpressureGauge.record(0)
                logger.notice("journal drained: resuming MQTT intake")
            }
        }
    }
}
