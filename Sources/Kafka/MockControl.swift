// MockControl is the line protocol of `forewarn dev-kafka --control FIFO`: one command per line,
// parsed here (pure) and applied to a `MockCluster`. It lets a fault rehearsal (scripts/chaos)
// take single brokers down, move partition leaders and inject Produce errors while clients run.

/// One control command for the mock cluster.
public enum MockControlCommand: Sendable, Equatable {
    /// `down` / `up`: every broker.
    case allBrokers(up: Bool)
    /// `broker-down N` / `broker-up N`: one broker (1-based).
    case broker(Int, up: Bool)
    /// `leader TOPIC PARTITION BROKER`: move a partition's leadership.
    case leader(topic: String, partition: Int, broker: Int)
    /// `produce-errors KIND COUNT`: the next COUNT Produce requests fail with KIND
    /// (`not-leader`, `timed-out`, `not-enough-replicas`, `leader-not-available`).
    case produceErrors(MockProduceError, count: Int)

    /// The syntax, for error messages and `--help`.
    public static let usage = "down | up | broker-down N | broker-up N | leader TOPIC PARTITION BROKER | produce-errors (\(MockProduceError.allCases.map(\.rawValue).joined(separator: "|"))) COUNT"

    /// Parses one line; the error names what is wrong with it.
    public static func parse(_ line: String) throws(MockControlError) -> MockControlCommand {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let verb = words.first else { throw MockControlError(line: line, problem: "empty command") }
        let args = Array(words.dropFirst())
        switch verb {
        case "down", "up":
            try expect(args, 0, line)
            return .allBrokers(up: verb == "up")
        case "broker-down", "broker-up":
            try expect(args, 1, line)
            return .broker(try number(args[0], "broker", line, min: 1), up: verb == "broker-up")
        case "leader":
            try expect(args, 3, line)
            return .leader(topic: args[0], partition: try number(args[1], "partition", line, min: 0),
                           broker: try number(args[2], "broker", line, min: 1))
        case "produce-errors":
            try expect(args, 2, line)
            guard let kind = MockProduceError(rawValue: args[0]) else {
                throw MockControlError(line: line, problem: "unknown error kind '\(args[0])'")
            }
            return .produceErrors(kind, count: try number(args[1], "count", line, min: 1, max: 10_000))
        default:
            throw MockControlError(line: line, problem: "unknown command '\(verb)'")
        }
    }

    /// Applies the command to the cluster.
    public func apply(to cluster: MockCluster) throws(KafkaError) {
        switch self {
        case .allBrokers(let up): cluster.setAllBrokers(up: up)
        case .broker(let id, let up): try cluster.setBroker(id, up: up)
        case .leader(let topic, let partition, let broker): try cluster.setLeader(topic: topic, partition: partition, broker: broker)
        case .produceErrors(let kind, let count): cluster.failNextProduceRequests(count, with: kind)
        }
    }

    private static func expect(_ args: [String], _ n: Int, _ line: String) throws(MockControlError) {
        guard args.count == n else { throw MockControlError(line: line, problem: "expected \(n) argument(s), got \(args.count)") }
    }

    private static func number(_ s: String, _ what: String, _ line: String, min: Int, max: Int = 1 << 20) throws(MockControlError) -> Int {
        guard let v = Int(s), v >= min, v <= max else {
            throw MockControlError(line: line, problem: "\(what) must be a whole number in \(min)...\(max), got '\(s)'")
        }
        return v
    }
}

/// A control line that cannot be parsed.
public struct MockControlError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: String
    public var problem: String
    public var description: String { "bad control command '\(line)': \(problem) (expected: \(MockControlCommand.usage))" }
}
