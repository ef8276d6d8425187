// The detector service against dev-kafka: readings produced to Kafka with a real producer,
// alerts read back with a real consumer, offsets checked in the consumer group.
import Detection
import Foundation
import ForewarnCore
import Kafka
import Testing
import TestSupport

/// Pump readings for one machine at 1 Hz: healthy noise, with vib_rms raised in `fault`.
func pumpReadings(machine: String, from start: Int, count: Int, fault: Range<Int>? = nil, seed: UInt64 = 7) -> [Reading] {
    var rng = SplitMix64(seed: seed &+ UInt64(start))
    var out: [Reading] = []
    let t0: Int64 = 1_767_225_600_000
    for i in start..<(start + count) {
        let ts = t0 + Int64(i) * 1000
        let faulty = fault?.contains(i) ?? false
        let values: [(String, Double)] = [
            ("vib_rms", (faulty ? 9.0 : 2.5) + 0.1 * rng.nextGaussian()),
            ("temp_c", 55 + 0.5 * rng.nextGaussian()),
            ("current_a", 20 + 0.3 * rng.nextGaussian()),
            ("pressure_bar", 6 + 0.05 * rng.nextGaussian()),
        ]
        for (s, v) in values { out.append(Reading(site: "s1", machine: machine, sensor: s, ts: ts, value: v)) }
    }
    return out
}

/// Produces readings as the gateway would (key machine, headers gateway and seq) and waits for acks.
func produce(_ readings: [Reading], bootstrap: String, firstSeq: Int64) throws {
    let producer = try KafkaProducer(bootstrap: bootstrap, logger: TestEnvironment.logger)
    var acked = 0  // reports that arrive while producing count too
    for (i, r) in readings.enumerated() {
        let seq = firstSeq + Int64(i)
        try producer.produce(topic: "forewarn.readings", key: Array(r.machine.utf8), value: r.canonicalJSON(),
                             headers: [KafkaHeader("gateway", "gw1"), KafkaHeader("seq", String(seq)), KafkaHeader("mqtt_topic", "t")], id: UInt64(seq))
        if i % 1000 == 0 { acked += producer.poll(timeout: .zero).count(where: { if case .delivered = $0 { true } else { false } }) }
    }
    let deadline = Date().addingTimeInterval(30)
    while acked < readings.count && Date() < deadline {
        for e in producer.poll(timeout: .milliseconds(100)) { if case .delivered = e { acked += 1 } }
    }
    guard acked == readings.count else { throw TestFailure("only \(acked) of \(readings.count) readings acknowledged") }
}

struct AlertRecord {
    var alertID: String
    var state: String
    var machine: String
    var kind: String
    var severity: String
    var sensors: [String]
    var openedAt: Int64
    var ts: Int64
    var json: [String: Any]
}

