import CRdKafka
import Logging

/// What the producer's event queue reports.
public enum KafkaProducerEvent: Sendable {
    /// The record with this opaque id is in Kafka.
    case delivered(id: UInt64, partition: Int32, offset: Int64)
    /// The record with this opaque id was not delivered.
    case failed(id: UInt64, error: KafkaError)
    /// A client-level error (for example all brokers down). The client keeps retrying.
    case error(KafkaError, fatal: Bool)
}

/// An idempotent producer (`enable.idempotence=true`, so `acks=all`). Each record carries a
/// caller id (the journal sequence number) that comes back in its delivery report. Reports
/// are read by polling an event queue from the caller's own thread, never by C callbacks.
public final class KafkaProducer: @unchecked Sendable {
    // librdkafka's handle is thread-safe for produce/poll/flush; the pointers never change.
    private let handle: OpaquePointer
    private let queue: OpaquePointer
    private let logger: Logger

    /// Settings Forewarn insists on, before the caller's properties.
    public static let defaults: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        // A live reading should be readable in Kafka in milliseconds. 1 ms (librdkafka's default
        // is 5) cut the gateway's p50 at 1,000 readings/s by ~3 ms and left the drain of a
        // 200,000 backlog at the same rate (docs/benchmarks.md): a backlog batches by itself.
        "linger.ms": "1",
        // One Produce request in flight per broker connection: a request that fails with a
        // retriable error is then never overtaken by a later one of the same partition. With the
        // default 5, bursts of Produce errors from dev-kafka's mock cluster lost 33 of 36,000
        // acknowledged records with no delivery error (the mock accepts the later batch, then
        // takes the retried earlier one for a duplicate); with 1, 0 of 36,000
        // (`CHAOS_PHASES=request-errors SEED=3 DURATION=40 scripts/chaos`). A real broker rejects
        // the out-of-order batch instead, but delivery must not hang on that.
        "max.in.flight.requests.per.connection": "1",
        "compression.type": "lz4",
        "queue.buffering.max.messages": "1000000",
        "socket.keepalive.enable": "true",
        // Reconnect within a second once a broker is back (librdkafka's default backs off to 10 s),
        // so a journal backlog starts draining promptly after an outage.
        "reconnect.backoff.max.ms": "1000",
        // Never expire records: the idempotent producer then retries in order for as long as an
        // outage lasts. A finite timeout still loses nothing (the forwarder resends from the
        // journal), but a record that times out in flight can land after later ones.
        "message.timeout.ms": "0",
    ]

    public init(bootstrap: String, properties: [String: String] = [:], logger: Logger) throws(KafkaError) {
        var props = Self.defaults
        props["bootstrap.servers"] = bootstrap
        props["log.queue"] = "true"
        for (k, v) in properties { props[k] = v }
        if props["enable.idempotence"] != "true" {
            throw KafkaError(kind: .configuration(property: "enable.idempotence"),
                             message: "kafka property 'enable.idempotence' must stay true: ordering and no-loss depend on it")
        }
        let conf = try makeConf(props)
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG))
        handle = try makeClient(type: RD_KAFKA_PRODUCER, conf: conf)
        queue = rd_kafka_queue_get_main(handle)
        rd_kafka_set_log_queue(handle, queue)
        self.logger = logger
    }

    deinit {
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
    }

    /// Enqueues one record. `id` comes back in its delivery report.
    /// Throws `.queueFull` when librdkafka's queue is full: poll, then try again.
    public func produce(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], id: UInt64) throws(KafkaError) {
        let failure: KafkaError? = value.withUnsafeBytes { valueBuf in
            withKeyBytes(key) { keyBuf in
                do throws(KafkaError) {
                    try produce(topic: topic, key: keyBuf, value: valueBuf, id: id) { list in
                        for h in headers { h.value.withUnsafeBytes { list.add(h.key, $0) } }
                    }
                    return nil
                } catch { return error }
            }
        }
        if let failure { throw failure }
    }

    /// Enqueues one record from borrowed buffers (librdkafka copies them before this returns);
    /// `headers` adds the record's headers. The forwarder produces straight from the journal's
    /// rows with this: no array or String per record.
    public func produce(topic: String, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, id: UInt64,
                        headers: (KafkaHeaderList) -> Void) throws(KafkaError) {
        let list = KafkaHeaderList(hdrs: rd_kafka_headers_new(4)!)
        headers(list)
        let err: rd_kafka_resp_err_t? = topic.withCString { topicPtr in
            // On the stack: this runs once per record (a heap array was one malloc each).
            withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6) { vus in
                vus.initialize(repeating: rd_kafka_vu_t())
                vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
                vus[0].u.cstr = topicPtr
                vus[1].vtype = RD_KAFKA_VTYPE_VALUE
                // An empty value or key stays empty, not null (a null value is a tombstone), as an
                // empty array's buffer was: librdkafka tells them apart by the pointer.
                vus[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress ?? Self.empty)
                vus[1].u.mem.size = value.count
                vus[2].vtype = RD_KAFKA_VTYPE_KEY
                vus[2].u.mem.ptr = key.map { UnsafeMutableRawPointer(mutating: $0.baseAddress ?? Self.empty) } ?? nil
                vus[2].u.mem.size = key?.count ?? 0
                vus[3].vtype = RD_KAFKA_VTYPE_OPAQUE
                vus[3].u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(id))
                vus[4].vtype = RD_KAFKA_VTYPE_HEADERS
                vus[4].u.headers = list.hdrs
                // librdkafka must copy value and key: the caller's buffers die when this returns.
                vus[5].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                vus[5].u.i = RD_KAFKA_MSG_F_COPY
                guard let error = rd_kafka_produceva(handle, vus.baseAddress, vus.count) else { return nil }
                let code = rd_kafka_error_code(error)
                rd_kafka_error_destroy(error)
                return code
            }
        }
        if let err {
            rd_kafka_headers_destroy(list.hdrs)  // on failure the headers stay ours
            throw KafkaError(code: err, context: "produce to \(topic)")
        }
    }

    /// A pointer for empty buffers: never read (the size is 0), only not null.
    private static var empty: UnsafeRawPointer { UnsafeRawPointer(bitPattern: 1)! }

    /// Waits up to `timeout` for events, then returns every event that is ready (up to `max`).
    public func poll(timeout: Duration, max: Int = 10_000) -> [KafkaProducerEvent] {
        var out: [KafkaProducerEvent] = []
        poll(timeout: timeout, max: max) { out.append($0) }
        return out
    }

    /// Waits up to `timeout` for events, then hands every event that is ready (up to `max`) to
    /// `handle`, in order, without an array (the forwarder takes up to 10,000 reports a call).
    /// Returns how many were handled; an error thrown by `handle` ends the poll.
    @discardableResult
    public func poll<E: Error>(timeout: Duration, max: Int = 10_000, _ handle: (KafkaProducerEvent) throws(E) -> Void) throws(E) -> Int {
        var count = 0
        var wait = Int32(timeout.milliseconds)
        while count < max, let event = rd_kafka_queue_poll(queue, wait) {
            wait = 0
            defer { rd_kafka_event_destroy(event) }
            switch Int32(rd_kafka_event_type(event)) {
            case Int32(RD_KAFKA_EVENT_DR):
                while let msg = rd_kafka_event_message_next(event) {
                    let id = UInt64(UInt(bitPattern: msg.pointee._private))
                    count += 1
                    if msg.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        try handle(.delivered(id: id, partition: msg.pointee.partition, offset: msg.pointee.offset))
                    } else {
                        try handle(.failed(id: id, error: KafkaError(code: msg.pointee.err, context: "delivery")))
                    }
                }
            case Int32(RD_KAFKA_EVENT_ERROR):
                let code = rd_kafka_event_error(event)
                let fatal = rd_kafka_event_error_is_fatal(event) != 0
                let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
                var error = KafkaError(code: code, context: "kafka")
                error.message = "kafka: \(text)"
                count += 1
                try handle(.error(error, fatal: fatal))
            case Int32(RD_KAFKA_EVENT_LOG):
                logEvent(event, logger: logger)
            default:
                break
            }
        }
        return count
    }

    /// Makes a `poll` that is waiting (or the next one, if none is) return at once, from any
    /// thread. The forwarder's journal-commit signal uses it, so new entries need not wait out
    /// the poll timeout.
    public func wakeUp() {
        rd_kafka_queue_yield(queue)
    }

    /// Records handed to librdkafka and not yet reported.
    public var outstanding: Int { Int(rd_kafka_outq_len(handle)) }

    /// Drops records that are still waiting in librdkafka's queue (not yet sent). Their
    /// delivery reports come back as `.purged` failures, so the caller can send them again in order.
    public func purgeQueued() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE))
    }

    /// Purges queued and in-flight records (for shutdown after the flush deadline).
    public func purgeAll() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Makes librdkafka raise a fabricated fatal error (`rd_kafka_test_fatal_error`), as it would
    /// when the idempotent producer cannot go on. For tests: real fatal errors cannot be provoked on demand.
    public func triggerFatalErrorForTesting(reason: String) {
        _ = rd_kafka_test_fatal_error(handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason)
    }

    /// Asks a broker for cluster metadata: true if one answered within `timeout`.
    public func probe(timeout: Duration) -> Bool {
        var md: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &md, Int32(timeout.milliseconds))
        if let md { rd_kafka_metadata_destroy(md) }
        return err == RD_KAFKA_RESP_ERR_NO_ERROR
    }
}

func withKeyBytes<R>(_ key: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let key else { return body(nil) }
    return key.withUnsafeBytes { body($0) }
}

/// The headers of one record being produced (`KafkaProducer.produce(topic:key:value:id:headers:)`).
public struct KafkaHeaderList {
    let hdrs: OpaquePointer
    /// Adds a header; librdkafka copies name and value.
    public func add(_ name: String, _ value: UnsafeRawBufferPointer) {
        // withCString: passing the String itself made a heap copy of the name for each header.
        _ = name.withCString { rd_kafka_header_add(hdrs, $0, -1, value.baseAddress, value.count) }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, for C APIs.
    public var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}
