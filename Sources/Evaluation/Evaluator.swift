// Whole-benchmark evaluation: every labelled file replayed with the same fixed configuration,
// scored by the benchmark's own protocol, with the alert budget (false alert openings per
// stream-day) beside the benchmark's figures.
import Foundation
import Detection

/// What a report needs to draw one file: its data, the detector's output and the labels.
public struct FileTrace: Sendable {
    public var series: LabeledSeries
    public var replay: ReplayResult
    /// Label windows as row ranges (NAB windows, SKAB anomaly runs).
    public var labels: [RowWindow]
    /// Rows before this are not scored (SKAB training part, NAB probation).
    public var scoredFrom: Int
}

/// The alert budget of a set of files: alert openings outside every label window, per day of
/// scored data (each file is one machine).
public struct AlertBudget: Sendable, Equatable {
    public var falseOpenings = 0
    public var days = 0.0
    public init(falseOpenings: Int = 0, days: Double = 0) { self.falseOpenings = falseOpenings; self.days = days }
    public var perStreamDay: Double { days > 0 ? Double(falseOpenings) / days : 0 }
    public static func + (a: AlertBudget, b: AlertBudget) -> AlertBudget {
        AlertBudget(falseOpenings: a.falseOpenings + b.falseOpenings, days: a.days + b.days)
    }

    /// Openings at or after `from` that fall in no window, over the days those rows span.
    static func of(openRows: [Int], windows: [RowWindow], epochMs: [Int64], from: Int) -> AlertBudget {
        let outside = openRows.filter { i in i >= from && !windows.contains { $0.start <= i && i <= $0.end } }.count
        let span = epochMs.count > from ? Double(epochMs[epochMs.count - 1] - epochMs[from]) / 86_400_000 : 0
        return AlertBudget(falseOpenings: outside, days: max(span, 0))
    }
}

public struct SKABFileResult: Sendable {
    public var file: String
    public var group: String
    /// Point counts over the scored rows only (after the 400 training rows).
    public var counts: ConfusionCounts
    public var changepoint: [String: NABTally]
    public var budget: AlertBudget
    public var trace: FileTrace?
}

public struct SKABReport: Sendable {
    public var files: [SKABFileResult] = []
    public init(files: [SKABFileResult] = []) { self.files = files }
    public var total: ConfusionCounts { files.reduce(ConfusionCounts()) { $0 + $1.counts } }
    public var budget: AlertBudget { files.reduce(AlertBudget()) { $0 + $1.budget } }
    public func group(_ g: String) -> ConfusionCounts {
        files.filter { $0.group == g }.reduce(ConfusionCounts()) { $0 + $1.counts }
    }
    public func budget(group g: String) -> AlertBudget {
        files.filter { $0.group == g }.reduce(AlertBudget()) { $0 + $1.budget }
    }
    public var groups: [String] { Array(Set(files.map(\.group))).sorted() }
    public func changepoint(_ p: NABProfile) -> NABTally {
        files.reduce(NABTally()) { $0 + ($1.changepoint[p.name] ?? NABTally()) }
    }
}

public struct NABFileResult: Sendable {
    /// `category/name.csv`, as in windows.json.
    public var file: String
    /// The data set folder it came from (`nab`, `nab-web`).
    public var group: String
    public var category: String
    public var detections: Int
    public var tallies: [String: NABTally]
    public var budget: AlertBudget
    public var trace: FileTrace?
}

public struct NABReport: Sendable {
    public var files: [NABFileResult] = []
    public init(files: [NABFileResult] = []) { self.files = files }
    /// Raw scores summed over the files that pass `filter`, to be normalised once.
    public func total(_ p: NABProfile, where filter: (NABFileResult) -> Bool = { _ in true }) -> NABTally {
        files.filter(filter).reduce(NABTally()) { $0 + ($1.tallies[p.name] ?? NABTally()) }
    }
    public func budget(where filter: (NABFileResult) -> Bool = { _ in true }) -> AlertBudget {
        files.filter(filter).reduce(AlertBudget()) { $0 + $1.budget }
    }
    public var groups: [String] { Array(Set(files.map(\.group))).sorted() }
    public var categories: [String] { Array(Set(files.map(\.category))).sorted() }
}

