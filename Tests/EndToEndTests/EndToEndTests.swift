// The whole chain at accelerated speed, with real processes on loopback:
// forewarn simulate → mosquitto → forewarn gateway → forewarn dev-kafka → forewarn detector → forewarn.alerts.
import Detection
import Evaluation
import Foundation
import Kafka
import Testing
import TestSupport

let e2eDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let e2eRepoRoot = URL(fileURLWithPath: e2eDirectory).deletingLastPathComponent().deletingLastPathComponent().path

@Suite("End to end: simulator to alerts", .serialized)
struct EndToEndTests {
    @Test("every degradation alerts before failure, healthy machines stay quiet, and Kafka holds every published reading")
    func wholeChain() throws {
        let dir = TestEnvironment.temporaryDirectory("e2e")
        let broker = try MosquittoBroker(directory: dir)
        let kafka = try DevKafka(directory: dir, partitions: 4)
        defer { kafka.stop(); broker.stop() }
        let gateway = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/gateway")
        defer { gateway.child.stop() }
        _ = gateway.waitForHealth(timeout: 15) { _, b in b.contains("\"subscribed\":true") }
        let detectorPort = freePort()
        let detector = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                        arguments: ["detector", "--kafka", kafka.bootstrap, "--models", e2eRepoRoot + "/models",
                                                    "--state-dir", dir + "/detector", "--http", "127.0.0.1:\(detectorPort)"],
                                        directory: dir, name: "detector")
        defer { detector.stop() }
        #expect(waitForPort(detectorPort))

        let truthPath = dir + "/truth.jsonl"
        let simulator = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                         arguments: ["simulate", "--scenario", e2eDirectory + "/e2e-scenario.yaml", "--mqtt", broker.url,
                                                     "--speed", "600", "--truth", truthPath],
                                         directory: dir, name: "simulate")
        let status = simulator.waitForExit(timeout: 180)
        #expect(status == 0, "simulator: \(simulator.stderr.suffix(500))")
        let publishedLine = simulator.stdout.split(separator: "\n").last(where: { $0.hasPrefix("published ") }) ?? ""
        let published = Int(publishedLine.split(separator: " ")[safe: 1] ?? "") ?? -1
        #expect(published == 3 * 4 * 5400, "3 pumps × 4 sensors × 90 min at 1 Hz")

        // The detector has read everything once it has scored every published reading.
        let deadline = Date().addingTimeInterval(90)
        var scored = 0
        while Date() < deadline {
            let body = httpGet(port: detectorPort, path: "/healthz").1
            if let obj = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] {
                scored = (obj["readings"] as? NSNumber)?.intValue ?? 0
                if scored >= published && (obj["lag"] as? NSNumber)?.intValue == 0 { break }
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        #expect(scored == published, "the detector consumed every reading exactly once (distinct gateway, seq)")

        // Readings in Kafka, counted with a real consumer.
        let readings = try consumeAll(bootstrap: kafka.bootstrap, topic: "forewarn.readings", expect: published, timeout: 60, settle: 1)
        #expect(Set(readings.compactMap { $0.header("seq") }).count == published)

        // Alerts, scored against the simulator's ground truth.
        let truth = try String(contentsOfFile: truthPath, encoding: .utf8).split(separator: "\n").map { line -> TruthFault in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return TruthFault(machine: o["machine"] as! String, kind: o["kind"] as! String, onset: (o["onset"] as! NSNumber).int64Value,
                              failure: (o["failure"] as? NSNumber)?.int64Value, sensors: o["sensors"] as? [String] ?? [])
        }
        #expect(truth.count == 2)
        let alertMessages = try consumeAll(bootstrap: kafka.bootstrap, topic: "forewarn.alerts", expect: 2, timeout: 30, settle: 2)
        let alerts = alertMessages.compactMap { try? JSONDecoder().decode(AlertEvent.self, from: Data($0.value)) }
        #expect(alerts.count == alertMessages.count, "every alert record follows the schema")
        let report = TruthScorer.score(truth: truth, alerts: alerts, machines: 3, durationMs: 90 * 60_000)
        for o in report.outcomes {
            #expect(o.detected, "\(o.fault.machine) \(o.fault.kind) alerted before its failure at \(o.fault.failure ?? 0)")
        }
        #expect(report.falseMachineAlerts.isEmpty, "false alerts: \(report.falseMachineAlerts.map { "\($0.machine)@\($0.openedAt)" })")
        #expect(!alerts.contains { $0.machine == "e1" }, "the healthy pump raises nothing")
        #expect(alertMessages.allSatisfy { $0.keyString == (try? JSONDecoder().decode(AlertEvent.self, from: Data($0.value)))?.machine })
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
