import CRdKafka
import Logging

/// Creates topics. Brokers that do not support CreateTopics (the mock cluster) report it,
/// and callers fall back to auto-creation.
public enum KafkaAdmin {
    /// Creates each topic that does not exist yet. "Already exists" counts as success.
    public static func createTopics(bootstrap: String, properties: [String: String] = [:], topics: [String],
                                    partitions: Int, replicationFactor: Int, timeout: Duration, logger: Logger) throws(KafkaError) {
        var props = properties
        props["bootstrap.servers"] = bootstrap
        let conf = try makeConf(props)
        let rk = try makeClient(type: RD_KAFKA_PRODUCER, conf: conf)
        defer { rd_kafka_destroy(rk) }
        let queue = rd_kafka_queue_new(rk)!
        defer { rd_kafka_queue_destroy(queue) }

        var errstr = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
        for t in topics {
            guard let nt = rd_kafka_NewTopic_new(t, Int32(partitions), Int32(replicationFactor), &errstr, errstr.count) else {
                throw KafkaError(kind: .configuration(property: "topic \(t)"), message: "invalid topic \(t)")
            }
            newTopics.append(nt)
        }
        let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, Int32(timeout.milliseconds), &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout.milliseconds), &errstr, errstr.count)
        newTopics.withUnsafeMutableBufferPointer { buf in
            rd_kafka_CreateTopics(rk, buf.baseAddress, buf.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds + 1000)) else {
            throw KafkaError(kind: .timedOut, message: "create topics \(topics): no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "create topics \(topics)") }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for i in 0..<count {
            let r = results[i]
            let e = rd_kafka_topic_result_error(r)
            if e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                throw KafkaError(code: e, context: "create topic \(String(cString: rd_kafka_topic_result_name(r)))")
            }
        }
    }
}
