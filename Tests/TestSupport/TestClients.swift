import Foundation
import Kafka
import Logging
import MQTT
import Synchronization

/// A QoS 1 publisher on libmosquitto that waits for every PUBACK.
public final class TestPublisher: @unchecked Sendable {
    public let client: MQTTClient
    private let thread: Thread

    public init(url: String, clientID: String = "test-pub-\(UUID().uuidString.prefix(8))", username: String? = nil, password: String? = nil,
                tls: Bool = false, caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) throws {
        let port = Int(url.split(separator: ":").last ?? "1883") ?? 1883
        client = try MQTTClient(options: MQTTOptions(host: "127.0.0.1", port: port, clientID: clientID, cleanSession: true,
                                                     username: username, password: password, tls: tls, caFile: caFile, certFile: certFile, keyFile: keyFile,
                                                     reconnectMin: .milliseconds(50), reconnectMax: .milliseconds(500), maxInflight: 200),
                                logger: TestEnvironment.logger)
        let c = client
        thread = Thread { c.run() }
        thread.start()
        let deadline = Date().addingTimeInterval(10)
        while !client.isConnected && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        guard client.isConnected else { throw TestFailure("test publisher could not connect to \(url): \(client.lastError ?? "")") }
    }

    public func publish(_ topic: String, _ payload: String, qos: Int = 1) throws {
        try client.publish(topic: topic, payload: Array(payload.utf8), qos: qos, timeout: .seconds(30))
    }

    public func publish(_ topic: String, bytes: [UInt8]) throws {
        try client.publish(topic: topic, payload: bytes, qos: 1, timeout: .seconds(30))
    }

    /// Waits for every PUBACK, then disconnects.
    public func finish() -> Bool {
        let acked = client.waitForAcknowledgements(timeout: .seconds(30))
        client.stop()
        return acked
    }

    deinit { client.stop() }
}

/// Reads a topic from the beginning with a real librdkafka consumer in a fresh group.
public func consumeAll(bootstrap: String, topic: String, expect count: Int, timeout: TimeInterval,
                       settle: TimeInterval = 1.0) throws -> [KafkaMessage] {
    // Assigned partitions, no group: the reader depends on nothing but the brokers.
    let consumer = try KafkaConsumer(bootstrap: bootstrap, groupID: "test-reader-\(UUID().uuidString.prefix(8))",
                                     properties: ["topic.metadata.refresh.interval.ms": "1000"], logger: TestEnvironment.logger)
    defer { consumer.close() }
    try consumer.assignAll(topic: topic, timeout: .seconds(10))
    var out: [KafkaMessage] = []
    let deadline = Date().addingTimeInterval(timeout)
    var reachedAt: Date?
    // Keep reading a little after reaching the count, so extra (duplicate) records are seen too.
    while Date() < deadline {
        for event in consumer.poll(timeout: .milliseconds(100)) {
            if case let .message(m) = event { out.append(m) }
        }
        if out.count >= count {
            if reachedAt == nil { reachedAt = Date() }
            if Date().timeIntervalSince(reachedAt!) >= settle { break }
        }
    }
    return out
}

/// A reading as the tests publish it and read it back.
public struct PublishedReading: Hashable, Sendable {
    public var machine: String
    public var ts: Int64
    public init(machine: String, ts: Int64) {
        self.machine = machine
        self.ts = ts
    }
}

/// Publishes `count` JSON readings round-robin over `machines` machines with rising ts.
/// Returns what was published (at QoS 1 each PUBACKed by the broker).
@discardableResult
public func publishReadings(_ publisher: TestPublisher, count: Int, machines: Int, startTs: Int64 = 1_700_000_000_000,
                            qos: Int = 1, every: ((Int) -> Void)? = nil) throws -> [PublishedReading] {
    var out: [PublishedReading] = []
    out.reserveCapacity(count)
    for i in 0..<count {
        let machine = String(format: "m%03d", i % machines)
        let ts = startTs + Int64(i)
        try publisher.publish("factory/s1/\(machine)/vib_rms", "{\"ts\": \(ts), \"value\": \(Double(i % 100) / 10), \"unit\": \"mm/s\", \"seq\": \(i)}", qos: qos)
        out.append(PublishedReading(machine: machine, ts: ts))
        every?(i)
    }
    return out
}

/// Parses the readings topic: (reading, gateway, seq) per record.
public struct ReceivedReading: Sendable {
    public var reading: PublishedReading
    public var key: String
    public var gateway: String
    public var seq: Int64
    public var mqttTopic: String
    public var value: String
}

public func parseReceived(_ messages: [KafkaMessage]) -> [ReceivedReading] {
    messages.compactMap { m in
        let text = String(decoding: m.value, as: UTF8.self)
        guard let obj = try? JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any],
              let machine = obj["machine"] as? String, let ts = (obj["ts"] as? NSNumber)?.int64Value,
              let seq = m.header("seq").flatMap(Int64.init) else { return nil }
        return ReceivedReading(reading: PublishedReading(machine: machine, ts: ts), key: m.keyString ?? "",
                               gateway: m.header("gateway") ?? "", seq: seq, mqttTopic: m.header("mqtt_topic") ?? "", value: text)
    }
}

/// For each machine, whether its readings (first occurrence of each seq, in partition order) have rising ts.
public func perMachineOrderViolations(_ received: [ReceivedReading]) -> [String] {
    var seen = Set<Int64>()
    var last: [String: Int64] = [:]
    var violations: [String] = []
    for r in received where seen.insert(r.seq).inserted {
        if let prev = last[r.reading.machine], r.reading.ts <= prev {
            if violations.count < 10 { violations.append("\(r.reading.machine): ts \(r.reading.ts) (seq \(r.seq)) after \(prev)") }
        }
        last[r.reading.machine] = r.reading.ts
    }
    return violations
}

