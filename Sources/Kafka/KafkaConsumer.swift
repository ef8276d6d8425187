import CRdKafka
import Logging

/// One consumed record, copied out of librdkafka's buffers.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Record timestamp, epoch ms, or nil when the broker gave none.
    public var timestamp: Int64?

    public func header(_ key: String) -> String? {
        headers.last(where: { $0.key == key }).map { String(decoding: $0.value, as: UTF8.self) }
    }

    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

public struct TopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

public enum KafkaConsumerEvent: Sendable {
    case message(KafkaMessage)
    /// The group gave us these partitions (already assigned when this is returned).
    case assigned([TopicPartition])
    /// These partitions were taken away (already unassigned when this is returned).
    case revoked([TopicPartition])
    /// Reached the end of a partition (only with `enable.partition.eof=true`).
    case partitionEOF(TopicPartition)
    case error(KafkaError)
}

/// A group consumer. Rebalances, messages and errors arrive through one polled event queue.
/// Offsets are committed explicitly (`enable.auto.commit=false`), so the caller decides
/// when a record counts as processed.
public final class KafkaConsumer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let queue: OpaquePointer
    private let logger: Logger
    private var closed = false

    public init(bootstrap: String, groupID: String, properties: [String: String] = [:], logger: Logger) throws(KafkaError) {
        var props: [String: String] = [
            "bootstrap.servers": bootstrap,
            "group.id": groupID,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "log.queue": "true",
        ]
        for (k, v) in properties { props[k] = v }
        let conf = try makeConf(props)
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_OFFSET_COMMIT))
        handle = try makeClient(type: RD_KAFKA_CONSUMER, conf: conf)
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        rd_kafka_set_log_queue(handle, queue)
        self.logger = logger
    }

    deinit {
        close()
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
    }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for t in topics { rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "subscribe to \(topics)") }
    }

    /// Reads every partition of `topic` from the beginning, without a group (tools and tests).
    public func assignAll(topic: String, timeout: Duration) throws(KafkaError) {
        let count = try partitionCount(topic: topic, timeout: timeout)
        let list = rd_kafka_topic_partition_list_new(Int32(count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<Int32(count) {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        let err = rd_kafka_assign(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "assign \(topic)") }
    }

    /// Reads every record of `topic` that exists now, from the earliest retained offset up to the
    /// high watermarks at the call, without a group (tools and tests). Bounded by `timeout`.
    /// Returns the watermarks it read between.
    @discardableResult
    public func readToEnd(topic: String, timeout: Duration, _ body: (KafkaMessage) -> Void) throws(KafkaError) -> [TopicPartition: (low: Int64, high: Int64)] {
        let count = try partitionCount(topic: topic, timeout: .seconds(10))
        try assignAll(topic: topic, timeout: .seconds(10))
        let marks = watermarks((0..<Int32(count)).map { TopicPartition(topic: topic, partition: $0) }, timeout: .seconds(10))
        var remaining = marks.mapValues(\.high).filter { $0.value > 0 }
        let deadline = ContinuousClock.now + timeout
        while !remaining.isEmpty && ContinuousClock.now < deadline {
            for e in poll(timeout: .milliseconds(200), max: 10_000) {
                guard case let .message(m) = e else { continue }
                let tp = TopicPartition(topic: m.topic, partition: m.partition)
                if let high = remaining[tp], m.offset + 1 >= high { remaining.removeValue(forKey: tp) }
                body(m)
            }
        }
        if !remaining.isEmpty { throw KafkaError(kind: .timedOut, message: "read \(topic): partitions \(remaining.keys.map(\.partition).sorted()) not read to their end within \(timeout)") }
        return marks
    }

    /// The number of partitions of `topic`, from the cluster's metadata.
    public func partitionCount(topic: String, timeout: Duration) throws(KafkaError) -> Int {
        let rkt = rd_kafka_topic_new(handle, topic, nil)
        defer { rd_kafka_topic_destroy(rkt) }
        var md: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &md, Int32(timeout.milliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { throw KafkaError(code: err, context: "metadata for \(topic)") }
        defer { rd_kafka_metadata_destroy(md) }
        guard md.pointee.topic_cnt > 0 else { throw KafkaError(kind: .unknownTopic, message: "topic \(topic) not found") }
        let t = md.pointee.topics[0]
        if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: t.err, context: "metadata for \(topic)") }
        return Int(t.partition_cnt)
    }

    /// Waits up to `timeout` and returns the ready events (at most `max`), records copied out.
    public func poll(timeout: Duration, max: Int = 1000) -> [KafkaConsumerEvent] {
        var out: [KafkaConsumerEvent] = []
        pollEach(timeout: timeout, max: max) { polled in
            switch polled {
            case let .record(r): out.append(.message(r.copy()))
            case let .event(e): out.append(e)
            }
        }
        return out
    }

    /// Waits up to `timeout` and hands each ready event (at most `max`) to `body` as it comes:
    /// records as views into librdkafka's buffers, valid only during the call (no copy, no
    /// allocation per record; the detector reads its records this way). Returns the count.
    @discardableResult
    public func pollEach(timeout: Duration, max: Int, _ body: (KafkaPolled) -> Void) -> Int {
        var count = 0
        var wait = Int32(timeout.milliseconds)
        var topics = TopicNames()
        while count < max, let event = rd_kafka_queue_poll(queue, wait) {
            wait = 0
            defer { rd_kafka_event_destroy(event) }
            switch Int32(rd_kafka_event_type(event)) {
            case Int32(RD_KAFKA_EVENT_FETCH):
                while let msg = rd_kafka_event_message_next(event) {
                    count += 1
                    let msg = UnsafeMutablePointer(mutating: msg)
                    if msg.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                        body(.event(.partitionEOF(TopicPartition(topic: topics.name(msg.pointee.rkt), partition: msg.pointee.partition))))
                    } else if msg.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                        body(.event(.error(KafkaError(code: msg.pointee.err, context: "fetch"))))
                    } else {
                        body(.record(KafkaRecordView(msg, topic: topics.name(msg.pointee.rkt))))
                    }
                }
            case Int32(RD_KAFKA_EVENT_REBALANCE):
                count += 1
                let err = rd_kafka_event_error(event)
                let parts = rd_kafka_event_topic_partition_list(event)
                let list = parts.map(partitions(of:)) ?? []
                if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                    _ = rd_kafka_assign(handle, parts)
                    body(.event(.assigned(list)))
                } else {
                    _ = rd_kafka_assign(handle, nil)
                    body(.event(.revoked(list)))
                }
            case Int32(RD_KAFKA_EVENT_ERROR):
                count += 1
                let code = rd_kafka_event_error(event)
                let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
                var error = KafkaError(code: code, context: "kafka")
                error.message = "kafka: \(text)"
                body(.event(.error(error)))
            case Int32(RD_KAFKA_EVENT_OFFSET_COMMIT):
                let err = rd_kafka_event_error(event)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
                    count += 1
                    body(.event(.error(KafkaError(code: err, context: "offset commit"))))
                }
            case Int32(RD_KAFKA_EVENT_LOG):
                logEvent(event, logger: logger)
            default:
                break
            }
        }
        return count
    }

    /// Commits "next offset to read" per partition, synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in offsets {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
        }
        let err = rd_kafka_commit(handle, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "commit offsets") }
    }

    /// The committed offsets of the group for these partitions (-1001 where none).
    public func committed(_ partitions: [TopicPartition], timeout: Duration) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        let err = rd_kafka_committed(handle, list, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "read committed offsets") }
        var out: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            out[TopicPartition(topic: String(cString: e.topic), partition: e.partition)] = e.offset
        }
        return out
    }

    /// The high watermark (offset after the last record) of each partition, from the broker.
    public func highWatermarks(_ partitions: [TopicPartition], timeout: Duration) -> [TopicPartition: Int64] {
        watermarks(partitions, timeout: timeout).mapValues(\.high)
    }

    /// High watermarks as last seen in this consumer's fetch responses: no request, never
    /// blocks. Partitions not fetched yet are missing. Long-running loops use this one.
    public func cachedHighWatermarks(_ partitions: [TopicPartition]) -> [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        for tp in partitions {
            var low: Int64 = 0, high: Int64 = 0
            if rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 {
                out[tp] = high
            }
        }
        return out
    }

    /// Low (first retained) and high (next to be written) offsets of each partition, from the broker.
    /// Caution: librdkafka before 2.3.0 (Debian ships 2.0.2) can ignore `timeout` and block until
    /// the partition's broker is back (librdkafka#2588), so only one-shot tools call this.
    public func watermarks(_ partitions: [TopicPartition], timeout: Duration) -> [TopicPartition: (low: Int64, high: Int64)] {
        var out: [TopicPartition: (low: Int64, high: Int64)] = [:]
        for tp in partitions {
            var low: Int64 = 0, high: Int64 = 0
            if rd_kafka_query_watermark_offsets(handle, tp.topic, tp.partition, &low, &high, Int32(timeout.milliseconds)) == RD_KAFKA_RESP_ERR_NO_ERROR {
                out[tp] = (low, high)
            }
        }
        return out
    }

    /// Leaves the group cleanly. Safe to call twice.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = rd_kafka_consumer_close(handle)
    }

    private func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return TopicPartition(topic: String(cString: e.topic), partition: e.partition)
        }
    }
}

