// The model-file keys behind operating-point handling: what models/pump.yaml sets, and the
// errors a bad value gets (naming the key, so an operator can find the line).
import Detection
import Detector
import ForewarnCore
import Foundation
import Testing

private let repoModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models").path

private func load(_ yaml: String) throws -> MachineModels {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("forewarn-modelfile-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try yaml.write(toFile: dir + "/pump.yaml", atomically: true, encoding: .utf8)
    return try MachineModels(directory: dir)
}

@Suite struct ModelFileTests {
    @Test func pumpModelFollowsOperatingChangesWithFiveMinutesOfDriftMemory() throws {
        let c = try MachineModels(directory: repoModels).configuration(machine: "p1", site: "s1")
        #expect(c.multivariate.operatingChangeRate == 0.6)
        #expect(c.multivariate.operatingChangeDominance == 0.85)
        #expect(c.multivariate.operatingChangeMaxMs == 30 * 60_000)
        #expect(abs(c.multivariate.driftAlpha - 1.0 / 300) < 1e-12)
        #expect(abs(c.multivariate.broadDriftAlpha - 1.0 / 100) < 1e-12)
        #expect(c.univariate.trendPersistMs == 5 * 60_000)
        // The built-in defaults leave recognition off (SKAB and NAB are scored with them).
        #expect(DetectorConfiguration().multivariate.operatingChangeRate == 0)
        #expect(DetectorConfiguration().multivariate.broadDriftAlpha == 0)
        #expect(DetectorConfiguration().univariate.trendPersistMs == 0)
    }

    @Test func driftMemoryFollowsTheBucketWhereverItIsWritten() throws {
        let c = try load("drift-memory: 10m\nbucket: 5s\n").configuration(machine: "x", site: "s")
        #expect(abs(c.multivariate.driftAlpha - 5.0 / 600) < 1e-12)
    }

    @Test(arguments: [
        ("operating-changes: {min-rate: -1}", "pump.operating-changes.min-rate", "≥ 0"),
        ("operating-changes: {dominance: 1.5}", "pump.operating-changes.dominance", "(0, 1]"),
        ("operating-changes: {max-duration: soon}", "pump.operating-changes.max-duration", "duration"),
        ("operating-changes: {rate: 1}", "pump.operating-changes.rate", "allowed: min-rate, dominance, max-duration"),
        ("operating-changes: 0.6", "pump.operating-changes", "mapping"),
        ("drift-memory: 0s", "pump.drift-memory", "positive"),
        ("operating-changes: {slow-change-memory: 0s}", "pump.operating-changes.slow-change-memory", "positive"),
        ("trend-persistence: later", "pump.trend-persistence", "duration"),
    ])
    func badValuesNameTheKey(yaml: String, key: String, message: String) throws {
        do {
            _ = try load(yaml)
            Issue.record("\(yaml) was accepted")
        } catch let e as ConfigError {
            #expect(e.key == key)
            #expect(e.message.contains(message), "\(e)")
        }
    }
}
