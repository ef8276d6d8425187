// The Python example consumer (examples/python-alerts) against dev-kafka and the real detector:
// the detector opens and resolves an alert, a duplicate and an invalid event are added to the
// topic by hand, and the consumer must print each event once, report the invalid one, and
// commit its offsets. Its pytest unit tests run here too, so they are part of the suite.
import Foundation
import ForewarnCore
import Kafka
import Testing
import TestSupport

/// The venv interpreter scripts/test creates: $FOREWARN_PYTHON, else .build/python/bin/python.
private func alertsPython() throws -> String {
    let path = ProcessInfo.processInfo.environment["FOREWARN_PYTHON"] ?? repoRoot + "/.build/python/bin/python"
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestFailure("""
            no Python for examples/python-alerts at \(path): run scripts/test (it creates the venv), or \
            python3 -m venv .build/python && .build/python/bin/pip install -r examples/python-alerts/requirements.txt pytest
            """)
    }
    return path
}

/// Runs a Python child to completion, bounded by `timeout` (then killed).
private func runPython(_ arguments: [String], directory: String, name: String, timeout: TimeInterval) throws -> (status: Int32?, stdout: String, stderr: String) {
    let child = try ChildProcess(executable: try alertsPython(), arguments: arguments, directory: directory, name: name,
                                 environment: ["PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"])
    let status = child.waitForExit(timeout: timeout)
    if status == nil { child.stop(grace: 5) }
    return (status, child.stdout, child.stderr)
}

/// The consumers' de-duplication key: (alert_id, state), plus ts for updates.
private func dedupeKey(_ obj: [String: Any]) -> String {
    let id = obj["alert_id"] as? String ?? "", state = obj["state"] as? String ?? ""
    return state == "update" ? "\(id)|\(state)|\((obj["ts"] as? NSNumber)?.int64Value ?? 0)" : "\(id)|\(state)"
}

/// Produces readings as the gateway would and waits for every ack. Like DetectorServiceTests'
@Suite("Python alerts consumer example", .serialized)
struct PythonAlertsConsumerTests {
    let consumerScript = repoRoot + "/examples/python-alerts/alerts_consumer.py"

    @Test("pytest unit tests of the dedupe and schema validation logic pass")
    func unitTests() throws {
        let dir = TestEnvironment.temporaryDirectory("pytest")
        let run = try runPython(["-m", "pytest", "-q", "-p", "no:cacheprovider", repoRoot + "/examples/python-alerts"],
                                directory: dir, name: "pytest", timeout: 120)
        #expect(run.status == 0, "pytest failed:\n\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains(" passed"), "\(run.stdout)")
    }

    @Test("validates, de-duplicates and prints the detector's alerts, and commits its offsets")
    func consumesDetectorAlerts() throws {
        _ = try alertsPython()  // fail before starting anything when the venv is missing
        let dir = TestEnvironment.temporaryDirectory("python-alerts")
        let kafka = try DevKafka(directory: dir, partitions: 2)
        defer { kafka.stop() }
        let port = freePort()
        let detector = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                        arguments: ["detector", "--kafka", kafka.bootstrap, "--models", repoRoot + "/models", "--state-dir", dir + "/state",
                                                    "--http", "127.0.0.1:\(port)", "--set", "checkpoint-interval=500ms"],
                                        directory: dir, name: "detector")
        defer { detector.stop() }
        guard waitForPort(port) else { throw TestFailure("detector did not start: \(detector.stderr)") }

        // 600 s healthy (warm-up), 60 s with vib_rms far beyond its limit, 240 s healthy: one episode opens and resolves.
        try produce(pumpReadings(machine: "p1", from: 0, count: 1800, fault: 600..<660), bootstrap: kafka.bootstrap, firstSeq: 1)
        let got = try alerts(bootstrap: kafka.bootstrap, until: { a in a.contains { $0.state == "resolved" && $0.kind == "machine" } }, timeout: 60)
        let open = try #require(got.first { $0.kind == "machine" && $0.state == "open" }, "alerts: \(got.map { "\($0.kind) \($0.state)" })")
        let resolved = try #require(got.first { $0.kind == "machine" && $0.state == "resolved" })
        // Nothing more comes from the detector once it is stopped, so the topic's contents are known.
        detector.stop()
        #expect(detector.waitForExit(timeout: 15) == 0)

