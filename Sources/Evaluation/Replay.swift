// Replays one labelled CSV through a MachineDetector: the whole CSV row is one machine's
// sensors at that row's timestamp.
import Detection

public struct ReplayRow: Sendable, Equatable {
    public var timestamp: String
    public var score: Double
    /// True only on the row where a machine alert opens.
    public var alert: Bool
    /// True on every row while a machine alert is open.
    public var active: Bool
}

public struct ReplayResult: Sendable {
    public var rows: [ReplayRow]
    /// Every event emitted, machine and sensor alerts.
    public var events: [AlertEvent]
    /// Rows on which a machine alert opened (the NAB "detections").
    public var openRows: [Int] { rows.indices.filter { rows[$0].alert } }
    public var active: [Bool] { rows.map(\.active) }

    /// The CSV the `replay` command prints.
    public func csv() -> String {
        var s = "timestamp,score,alert,active\n"
        for r in rows {
            s += "\(r.timestamp),\(formatScore(r.score)),\(r.alert ? 1 : 0),\(r.active ? 1 : 0)\n"
        }
        return s
    }
}

func formatScore(_ x: Double) -> String {
    let v = (x * 1_000_000).rounded() / 1_000_000
    return String(v)
}

public enum Replay {
    /// Warm-up length for a file: SKAB's training part (400 rows) or NAB's probation
    /// period min(floor(0.15 n), 750).
    public static func warmupCount(format: DatasetFormat, rows n: Int) -> Int {
        switch format {
        case .skab: return SKABScorer.trainingRows
        case .nab: return NABScorer.probation(rows: n)
        }
    }

    /// The detector configuration used for a file: `base` with the protocol's warm-up.
    public static func configuration(for series: LabeledSeries, base: DetectorConfiguration = DetectorConfiguration()) -> DetectorConfiguration {
        var c = base
        c.warmupCount = warmupCount(format: series.format, rows: series.count)
        let file = series.name.split(separator: "/").suffix(2).joined(separator: "/")
        c.machine = file.isEmpty ? c.machine : file
        return c
    }

    public static func run(_ series: LabeledSeries, base: DetectorConfiguration = DetectorConfiguration()) -> ReplayResult {
        var det = MachineDetector(config: configuration(for: series, base: base))
        var rows: [ReplayRow] = []
        rows.reserveCapacity(series.count)
        var events: [AlertEvent] = []
        var values: [String: Double] = [:]
        for i in 0..<series.count {
            values.removeAll(keepingCapacity: true)
            for (j, c) in series.columns.enumerated() where series.values[i][j].isFinite {
                values[c] = series.values[i][j]
            }
            let evs = det.observe(ts: series.epochMs[i], values: values)
            let opened = evs.contains { $0.kind == .machine && $0.state == .open }
            rows.append(ReplayRow(timestamp: series.timestamps[i], score: det.score, alert: opened, active: det.machineAlertOpen || opened))
            events.append(contentsOf: evs)
        }
        return ReplayResult(rows: rows, events: events)
    }
}
