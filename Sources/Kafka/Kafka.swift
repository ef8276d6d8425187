// Kafka is the Swift face on librdkafka and the only module that imports CRdKafka.
// It owns the producer (idempotent, delivery reports polled from an event queue),
// the consumer (groups, rebalances and commits, also polled as events), topic creation,
// and the mock cluster behind `forewarn dev-kafka`. librdkafka error codes stay inside:
// callers see `KafkaError`.
import CRdKafka
import Logging

/// A Kafka failure with context. `isRetriable` says whether the data may simply be sent again.
public struct KafkaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case configuration(property: String)
        case creation
        case queueFull
        case timedOut
        case purged
        case brokersDown
        case transport
        case messageTooLarge
        case unknownTopic
        case fatal
        case other(name: String)
    }

    public var kind: Kind
    public var message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Whether a failed delivery can be retried by producing the same record again.
    public var isRetriable: Bool {
        switch kind {
        case .messageTooLarge, .configuration, .fatal, .creation: return false
        default: return true
        }
    }

    init(code: rd_kafka_resp_err_t, context: String) {
        let name = String(cString: rd_kafka_err2name(code))
        let text = String(cString: rd_kafka_err2str(code))
        message = "\(context): \(text) (\(name))"
        switch code {
        case RD_KAFKA_RESP_ERR__QUEUE_FULL: kind = .queueFull
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: kind = .timedOut
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT: kind = .purged
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: kind = .brokersDown
        case RD_KAFKA_RESP_ERR__TRANSPORT: kind = .transport
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: kind = .messageTooLarge
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: kind = .unknownTopic
        case RD_KAFKA_RESP_ERR__FATAL: kind = .fatal
        default: kind = .other(name: name)
        }
    }
}

/// librdkafka properties whose values are secret: never logged.
let secretPropertyMarkers = ["password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "ssl_key"]

func isSecretProperty(_ key: String) -> Bool {
    secretPropertyMarkers.contains { key.lowercased().contains($0) }
}

/// Builds a `rd_kafka_conf_t`. Unknown or invalid properties are errors that name the property.
func makeConf(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errstr = [CChar](repeating: 0, count: 512)
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
        let res = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
        if res != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let shown = isSecretProperty(key) ? "(secret)" : "'\(value)'"
            let reason = String(decoding: errstr.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(kind: .configuration(property: key), message: "kafka property '\(key)' = \(shown): \(reason)")
        }
    }
    return conf
}

/// Creates a client from a conf (which librdkafka then owns), mapping failure to an error.
func makeClient(type: rd_kafka_type_t, conf: OpaquePointer) throws(KafkaError) -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        let reason = String(decoding: errstr.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw KafkaError(kind: .creation, message: "cannot create Kafka client: \(reason)")
    }
    return rk
}

/// Forwards a librdkafka log event to swift-log.
func logEvent(_ event: OpaquePointer, logger: Logger) {
    var fac: UnsafePointer<CChar>?
    var str: UnsafePointer<CChar>?
    var level: Int32 = 0
    guard rd_kafka_event_log(event, &fac, &str, &level) == 0 else { return }
    let text = str.map { String(cString: $0) } ?? ""
    let facility = fac.map { String(cString: $0) } ?? ""
    let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
    logger.log(level: swiftLevel, "librdkafka: \(text)", metadata: ["facility": "\(facility)"])
}

/// The librdkafka version linked at run time.
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// A record header.
public struct KafkaHeader: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public init(_ key: String, _ value: [UInt8]) {
        self.key = key
        self.value = value
    }
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = Array(value.utf8)
    }
}
