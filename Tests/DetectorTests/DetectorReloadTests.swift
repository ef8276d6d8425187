// SIGHUP on the detector (issue 9): model files and thresholds reload; machines whose model
// changed warm up again; an invalid file keeps the running models; the detector keeps running.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct DetectorReloadTests {
    @Test func sighupReloadsModelFilesAndKeepsTheRunningOnesWhenAFileIsInvalid() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-sighup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let models = dir + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        let original = try String(contentsOfFile: repoRoot + "/models/pump.yaml", encoding: .utf8)
        try original.write(toFile: models + "/pump.yaml", atomically: true, encoding: .utf8)
        let kafka = try DevKafka(directory: dir, partitions: 1)
        defer { kafka.stop() }
        let port = freePort()
        let detector = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                        arguments: ["detector", "--kafka", kafka.bootstrap, "--models", models, "--state-dir", dir + "/state",
                                                    "--http", "127.0.0.1:\(port)", "--set", "checkpoint-interval=500ms"],
                                        directory: dir, name: "detector")
        defer { detector.stop() }
        try #require(waitForPort(port), "\(detector.stderr)")
        try produce(pumpReadings(machine: "p1", from: 0, count: 100), bootstrap: kafka.bootstrap, firstSeq: 1)
        #expect(waitUntil(timeout: 30) { httpGet(port: port, path: "/healthz").1.contains("\"readings\":400") }, "\(detector.stderr)")

        func hangUp(until line: String) -> Bool {
            let seen = detector.stderr.components(separatedBy: line).count
            detector.signal(SIGHUP)
            return waitUntil(timeout: 10) { detector.stderr.components(separatedBy: line).count > seen }
        }
        #expect(hangUp(until: "model files applied: 1 machine types; no machine's model changed"), "\(detector.stderr)")

        // A threshold changes: p1 warms up again with it.
        let raised = original.replacingOccurrences(of: "failure-threshold: 7.1", with: "failure-threshold: 7.5")
        try #require(raised != original)
        try raised.write(toFile: models + "/pump.yaml", atomically: true, encoding: .utf8)
        #expect(hangUp(until: "model changed for p1, warming up again"), "\(detector.stderr)")

        // An invalid file: the running models (with 7.5) stay.
        try raised.replacingOccurrences(of: "warmup-readings: 400", with: "warmup-readings: many").write(toFile: models + "/pump.yaml", atomically: true, encoding: .utf8)
        #expect(hangUp(until: "SIGHUP: a model file is invalid, keeping the running models: config key 'pump.warmup-readings'"), "\(detector.stderr)")
        #expect(detector.isRunning)
        try raised.write(toFile: models + "/pump.yaml", atomically: true, encoding: .utf8)
        #expect(hangUp(until: "model files applied: 1 machine types; no machine's model changed"),
                "the 7.5 models were kept through the invalid file: \(detector.stderr)")

        detector.signal(SIGTERM)
        #expect(detector.waitForExit(timeout: 20) == 0)
    }
}
