// Scores alerts against a simulator truth file: which injected faults were detected, how
// long before functional failure, and how many alerts were false. The same scorer serves
// the offline run (`forewarn evaluate simulation`) and the online chain (alerts read from Kafka).
import Detection

/// One line of a truth file: `{"machine","kind","onset","failure","sensors"}`.
public struct TruthFault: Sendable, Equatable {
    public var machine: String
    public var kind: String
    public var onset: Int64
    /// Functional failure (epoch ms), nil for sensor faults.
    public var failure: Int64?
    public var sensors: [String]

    public init(machine: String, kind: String, onset: Int64, failure: Int64?, sensors: [String]) {
        self.machine = machine
        self.kind = kind
        self.onset = onset
        self.failure = failure
        self.sensors = sensors
    }

    public var isDegradation: Bool { failure != nil }
}

public struct FaultOutcome: Sendable {
    public var fault: TruthFault
    /// The alert that caught it (opened between onset and failure), if any.
    public var alertID: String?
    public var openedAt: Int64?
    /// failure − opened_at, ms (degradations only).
    public var leadMs: Int64?
    /// lead / (failure − onset).
    public var leadFraction: Double?
    public var detected: Bool { alertID != nil }
}

public struct TruthReport: Sendable {
    public var outcomes: [FaultOutcome]
    /// Machine alerts that no degradation explains (on healthy machines, or before onset).
    public var falseMachineAlerts: [AlertEvent]
    /// Sensor alerts that no sensor fault explains.
    public var falseSensorAlerts: [AlertEvent]
    public var machines: Int
    public var durationMs: Int64

    public var machineDays: Double { Double(machines) * Double(durationMs) / 86_400_000 }
    public var degradations: [FaultOutcome] { outcomes.filter { $0.fault.isDegradation } }
    public var detectionRate: Double {
        let d = degradations
        return d.isEmpty ? 1 : Double(d.filter(\.detected).count) / Double(d.count)
    }
    public var medianLeadFraction: Double? {
        let l = degradations.compactMap(\.leadFraction).sorted()
        guard !l.isEmpty else { return nil }
        return l.count % 2 == 1 ? l[l.count / 2] : (l[l.count / 2 - 1] + l[l.count / 2]) / 2
    }
    public var falseAlertsPerMachineDay: Double {
        machineDays > 0 ? Double(falseMachineAlerts.count) / machineDays : 0
    }
}

public enum TruthScorer {
    /// Scores the `open` events of `alerts` against `truth` for a fleet of `machines` over `durationMs`.
    public static func score(truth: [TruthFault], alerts: [AlertEvent], machines: Int, durationMs: Int64) -> TruthReport {
        let opens = alerts.filter { $0.state == .open }
        var outcomes: [FaultOutcome] = []
        for f in truth {
            var o = FaultOutcome(fault: f)
            if let failure = f.failure {
                if let a = opens.filter({ $0.kind == .machine && $0.machine == f.machine && $0.openedAt >= f.onset && $0.openedAt < failure })
                    .min(by: { $0.openedAt < $1.openedAt }) {
                    o.alertID = a.alertId
                    o.openedAt = a.openedAt
                    o.leadMs = failure - a.openedAt
                    o.leadFraction = Double(failure - a.openedAt) / Double(max(1, failure - f.onset))
                }
            } else if let a = opens.filter({ $0.kind == .sensor && $0.machine == f.machine && $0.openedAt >= f.onset && !Set($0.sensors).isDisjoint(with: f.sensors) })
                .min(by: { $0.openedAt < $1.openedAt }) {
                o.alertID = a.alertId
                o.openedAt = a.openedAt
            }
            outcomes.append(o)
        }
        // A machine alert is explained by a degradation on its machine that had begun (it may
        // outlast the failure); a sensor alert by a sensor fault on that machine and sensor.
        let falseMachine = opens.filter { a in
            a.kind == .machine && !truth.contains { $0.isDegradation && $0.machine == a.machine && a.openedAt >= $0.onset }
        }
        let falseSensor = opens.filter { a in
            a.kind == .sensor && !truth.contains { !$0.isDegradation && $0.machine == a.machine && a.openedAt >= $0.onset && !Set($0.sensors).isDisjoint(with: a.sensors) }
        }
        return TruthReport(outcomes: outcomes, falseMachineAlerts: falseMachine, falseSensorAlerts: falseSensor, machines: machines, durationMs: durationMs)
    }

    /// A plain-text table for people (the demo's summary and `forewarn evaluate simulation`).
    public static func table(_ r: TruthReport, start: Int64) -> String {
        func hm(_ ms: Int64) -> String {
            let m = Int((Double(ms) / 60_000).rounded())
            return String(format: "%dh%02dm", m / 60, m % 60)
        }
        var lines = ["| machine | fault | onset | failure | alert opened | lead before failure | lead % |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for o in r.outcomes {
            let f = o.fault
            lines.append("| \(f.machine) | \(f.kind) | +\(hm(f.onset - start)) | \(f.failure.map { "+" + hm($0 - start) } ?? "—") | "
                + "\(o.openedAt.map { "+" + hm($0 - start) } ?? "MISSED") | \(o.leadMs.map(hm) ?? "—") | \(o.leadFraction.map { String(format: "%.0f%%", $0 * 100) } ?? "—") |")
        }
        let deg = r.degradations
        lines.append("")
        lines.append("degradation faults detected before failure: \(deg.filter(\.detected).count)/\(deg.count) (\(String(format: "%.0f%%", r.detectionRate * 100)))"
            + (r.medianLeadFraction.map { String(format: ", median lead %.0f%% of the degradation time", $0 * 100) } ?? ""))
        let sensorFaults = r.outcomes.filter { !$0.fault.isDegradation }
        if !sensorFaults.isEmpty { lines.append("sensor faults flagged as sensor health: \(sensorFaults.filter(\.detected).count)/\(sensorFaults.count)") }
        lines.append(String(format: "false machine alerts: %d over %.1f machine-days (%.3f per machine-day); false sensor alerts: %d",
                            r.falseMachineAlerts.count, r.machineDays, r.falseAlertsPerMachineDay, r.falseSensorAlerts.count))
        for a in r.falseMachineAlerts.prefix(10) { lines.append("  false: \(a.machine) at +\(hm(a.openedAt - start)) model \(a.model) sensors \(a.sensors.joined(separator: ","))") }
        return lines.joined(separator: "\n")
    }
}