        let published = try consumeAll(bootstrap: kafka.bootstrap, topic: "forewarn.alerts", expect: got.count, timeout: 20)
        let openRecord = try #require(published.first { m in
            (try? JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any]).map { dedupeKey($0) == "\(open.alertID)|open" } ?? false
        })

        // One exact duplicate of the open event, and one event that is JSON but breaks the schema.
        var invalid = open.json
        invalid["alert_id"] = "invalid-\(open.alertID)"
        invalid["state"] = "reopened"
        invalid.removeValue(forKey: "evidence")
        let invalidValue = Array(try JSONSerialization.data(withJSONObject: invalid))
        let producer = try KafkaProducer(bootstrap: kafka.bootstrap, logger: TestEnvironment.logger)
        try producer.produce(topic: "forewarn.alerts", key: openRecord.key, value: openRecord.value, headers: [], id: 1)
        try producer.produce(topic: "forewarn.alerts", key: Array("p1".utf8), value: invalidValue, headers: [], id: 2)
        var acked = 0
        let ackDeadline = Date().addingTimeInterval(15)
        while acked < 2 && Date() < ackDeadline {
            for e in producer.poll(timeout: .milliseconds(100)) { if case .delivered = e { acked += 1 } }
        }
        try #require(acked == 2, "duplicate and invalid events not acknowledged")

        let total = published.count + 2
        let distinct = Set(published.compactMap { try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any] }.map(dedupeKey))
        #expect(distinct.count == published.count, "the detector itself publishes no duplicates")

        let group = "python-alerts-\(UUID().uuidString.prefix(6))"
        let run = try runPython([consumerScript, "--bootstrap", kafka.bootstrap, "--group", group, "--json",
                                 "--max-events", String(total), "--max-seconds", "60"],
                                directory: dir, name: "alerts-consumer", timeout: 90)
        #expect(run.status == 0, "consumer exit \(String(describing: run.status)):\n\(run.stderr)")

        // stdout: one JSON line per new event, the open and resolved events exactly once.
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let printed = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(printed.count == lines.count, "every stdout line is JSON:\n\(run.stdout)")
        #expect(printed.filter { dedupeKey($0) == "\(open.alertID)|open" }.count == 1, "open printed once:\n\(run.stdout)")
        #expect(printed.filter { dedupeKey($0) == "\(resolved.alertID)|resolved" }.count == 1, "resolved printed once:\n\(run.stdout)")
        #expect(Set(printed.map(dedupeKey)) == distinct, "every distinct event printed")
        #expect(printed.count == distinct.count, "nothing printed twice")
        #expect(!run.stdout.contains("invalid-"), "the invalid event is not printed")
        if let line = lines.first(where: { l in
            (try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]).map { dedupeKey($0) == "\(open.alertID)|open" } ?? false
        }) {
            #expect(Array(line.utf8) == openRecord.value, "--json prints the record as published")
        }

        // stderr: the invalid event is reported as failing the schema; the summary counts it and the duplicate.
        let reports = run.stderr.split(separator: "\n").filter { $0.hasPrefix("invalid alert at forewarn.alerts[") }
        #expect(reports.count == 1, "stderr:\n\(run.stderr)")
        if let report = reports.first {
            #expect(report.contains("schema validation failed"))
            #expect(report.contains("'reopened' is not one of"))
            #expect(report.contains("'evidence' is a required property"))
        }
        #expect(run.stderr.contains("alerts: read \(total), new \(distinct.count), duplicates 1, invalid 1"), "stderr:\n\(run.stderr)")

        // The group's committed offsets cover every record it read (the end of each partition).
        let checker = try KafkaConsumer(bootstrap: kafka.bootstrap, groupID: group, logger: TestEnvironment.logger)
        defer { checker.close() }
        let n = try checker.partitionCount(topic: "forewarn.alerts", timeout: .seconds(5))
        let tps = (0..<Int32(n)).map { TopicPartition(topic: "forewarn.alerts", partition: $0) }
        let ends = checker.highWatermarks(tps, timeout: .seconds(5))
        let committed = try checker.committed(tps, timeout: .seconds(5))
        #expect(ends.values.reduce(0, +) == Int64(total))
        for tp in tps where (ends[tp] ?? 0) > 0 {
            #expect(committed[tp] == ends[tp], "committed \(tp): \(String(describing: committed[tp])) of \(String(describing: ends[tp]))")
        }
    }
}
