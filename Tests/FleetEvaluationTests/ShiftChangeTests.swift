// The detector against the simulator's physics across a shift change: warm-up at night load,
// then the 06:00 ramp to full load, with degradations running through it. Played in process
// (FleetEvaluation), in simulated time, through the shipped models/pump.yaml.
import Detection
import Detector
import Evaluation
import FleetEvaluation
import Foundation
import Simulator
import Testing

private let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
private let repoRoot = here.deletingLastPathComponent().deletingLastPathComponent().path

/// models/pump.yaml with its `operating-changes` line replaced by `replacement`, in a temp directory.
private func pumpModels(operatingChanges replacement: String?) throws -> MachineModels {
    guard let replacement else { return try MachineModels(directory: repoRoot + "/models") }
    let text = try String(contentsOfFile: repoRoot + "/models/pump.yaml", encoding: .utf8)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let replaced = lines.map { $0.hasPrefix("operating-changes:") ? Substring(replacement) : $0 }
    try #require(replaced != lines, "models/pump.yaml has no operating-changes line")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("forewarn-models-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try replaced.joined(separator: "\n").write(toFile: dir + "/pump.yaml", atomically: true, encoding: .utf8)
    return try MachineModels(directory: dir)
}

/// Plays `file` (beside this test) for `hours` through models/pump.yaml, its `operating-changes`
/// line optionally replaced.
private func play(_ file: String, hours: Int64, operatingChanges: String? = nil) throws -> FleetEvaluationResult {
    let scenario = try Scenario.load(path: here.appendingPathComponent(file).path)
    return try FleetEvaluation.run(scenario: scenario, models: try pumpModels(operatingChanges: operatingChanges),
                                   seed: scenario.seed ?? 1, durationMs: hours * 3_600_000)
}

@Suite struct ShiftChangeTests {
    @Test("degradations running through a shift change alert before failure; healthy pumps stay quiet through it")
    func faultsThroughTheShiftChange() throws {
        let r = try play("shift-change.yaml", hours: 9)
        let report = r.report
        #expect(report.degradations.count == 3)
        for o in report.degradations {
            #expect(o.detected, "\(o.fault.machine) \(o.fault.kind) not detected before failure")
            // The alert must leave real time to act: at least 15 % of the degradation (bearing wear,
            // the hardest, measures ~20 %; the others 45-92 %).
            if let lead = o.leadFraction { #expect(lead >= 0.15, "\(o.fault.machine) \(o.fault.kind): lead \(lead)") }
        }
        #expect(report.falseMachineAlerts.isEmpty, "false alerts: \(report.falseMachineAlerts.map { "\($0.machine) \($0.model) at +\(($0.ts - r.start) / 60_000) min" })")
        #expect(report.falseSensorAlerts.isEmpty)
        // The healthy pumps got through the 06:00 ramp by following it, not by never noticing it.
        #expect((r.operatingChanges["m1"] ?? 0) >= 1 && (r.operatingChanges["m4"] ?? 0) >= 1, "\(r.operatingChanges)")
        // 5 pumps x 4 sensors x 1 Hz x 9 h.
        #expect(r.readings == 5 * 4 * 9 * 3600)
    }

    @Test("without operating-change recognition the same shift change raises false alerts (the test can fail)")
    func theShiftChangeIsAProblemWithoutRecognition() throws {
        let r = try play("shift-change.yaml", hours: 7, operatingChanges: "operating-changes: {min-rate: 0}")
        let healthyFalse = r.report.falseMachineAlerts.filter { $0.machine == "m1" || $0.machine == "m4" }
        #expect(!healthyFalse.isEmpty)
        // ... and they come with the ramp, not before it.
        let sixAM = r.start + 6 * 3_600_000
        #expect(healthyFalse.allSatisfy { $0.ts >= sixAM && $0.ts < sixAM + 30 * 60_000 })
        #expect(r.operatingChanges.values.allSatisfy { $0 == 0 })
    }
}

@Suite struct SlowRampTests {
    @Test("hour-long load ramps raise no alert on healthy pumps")
    func hourLongRampsAreQuiet() throws {
        let r = try play("slow-ramp.yaml", hours: 15)
        #expect(r.report.falseMachineAlerts.isEmpty, "false alerts: \(r.report.falseMachineAlerts.map { "\($0.machine) \($0.model) at +\(($0.ts - r.start) / 60_000) min" })")
        #expect(r.readings == 4 * 4 * 15 * 3600)
    }

    @Test("without slow-change-memory the same ramps alarm (the test can fail)")
    func hourLongRampsAlarmWithoutSlowChangeMemory() throws {
        let r = try play("slow-ramp.yaml", hours: 15,
                         operatingChanges: "operating-changes: {min-rate: 0.6, dominance: 0.85, max-duration: 30m}")
        #expect(!r.report.falseMachineAlerts.isEmpty)
    }
}
