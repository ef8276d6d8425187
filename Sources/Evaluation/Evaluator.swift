// Whole-benchmark evaluation: every labelled file replayed with the same fixed configuration.
import Foundation
import Detection

public struct SKABFileResult: Sendable {
    public var file: String
    public var group: String
    public var counts: ConfusionCounts
    public var changepoint: [String: NABTally]
}

public struct SKABReport: Sendable {
    public var files: [SKABFileResult] = []
    public var total: ConfusionCounts { files.reduce(ConfusionCounts()) { $0 + $1.counts } }
    public func group(_ g: String) -> ConfusionCounts {
        files.filter { $0.group == g }.reduce(ConfusionCounts()) { $0 + $1.counts }
    }
    public var groups: [String] { Array(Set(files.map(\.group))).sorted() }
    public func changepoint(_ p: NABProfile) -> NABTally {
        files.reduce(NABTally()) { $0 + ($1.changepoint[p.name] ?? NABTally()) }
    }
}

public struct NABFileResult: Sendable {
    public var file: String
    public var detections: Int
    public var tallies: [String: NABTally]
}

public struct NABReport: Sendable {
    public var files: [NABFileResult] = []
    public func total(_ p: NABProfile) -> NABTally {
        files.reduce(NABTally()) { $0 + ($1.tallies[p.name] ?? NABTally()) }
    }
}

public enum Evaluator {
    /// All `.csv` files under `directory` (recursively), sorted.
    static func csvFiles(under directory: String) -> [String] {
        guard let en = FileManager.default.enumerator(atPath: directory) else { return [] }
        var out: [String] = []
        while let p = en.nextObject() as? String {
            if p.hasSuffix(".csv") { out.append(directory + "/" + p) }
        }
        return out.sorted()
    }

    /// SKAB protocol: point F1/FAR/MAR over all labelled files together (prediction = alert
    /// active), and the changepoint score (detections = alert opens). Files without label
    /// columns (anomaly-free) are skipped. Warm-up rows count as predicted normal.
    public static func evaluateSKAB(directory: String, base: DetectorConfiguration = DetectorConfiguration()) throws -> SKABReport {
        var report = SKABReport()
        for path in csvFiles(under: directory) {
            let s = try CSVLoader.load(path: path)
            guard s.format == .skab, let labels = s.anomaly else { continue }
            let r = Replay.run(s, base: base)
            var c = ConfusionCounts()
            c.add(predicted: r.active, actual: labels)
            var cp: [String: NABTally] = [:]
            if let cpl = s.changepoint {
                let wins = SKABScorer.changepointWindows(changepoint: cpl, epochMs: s.epochMs)
                for p in NABProfile.all {
                    cp[p.name] = NABScorer.score(detections: r.openRows, windows: wins, probation: 0, profile: p)
                }
            }
            let comps = path.split(separator: "/")
            let group = comps.count >= 2 ? String(comps[comps.count - 2]) : ""
            report.files.append(SKABFileResult(file: path, group: group, counts: c, changepoint: cp))
        }
        return report
    }

    /// NAB protocol over the files named in `windows.json`, looked up as DIR/data/KEY or DIR/KEY.
    public static func evaluateNAB(directory: String, windowsPath: String, base: DetectorConfiguration = DetectorConfiguration()) throws -> NABReport {
        let windows = try NABScorer.loadWindows(path: windowsPath)
        var report = NABReport()
        for key in windows.keys.sorted() {
            let candidates = [directory + "/data/" + key, directory + "/" + key]
            guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { continue }
            let s = try CSVLoader.load(path: path)
            let r = Replay.run(s, base: base)
            let wins = NABScorer.rowWindows(windows[key] ?? [], epochMs: s.epochMs)
            let prob = NABScorer.probation(rows: s.count)
            var t: [String: NABTally] = [:]
            let det = r.openRows
            for p in NABProfile.all { t[p.name] = NABScorer.score(detections: det, windows: wins, probation: prob, profile: p) }
            report.files.append(NABFileResult(file: key, detections: det.count, tallies: t))
        }
        return report
    }
}
