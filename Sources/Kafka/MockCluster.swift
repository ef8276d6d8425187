import CRdKafka

/// librdkafka's in-process mock Kafka cluster: the real Kafka protocol over TCP on
/// 127.0.0.1, data in memory only. For development, tests and demos, never production.
public final class MockCluster: @unchecked Sendable {
    private let handle: OpaquePointer     // the rd_kafka_t that hosts the cluster
    private let cluster: OpaquePointer    // rd_kafka_mock_cluster_t
    public let brokerCount: Int

    public init(brokers: Int) throws(KafkaError) {
        // A quiet producer instance hosts the cluster's threads.
        let conf = try makeConf(["log_level": "3"])
        handle = try makeClient(type: RD_KAFKA_PRODUCER, conf: conf)
        guard let c = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_destroy(handle)
            throw KafkaError(kind: .creation, message: "cannot start the mock cluster")
        }
        cluster = c
        brokerCount = brokers
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(handle)
    }

    /// `host:port,host:port,...` of the brokers.
    public var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "create topic \(name)") }
    }

    /// Takes every broker down: connections close and new ones are refused.
    public func setAllBrokers(up: Bool) {
        for id in 1...Int32(brokerCount) {
            if up { _ = rd_kafka_mock_broker_set_up(cluster, id) } else { _ = rd_kafka_mock_broker_set_down(cluster, id) }
        }
    }

    /// Delays every broker's responses by `milliseconds`: a slow or distant network.
    public func setAllBrokers(rttMilliseconds ms: Int) {
        for id in 1...Int32(brokerCount) { _ = rd_kafka_mock_broker_set_rtt(cluster, id, Int32(ms)) }
    }

    /// Makes the next `count` Produce requests fail with a retriable broker error.
    public func failNextProduceRequests(_ count: Int, with error: MockProduceError = .notLeaderForPartition) {
        let errors = [rd_kafka_resp_err_t](repeating: error.code, count: count)
        errors.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, 0, count, $0.baseAddress) }
    }

    /// Takes one broker (1-based id) down or up: a partial outage of the partitions it leads.
    public func setBroker(_ id: Int, up: Bool) throws(KafkaError) {
        try checkBroker(id)
        let err = up ? rd_kafka_mock_broker_set_up(cluster, Int32(id)) : rd_kafka_mock_broker_set_down(cluster, Int32(id))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "broker \(id) \(up ? "up" : "down")") }
    }

    /// Moves the leadership of one partition to broker `id` (a leader election, as after a broker restart).
    public func setLeader(topic: String, partition: Int, broker id: Int) throws(KafkaError) {
        try checkBroker(id)
        let err = rd_kafka_mock_partition_set_leader(cluster, topic, Int32(partition), Int32(id))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: err, context: "move the leader of \(topic) [\(partition)] to broker \(id)")
        }
    }

    private func checkBroker(_ id: Int) throws(KafkaError) {
        guard (1...brokerCount).contains(id) else {
            throw KafkaError(kind: .configuration(property: "broker"), message: "broker \(id) does not exist (the cluster has 1...\(brokerCount))")
        }
    }
}

/// The broker errors a mock cluster can inject into Produce requests. All are retriable for the
/// idempotent producer; they rehearse a broker that is busy, moving leaders or short of replicas.
public enum MockProduceError: String, Sendable, CaseIterable {
    case notLeaderForPartition = "not-leader"
    case requestTimedOut = "timed-out"
    case notEnoughReplicas = "not-enough-replicas"
    case leaderNotAvailable = "leader-not-available"

    var code: rd_kafka_resp_err_t {
        switch self {
        case .notLeaderForPartition: return RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
        case .requestTimedOut: return RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT
        case .notEnoughReplicas: return RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS
        case .leaderNotAvailable: return RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE
        }
    }
}
