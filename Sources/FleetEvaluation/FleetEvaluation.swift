// FleetEvaluation: plays a simulator scenario straight into the detectors, in process and in
// simulated time (no MQTT, no Kafka), and scores the alerts against the scenario's truth.
//
// It owns one loop shared by `forewarn evaluate simulation` and the tests, so the figures the
// README quotes and the figures the tests assert come from the same code.
import Detection
import Detector
import Evaluation
import Simulator

public struct FleetEvaluationResult: Sendable {
    public var report: TruthReport
    public var alerts: [AlertEvent]
    /// Readings the simulator produced and the detectors saw.
    public var readings: Int
    public var machines: [String]
    public var start: Int64
    /// Operating-point changes the machines' multivariate monitors followed, per machine.
    public var operatingChanges: [String: Int]
}

public enum FleetEvaluation {
    /// Runs `scenario` for `durationMs` of simulated time with the models in `models`.
    public static func run(scenario: Scenario, models: MachineModels, seed: UInt64, durationMs: Int64) throws(ScenarioError) -> FleetEvaluationResult {
        var fleet = try FleetSimulator(scenario: scenario, seed: seed)
        let start = fleet.start
        var detectors: [MachineDetector] = fleet.machines.map {
            MachineDetector(config: models.configuration(machine: $0.spec.id, site: $0.spec.site))
        }
        let ids = fleet.machines.map(\.spec.id)
        let names = fleet.machines.map { $0.sensors.map(\.name) }
        var alerts: [AlertEvent] = []
        var buffer: [SimReading] = []
        var count = 0
        var t = start
        while t < start + durationMs {
            // A simulated minute at a time keeps the buffer small for large fleets.
            let next = min(t + 60_000, start + durationMs)
            buffer.removeAll(keepingCapacity: true)
            fleet.advance(until: next, into: &buffer)
            for r in buffer {
                alerts += detectors[r.machine].observe(ts: r.ts, sensor: names[r.machine][r.sensor], value: r.value)
            }
            count += buffer.count
            t = next
        }
        for i in detectors.indices { alerts += detectors[i].flush() }
        let truth = fleet.truth(forDuration: durationMs).map {
            TruthFault(machine: $0.machine, kind: $0.kind.rawValue, onset: $0.onset, failure: $0.failure, sensors: $0.sensors)
        }
        let report = TruthScorer.score(truth: truth, alerts: alerts, machines: ids.count, durationMs: durationMs)
        var changes: [String: Int] = [:]
        for (i, id) in ids.enumerated() { changes[id] = detectors[i].operatingChangesFollowed }
        return FleetEvaluationResult(report: report, alerts: alerts, readings: count, machines: ids, start: start, operatingChanges: changes)
    }
}