func alerts(bootstrap: String, until predicate: ([AlertRecord]) -> Bool, timeout: TimeInterval) throws -> [AlertRecord] {
    let consumer = try KafkaConsumer(bootstrap: bootstrap, groupID: "alert-reader-\(UUID().uuidString.prefix(6))", logger: TestEnvironment.logger)
    defer { consumer.close() }
    try consumer.assignAll(topic: "forewarn.alerts", timeout: .seconds(10))
    var out: [AlertRecord] = []
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline && !predicate(out) {
        for e in consumer.poll(timeout: .milliseconds(100)) {
            guard case let .message(m) = e, let obj = try? JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any] else { continue }
            out.append(AlertRecord(alertID: obj["alert_id"] as? String ?? "", state: obj["state"] as? String ?? "", machine: obj["machine"] as? String ?? "",
                                   kind: obj["kind"] as? String ?? "", severity: obj["severity"] as? String ?? "",
                                   sensors: obj["sensors"] as? [String] ?? [], openedAt: (obj["opened_at"] as? NSNumber)?.int64Value ?? 0,
                                   ts: (obj["ts"] as? NSNumber)?.int64Value ?? 0, json: obj))
        }
    }
    return out
}

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite("Detector service with dev-kafka", .serialized)
struct DetectorServiceTests {
    func startDetector(dir: String, kafka: DevKafka, name: String = "detector") throws -> (ChildProcess, Int) {
        let port = freePort()
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                     arguments: ["detector", "--kafka", kafka.bootstrap, "--models", repoRoot + "/models", "--state-dir", dir + "/state",
                                                 "--http", "127.0.0.1:\(port)", "--set", "checkpoint-interval=500ms"],
                                     directory: dir, name: name)
        guard waitForPort(port) else { throw TestFailure("detector did not start: \(child.stderr)") }
        return (child, port)
    }

    func committed(bootstrap: String) throws -> Int64 {
        let c = try KafkaConsumer(bootstrap: bootstrap, groupID: "forewarn-detector", logger: TestEnvironment.logger)
        defer { c.close() }
        let n = try c.partitionCount(topic: "forewarn.readings", timeout: .seconds(5))
        let offsets = try c.committed((0..<Int32(n)).map { TopicPartition(topic: "forewarn.readings", partition: $0) }, timeout: .seconds(5))
        return offsets.values.filter { $0 >= 0 }.reduce(0, +)
    }

    @Test("two instances in one group share the partitions, and every reading is scored exactly once")
    func twoInstancesSharePartitions() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-pair")
        let kafka = try DevKafka(directory: dir, partitions: 4)
        defer { kafka.stop() }
        let (a, portA) = try startDetector(dir: dir, kafka: kafka, name: "detector-a")
        defer { a.stop() }
        let (b, portB) = try startDetector(dir: dir, kafka: kafka, name: "detector-b")
        defer { b.stop() }
        func status(_ port: Int) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(httpGet(port: port, path: "/healthz").1.utf8)) as? [String: Any]) ?? [:]
        }
        func partitions(_ port: Int) -> [String] { status(port)["partitions"] as? [String] ?? [] }
        var deadline = Date().addingTimeInterval(40)
        while (partitions(portA).isEmpty || partitions(portB).isEmpty || partitions(portA).count + partitions(portB).count != 4) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(!partitions(portA).isEmpty && !partitions(portB).isEmpty, "both instances hold partitions")
        #expect(Set(partitions(portA) + partitions(portB)).count == 4, "together they hold all four, none twice")

        var readings: [Reading] = []
        for m in 0..<8 { readings += pumpReadings(machine: "m\(m)", from: 0, count: 50) }
        try produce(readings, bootstrap: kafka.bootstrap, firstSeq: 1)
        func scored(_ port: Int) -> Int { (status(port)["readings"] as? NSNumber)?.intValue ?? 0 }
        deadline = Date().addingTimeInterval(30)
        while scored(portA) + scored(portB) < readings.count && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(scored(portA) + scored(portB) == readings.count)
        #expect(scored(portA) > 0 && scored(portB) > 0, "the work is shared")
    }

    @Test("a gateway's re-sent readings (same gateway and seq, read from the record headers) are skipped and counted; another gateway's seq and a bad payload are not mistaken for them")
    func resentReadingsAreSkippedByGatewayAndSeq() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-dedupe")
        let kafka = try DevKafka(directory: dir, partitions: 1)
        defer { kafka.stop() }
        let (detector, port) = try startDetector(dir: dir, kafka: kafka)
        defer { detector.stop() }
        let readings = pumpReadings(machine: "m1", from: 0, count: 50)  // 200 readings, seq 1...200
        try produce(readings, bootstrap: kafka.bootstrap, firstSeq: 1)
        try produce(Array(readings[100..<150]), bootstrap: kafka.bootstrap, firstSeq: 101)  // re-sent: 50 duplicates
        let producer = try KafkaProducer(bootstrap: kafka.bootstrap, logger: TestEnvironment.logger)
        let later = pumpReadings(machine: "m2", from: 0, count: 1)[0]
        try producer.produce(topic: "forewarn.readings", key: Array("m2".utf8), value: later.canonicalJSON(),
                             headers: [KafkaHeader("gateway", "gw2"), KafkaHeader("seq", "1")], id: 1)  // another gateway: new
        try producer.produce(topic: "forewarn.readings", key: Array("m1".utf8), value: Array(#"{"ts": "#.utf8),
                             headers: [KafkaHeader("gateway", "gw1"), KafkaHeader("seq", "201")], id: 2)  // not JSON
        var acked = 0
        let ackDeadline = Date().addingTimeInterval(20)
        while acked < 2 && Date() < ackDeadline { acked += producer.poll(timeout: .milliseconds(100)).count { if case .delivered = $0 { true } else { false } } }
        #expect(acked == 2)
        func metric(_ name: String) -> Int { Int(metricSum(port: port, prefix: name + " ")) }
        let deadline = Date().addingTimeInterval(30)
        while metric("forewarn_detector_readings_total") + metric("forewarn_detector_duplicate_readings_total")
                + metric("forewarn_detector_unparseable_readings_total") < 252 && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(metric("forewarn_detector_readings_total") == 201, "200 from gw1 and 1 from gw2 scored")
        #expect(metric("forewarn_detector_duplicate_readings_total") == 50)
        #expect(metric("forewarn_detector_unparseable_readings_total") == 1)
    }

    @Test("with Kafka gone, SIGTERM still stops the detector promptly (librdkafka 2.0.2's watermark query would hang)")
    func stopsWhileKafkaIsGone() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-kafka-gone")
        // A slow network (every response 1.5 s late) keeps requests in flight when Kafka dies.
        let kafka = try DevKafka(directory: dir, partitions: 2, rttMilliseconds: 1500)
        defer { kafka.stop() }
        let (detector, port) = try startDetector(dir: dir, kafka: kafka)
        defer { detector.stop(grace: 1) }
        try produce(pumpReadings(machine: "m1", from: 0, count: 100), bootstrap: kafka.bootstrap, firstSeq: 1)
        func scored() -> Int {
            ((try? JSONSerialization.jsonObject(with: Data(httpGet(port: port, path: "/healthz").1.utf8)) as? [String: Any])?["readings"] as? NSNumber)?.intValue ?? 0
        }
        let deadline = Date().addingTimeInterval(60)
        while scored() < 400 && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(scored() == 400)
        kafka.stop()
        // Wait until the loop has run against the dead cluster: health names the Kafka error.
        let deadline2 = Date().addingTimeInterval(30)
        var health = httpGet(port: port, path: "/healthz")
        while health.0 != 503 && Date() < deadline2 {
            Thread.sleep(forTimeInterval: 0.1)
            health = httpGet(port: port, path: "/healthz")
        }
        #expect(health.0 == 503, "health reports Kafka gone: \(health.1)")
        detector.signal(SIGTERM)
        let status = detector.waitForExit(timeout: 20)
        #expect(status != nil, "the detector ignored SIGTERM for 20 s with Kafka gone")
    }

    @Test("a fault opens an alert, recovery resolves it, offsets are committed; a restart needs no new warm-up")
    func alertLifecycleAndRestart() throws {
        let dir = TestEnvironment.temporaryDirectory("detector")
        let kafka = try DevKafka(directory: dir, partitions: 2)
        defer { kafka.stop() }
        var (detector, port) = try startDetector(dir: dir, kafka: kafka)
        defer { detector.stop() }

        // 600 s healthy (warm-up is 400), 60 s with vib_rms at 9 mm/s (beyond the 7.1 critical limit),
        // then 19 min healthy: the pump model resolves only after 15 min below its close threshold.
        let first = pumpReadings(machine: "p1", from: 0, count: 1800, fault: 600..<660)
        try produce(first, bootstrap: kafka.bootstrap, firstSeq: 1)
        // A reading that is not JSON is counted and skipped, and does not stop the stream.
        let producer = try KafkaProducer(bootstrap: kafka.bootstrap, logger: TestEnvironment.logger)
        try producer.produce(topic: "forewarn.readings", key: Array("p1".utf8), value: Array("garbage".utf8), headers: [], id: 1)
        _ = producer.poll(timeout: .seconds(2))

        let got = try alerts(bootstrap: kafka.bootstrap, until: { a in a.contains { $0.state == "resolved" && $0.kind == "machine" } }, timeout: 60)
        let machine = got.filter { $0.kind == "machine" }
        let open = try #require(machine.first { $0.state == "open" }, "alerts: \(got.map { "\($0.kind) \($0.state)" })")
        let resolved = try #require(machine.first { $0.state == "resolved" })
        #expect(machine.filter { $0.state == "open" }.count == 1, "one episode, one open")
        #expect(open.alertID == resolved.alertID)
        #expect(open.machine == "p1")
        #expect(open.severity == "critical")
        #expect(open.sensors.contains("vib_rms"))
        let faultStart: Int64 = 1_767_225_600_000 + 600_000
        #expect(open.openedAt >= faultStart && open.openedAt <= faultStart + 15_000, "opens within 15 readings of the fault (open-count 10, median-of-5 filter)")
        #expect(resolved.ts > faultStart + 60_000 + 15 * 60_000, "resolves after the fault ends and the 15-minute close hold")
        for key in ["alert_id", "machine", "site", "state", "severity", "kind", "model", "sensors", "score", "threshold", "opened_at", "ts", "evidence", "time_to_threshold_s"] {
            #expect(open.json[key] != nil, "alert has \(key)")
        }
        #expect(got.allSatisfy { $0.machine == "p1" }, "no alerts for anything else")

        // Offsets: everything consumed is committed (7200 readings + 1 garbage) once alerts are acknowledged.
        let deadline = Date().addingTimeInterval(20)
        while (try? committed(bootstrap: kafka.bootstrap)) ?? 0 < 7201 && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(try committed(bootstrap: kafka.bootstrap) == 7201)
        let metrics = httpGet(port: port, path: "/metrics").1
        #expect(metrics.contains("forewarn_detector_unparseable_readings_total 1"))
        #expect(metrics.contains("forewarn_detector_alerts_total{"))

        // Restart: state comes back from the checkpoint, so a new fault is caught at once.
        detector.stop()
        #expect(detector.waitForExit(timeout: 15) == 0)
        (detector, port) = try startDetector(dir: dir, kafka: kafka, name: "detector-2")
        try produce(pumpReadings(machine: "p1", from: 1800, count: 120, fault: 1810..<1870), bootstrap: kafka.bootstrap, firstSeq: 10_000)
        let after = try alerts(bootstrap: kafka.bootstrap, until: { a in a.filter { $0.kind == "machine" && $0.state == "open" }.count >= 2 }, timeout: 60)
        let opens = after.filter { $0.kind == "machine" && $0.state == "open" }
        #expect(opens.count == 2, "the second fault opens a second episode without a new 400-reading warm-up")
        if opens.count == 2 {
            #expect(opens[1].openedAt >= 1_767_225_600_000 + 1_810_000 && opens[1].openedAt <= 1_767_225_600_000 + 1_825_000)
            #expect(opens[1].alertID != opens[0].alertID)
        }
    }
}