/// One NAB data set folder: `data/<category>/*.csv` and `windows.json`.
public struct NABRoot: Sendable {
    public var name: String
    public var dataDirectory: String
    public var windowsPath: String

    public init(name: String, dataDirectory: String, windowsPath: String) {
        self.name = name
        self.dataDirectory = dataDirectory
        self.windowsPath = windowsPath
    }

    /// A folder holding `windows.json` and `data/` (or the categories directly).
    public init(directory: String) {
        let d = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        name = URL(fileURLWithPath: d).lastPathComponent
        let data = d + "/data"
        var isDir: ObjCBool = false
        dataDirectory = FileManager.default.fileExists(atPath: data, isDirectory: &isDir) && isDir.boolValue ? data : d
        windowsPath = d + "/windows.json"
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

    /// Loads the labelled SKAB files (anomaly-free has no labels and is skipped).
    public static func loadSKAB(directory: String) throws -> [LabeledSeries] {
        try csvFiles(under: directory).compactMap { path in
            let s = try CSVLoader.load(path: path)
            return s.format == .skab && s.anomaly != nil ? s : nil
        }
    }

    /// SKAB protocol: the first 400 rows of each file are its training part and are not
    /// scored; point F1/FAR/MAR over the remaining rows of all files together (prediction =
    /// alert active), and the changepoint score (detections = alert opens).
    public static func evaluateSKAB(directory: String, base: DetectorConfiguration = DetectorConfiguration(), traces: Bool = false) throws -> SKABReport {
        SKABReport(files: try loadSKAB(directory: directory).map { scoreSKAB($0, base: base, trace: traces) })
    }

    public static func evaluateSKAB(_ series: [LabeledSeries], base: DetectorConfiguration = DetectorConfiguration(), traces: Bool = false) -> SKABReport {
        SKABReport(files: series.map { scoreSKAB($0, base: base, trace: traces) })
    }

    /// One SKAB file by the protocol.
    public static func scoreSKAB(_ s: LabeledSeries, base: DetectorConfiguration = DetectorConfiguration(), trace: Bool = false) -> SKABFileResult {
        let labels = s.anomaly ?? []
        let r = Replay.run(s, base: base)
        let from = min(SKABScorer.trainingRows, s.count)
        var c = ConfusionCounts()
        c.add(predicted: Array(r.active[from...]), actual: Array(labels[from...]))
        var cp: [String: NABTally] = [:]
        if let cpl = s.changepoint {
            let wins = SKABScorer.changepointWindows(changepoint: cpl, epochMs: s.epochMs)
            for p in NABProfile.all {
                cp[p.name] = NABScorer.score(detections: r.openRows, windows: wins, probation: from, profile: p)
            }
        }
        let runs = SKABScorer.labelRuns(labels)
        let comps = s.name.split(separator: "/")
        let group = comps.count >= 2 ? String(comps[comps.count - 2]) : ""
        return SKABFileResult(file: s.name, group: group, counts: c, changepoint: cp,
                              budget: .of(openRows: r.openRows, windows: runs, epochMs: s.epochMs, from: from),
                              trace: trace ? FileTrace(series: s, replay: r, labels: runs, scoredFrom: from) : nil)
    }

    /// A NAB file ready to score: its series, category and label windows as rows.
    public struct NABFile: Sendable {
        public var key: String
        public var group: String
        public var series: LabeledSeries
        public var windows: [RowWindow]
        public var category: String { String(key.split(separator: "/").first ?? "") }
    }

    /// Loads the files named in each root's `windows.json` (looked up as DIR/KEY).
    public static func loadNAB(roots: [NABRoot]) throws -> [NABFile] {
        var out: [NABFile] = []
        for root in roots {
            let windows = try NABScorer.loadWindows(path: root.windowsPath)
            for key in windows.keys.sorted() {
                let path = root.dataDirectory + "/" + key
                guard FileManager.default.fileExists(atPath: path) else { continue }
                let s = try CSVLoader.load(path: path)
                out.append(NABFile(key: key, group: root.name, series: s,
                                   windows: NABScorer.rowWindows(windows[key] ?? [], epochMs: s.epochMs)))
            }
        }
        return out
    }

    /// NAB protocol over every file of every root as one corpus.
    public static func evaluateNAB(roots: [NABRoot], base: DetectorConfiguration = DetectorConfiguration(), traces: Bool = false) throws -> NABReport {
        evaluateNAB(try loadNAB(roots: roots), base: base, traces: traces)
    }

    public static func evaluateNAB(_ files: [NABFile], base: DetectorConfiguration = DetectorConfiguration(), traces: Bool = false) -> NABReport {
        NABReport(files: files.map { scoreNAB($0, base: base, trace: traces) })
    }

    /// One NAB file: detections are the rows on which an alert opens.
    public static func scoreNAB(_ f: NABFile, base: DetectorConfiguration = DetectorConfiguration(), trace: Bool = false) -> NABFileResult {
        let r = Replay.run(f.series, base: base)
        return scoreNAB(f, detections: r.openRows, trace: trace ? r : nil)
    }

    /// One NAB file scored from given detection rows (the rows a detector flagged).
    public static func scoreNAB(_ f: NABFile, detections det: [Int], trace replay: ReplayResult? = nil) -> NABFileResult {
        let s = f.series
        let prob = NABScorer.probation(rows: s.count)
        var t: [String: NABTally] = [:]
        for p in NABProfile.all { t[p.name] = NABScorer.score(detections: det, windows: f.windows, probation: prob, profile: p) }
        return NABFileResult(file: f.key, group: f.group, category: f.category, detections: det.filter { $0 >= prob }.count, tallies: t,
                             budget: .of(openRows: det, windows: f.windows, epochMs: s.epochMs, from: prob),
                             trace: replay.map { FileTrace(series: s, replay: $0, labels: f.windows, scoredFrom: prob) })
    }

    /// Scores another detector's published NAB results with the same scorer, so the leaderboard's
    /// detectors can be compared on exactly these files. `directory` is one detector's folder of
    /// NAB's `results/` (`<category>/<detector>_<file>.csv`, with an `anomaly_score` column);
    /// a row is a detection when its score is at least `threshold` (NAB's `config/thresholds.json`).
    public static func evaluatePublishedNAB(_ files: [NABFile], directory: String, threshold: Double) throws -> NABReport {
        let detector = URL(fileURLWithPath: directory).lastPathComponent
        return NABReport(files: try files.map { f in
            let name = f.key.split(separator: "/").last.map(String.init) ?? f.key
            let path = "\(directory)/\(f.category)/\(detector)_\(name)"
            let scores = try PublishedResults.anomalyScores(path: path)
            guard scores.count == f.series.count else {
                throw DatasetError.badRow(file: path, line: scores.count + 1, reason: "\(scores.count) rows, but the data file has \(f.series.count)")
            }
            return scoreNAB(f, detections: scores.indices.filter { scores[$0] >= threshold })
        })
    }
}

/// Reads the `anomaly_score` column of a NAB results file.
public enum PublishedResults {
    public static func anomalyScores(path: String) throws -> [Double] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw DatasetError.unreadable(path)
        }
        var lines = text.split(whereSeparator: \.isNewline).makeIterator()
        guard let header = lines.next()?.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }),
              let column = header.firstIndex(of: "anomaly_score") else {
            throw DatasetError.unknownHeader("\(path): no anomaly_score column")
        }
        var out: [Double] = []
        var row = 1
        while let line = lines.next() {
            row += 1
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard column < fields.count, let v = Double(fields[column].trimmingCharacters(in: .whitespaces)) else {
                throw DatasetError.badRow(file: path, line: row, reason: "no number in anomaly_score")
            }
            out.append(v)
        }
        return out
    }
}