/// A datagram socket to pass as `NOTIFY_SOCKET`: collects what a service tells "systemd".
public final class NotifySocket: @unchecked Sendable {
    // @unchecked: `fd` and `path` never change; `received` is only touched under `lock`.
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []

    public init(directory: String) throws {
        path = directory + "/notify.sock"
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket(AF_UNIX) failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw TestFailure("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw TestFailure("cannot bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram, waiting up to `timeout`; nil if none came.
    public func receive(timeout: TimeInterval) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        let message = String(decoding: buf[0..<n], as: UTF8.self)
        lock.lock(); received.append(message); lock.unlock()
        return message
    }

    /// Waits up to `timeout` for a datagram equal to `message`; everything received is kept in `all`.
    public func waitFor(_ message: String, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if receive(timeout: max(0.01, deadline.timeIntervalSinceNow)) == message { return true }
        }
        return false
    }

    /// Reads datagrams until none comes for `quiet` seconds (bounded by `timeout`); returns them.
    public func drain(quiet: TimeInterval, timeout: TimeInterval) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, let m = receive(timeout: min(quiet, max(0.01, deadline.timeIntervalSinceNow))) { out.append(m) }
        return out
    }

    public var all: [String] { lock.lock(); defer { lock.unlock() }; return received }
}

/// What one service's /metrics must follow, as the list of what does not hold (empty when all
/// do): the process metrics; a HELP line for every family; every metric the Grafana dashboard
/// queries for this service (names not starting with `otherServicePrefix`, at least
/// `minDashboardMetrics` of them) present; and a clean `promtool check metrics` where promtool is
/// installed (`promtoolChecked` is false where it is not).
public func metricsConventionProblems(_ body: String, service: String, dashboard: String, otherServicePrefix: String,
                                      minDashboardMetrics: Int, directory: String) throws -> (problems: [String], promtoolChecked: Bool) {
    var problems: [String] = []
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"]
    where !body.contains("\n\(name) ") { problems.append("\(name) missing") }
    let helped = Set(body.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) })
    let unhelped = metricFamilies(body).subtracting(helped)
    if !unhelped.isEmpty { problems.append("no HELP: \(unhelped.sorted())") }
    let mine = try dashboardMetricNames(dashboard).filter { !$0.hasPrefix(otherServicePrefix) }
    if mine.count < minDashboardMetrics { problems.append("only \(mine.count) dashboard metrics for the \(service): \(mine.sorted())") }
    let missing = mine.subtracting(metricSampleNames(body))
    if !missing.isEmpty { problems.append("the dashboard queries metrics the \(service) does not emit: \(missing.sorted())") }
    guard let check = try promtoolCheckMetrics(body, directory: directory) else { return (problems, false) }
    if check.status != 0 || !check.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        problems.append("promtool check metrics: exit \(check.status)\n\(check.output)")
    }
    return (problems, true)
}

/// `promtool check metrics` on an exposition: nil when promtool is not installed (Debian's
/// `prometheus` package has it), else its exit status and what it reported.
public func promtoolCheckMetrics(_ exposition: String, directory: String) throws -> (status: Int32, output: String)? {
    let candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
    guard let promtool = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
    let input = directory + "/metrics.txt"
    try exposition.write(toFile: input, atomically: true, encoding: .utf8)
    let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec '\(promtool)' check metrics < '\(input)'"], directory: directory, name: "promtool")
    guard let status = child.waitForExit(timeout: 30) else { child.stop(); throw TestFailure("promtool did not finish in 30 s") }
    return (status, child.stdout + child.stderr)
}

/// The metric family names in a Prometheus exposition (from its `# TYPE` lines).
public func metricFamilies(_ exposition: String) -> Set<String> {
    Set(exposition.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) })
}

/// Metric names that the sources under `directory` create with swift-metrics (`Counter(label: "…"` and the like).
public func metricNamesInSources(_ directory: String) -> Set<String> {
    var names = Set<String>()
    let files = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
    for f in files {
        guard let text = try? String(contentsOfFile: directory + "/" + f, encoding: .utf8) else { continue }
        for kind in ["Counter", "Gauge", "Timer", "Recorder", "Meter", "FloatingPointCounter"] {
            for part in text.components(separatedBy: "\(kind)(label: \"").dropFirst() {
                if let end = part.firstIndex(of: "\"") { names.insert(String(part[..<end])) }
            }
        }
    }
    return names
}

/// The sample names in a Prometheus exposition (`name` of each `name{…} value` line; a histogram's
/// `_bucket`, `_sum` and `_count` included).
public func metricSampleNames(_ exposition: String) -> Set<String> {
    Set(exposition.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map { String($0.prefix { $0 != "{" && $0 != " " }) })
}

/// The forewarn_* and process_* metric names that a Grafana dashboard's queries use.
public func dashboardMetricNames(_ path: String) throws -> Set<String> {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let dash = try JSONSerialization.jsonObject(with: data) as? [String: Any], let panels = dash["panels"] as? [[String: Any]] else {
        throw TestFailure("\(path) is not a Grafana dashboard")
    }
    var queries: [String] = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
    let variables = (dash["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
    queries += variables.compactMap { $0["definition"] as? String }
    var names = Set<String>()
    for q in queries {
        var rest = Substring(q)
        while let r = rest.range(of: #"(forewarn|process)_[a-z_]+"#, options: .regularExpression) {
            names.insert(String(rest[r]))
            rest = rest[r.upperBound...]
        }
    }
    return names
}