/// What `pollEach` hands over: a record, borrowed, or any other event.
public enum KafkaPolled {
    case record(KafkaRecordView)
    case event(KafkaConsumerEvent)
}

/// One consumed record, read in place in librdkafka's buffers. Valid only inside the `pollEach`
/// body it is passed to; `copy()` keeps it.
public struct KafkaRecordView {
    private let msg: UnsafeMutablePointer<rd_kafka_message_t>
    public let topic: String

    init(_ msg: UnsafeMutablePointer<rd_kafka_message_t>, topic: String) {
        self.msg = msg
        self.topic = topic
    }

    public var partition: Int32 { msg.pointee.partition }
    public var offset: Int64 { msg.pointee.offset }

    /// The value's bytes, for the duration of `body`.
    public func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: msg.pointee.payload, count: msg.pointee.payload == nil ? 0 : msg.pointee.len))
    }

    /// The last header called `name`, for the duration of `body` (nil when there is none).
    public func withHeader<R>(_ name: String, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try name.withCString { try withHeader(cName: $0, body) }
    }

    /// `withHeader` for a literal name: passed to C as the literal's own bytes (a `String`
    /// argument is copied into a new C string, a malloc and free per call).
    public func withHeader<R>(literal name: StaticString, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try name.utf8Start.withMemoryRebound(to: CChar.self, capacity: name.utf8CodeUnitCount + 1) { try withHeader(cName: $0, body) }
    }

    private func withHeader<R>(cName: UnsafePointer<CChar>, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        var hdrs: OpaquePointer?
        var val: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs,
              rd_kafka_header_get_last(hdrs, cName, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return try body(nil) }
        return try body(UnsafeRawBufferPointer(start: val, count: val == nil ? 0 : size))
    }

    /// The record as a value that outlives the poll.
    public func copy() -> KafkaMessage {
        let m = msg.pointee
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var idx = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append(KafkaHeader(name.map { String(cString: $0) } ?? "", bytes))
                idx += 1
            }
        }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(msg, &tsType)
        return KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                            headers: headers, timestamp: tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts)
    }
}

/// Topic names by librdkafka topic handle, for one poll: a record's topic is read once per
/// topic, not once per record.
private struct TopicNames {
    private var last: (OpaquePointer, String)?
    mutating func name(_ rkt: OpaquePointer?) -> String {
        guard let rkt else { return "" }
        if let last, last.0 == rkt { return last.1 }
        let name = String(cString: rd_kafka_topic_name(rkt))
        last = (rkt, name)
        return name
    }
}
