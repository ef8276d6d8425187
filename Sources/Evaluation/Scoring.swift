// Scorers: SKAB point labels (F1, FAR, MAR), NAB windows (three profiles), and the SKAB
// changepoint score that reuses the NAB rules with a 60 s window right of each changepoint.
import Foundation

/// Point-label confusion counts, accumulated over any number of files.
public struct ConfusionCounts: Sendable, Equatable {
    public var tp = 0, fp = 0, fn = 0, tn = 0
    public init() {}

    public mutating func add(predicted: [Bool], actual: [Bool]) {
        for (p, a) in zip(predicted, actual) {
            switch (p, a) {
            case (true, true): tp += 1
            case (true, false): fp += 1
            case (false, true): fn += 1
            case (false, false): tn += 1
            }
        }
    }

    public static func + (a: ConfusionCounts, b: ConfusionCounts) -> ConfusionCounts {
        var c = a
        c.tp += b.tp; c.fp += b.fp; c.fn += b.fn; c.tn += b.tn
        return c
    }

    public var precision: Double { tp + fp == 0 ? 0 : Double(tp) / Double(tp + fp) }
    public var recall: Double { tp + fn == 0 ? 0 : Double(tp) / Double(tp + fn) }
    public var f1: Double { tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn) }
    /// False alarm rate FP / (FP + TN).
    public var far: Double { fp + tn == 0 ? 0 : Double(fp) / Double(fp + tn) }
    /// Missed alarm rate FN / (FN + TP).
    public var mar: Double { fn + tp == 0 ? 0 : Double(fn) / Double(fn + tp) }
}

/// A NAB cost profile.
public struct NABProfile: Sendable, Equatable {
    public var name: String
    public var tpWeight: Double
    public var fnWeight: Double
    public var fpWeight: Double

    public static let standard = NABProfile(name: "standard", tpWeight: 1, fnWeight: 1, fpWeight: 0.11)
    public static let rewardLowFP = NABProfile(name: "reward_low_FP_rate", tpWeight: 1, fnWeight: 1, fpWeight: 0.22)
    public static let rewardLowFN = NABProfile(name: "reward_low_FN_rate", tpWeight: 1, fnWeight: 2, fpWeight: 0.11)
    public static let all: [NABProfile] = [.standard, .rewardLowFP, .rewardLowFN]
}

/// A label window as inclusive row indices.
public struct RowWindow: Sendable, Equatable {
    public var start: Int
    public var end: Int
    public init(start: Int, end: Int) { self.start = start; self.end = end }
    public var width: Int { end - start + 1 }
}

/// Raw and bound scores of one file (or a sum of files) under one profile.
public struct NABTally: Sendable, Equatable {
    public var raw = 0.0
    public var windows = 0
    public var truePositives = 0
    public var falsePositives = 0
    public init() {}

    public static func + (a: NABTally, b: NABTally) -> NABTally {
        var c = a
        c.raw += b.raw; c.windows += b.windows; c.truePositives += b.truePositives; c.falsePositives += b.falsePositives
        return c
    }

    /// 100 * (raw - null) / (perfect - null), null = -fn * windows, perfect = tp * windows.
    public func normalized(_ p: NABProfile) -> Double {
        let null = -p.fnWeight * Double(windows)
        let perfect = p.tpWeight * Double(windows)
        return perfect == null ? 0 : 100 * (raw - null) / (perfect - null)
    }
}

public enum NABScorer {
    /// NAB's scaled sigmoid: 2/(1+e^{5y}) - 1, and -1 for y > 3.
    public static func sigma(_ y: Double) -> Double {
        y > 3 ? -1 : 2 / (1 + exp(5 * y)) - 1
    }

    /// Probation rows: min(floor(0.15 n), 750).
    public static func probation(rows n: Int) -> Int { min(Int((0.15 * Double(n)).rounded(.down)), 750) }

    /// Scores detections (rows where an alert opened) against windows for one file.
    public static func score(detections: [Int], windows: [RowWindow], probation: Int, profile p: NABProfile) -> NABTally {
        var t = NABTally()
        t.windows = windows.count
        let wins = windows.sorted { $0.start < $1.start }
        var detected = [Bool](repeating: false, count: wins.count)
        for i in detections.sorted() where i >= probation {
            if let k = wins.firstIndex(where: { $0.start <= i && i <= $0.end }) {
                // Only the earliest detection in a window counts; later ones score 0.
                if !detected[k] {
                    detected[k] = true
                    let w = wins[k]
                    t.raw += sigma(-Double(w.end - i + 1) / Double(w.width)) * p.tpWeight / sigma(-1)
                    t.truePositives += 1
                }
            } else {
                t.falsePositives += 1
                if let prev = wins.last(where: { $0.end < i }) {
                    let denom = Double(max(prev.width - 1, 1))
                    t.raw += sigma(Double(abs(i - prev.end)) / denom) * p.fpWeight
                } else {
                    t.raw -= p.fpWeight
                }
            }
        }
        for d in detected where !d { t.raw -= p.fnWeight }
        return t
    }

    /// Label windows given as timestamps -> inclusive rows: first row at or after the start,
    /// last row at or before the end.
    public static func rowWindows(_ windows: [(start: Int64, end: Int64)], epochMs: [Int64]) -> [RowWindow] {
        windows.compactMap { w in
            guard let s = epochMs.firstIndex(where: { $0 >= w.start }),
                  let e = epochMs.lastIndex(where: { $0 <= w.end }), e >= s else { return nil }
            return RowWindow(start: s, end: e)
        }
    }

    /// Reads NAB's windows.json: `{"category/file.csv": [["start", "end"], ...]}`.
    public static func loadWindows(path: String) throws -> [String: [(start: Int64, end: Int64)]] {
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError.unreadable(path) }
        let obj = try JSONDecoder().decode([String: [[String]]].self, from: data)
        var out: [String: [(start: Int64, end: Int64)]] = [:]
        for (k, v) in obj {
            out[k] = v.compactMap { pair in
                guard pair.count == 2, let s = CSVLoader.parseTimestamp(pair[0]), let e = CSVLoader.parseTimestamp(pair[1]) else { return nil }
                return (s, e)
            }
        }
        return out
    }
}

public enum SKABScorer {
    /// The training part of every SKAB experiment file: its first 400 rows, never scored.
    public static let trainingRows = 400

    /// Contiguous runs of `true` as inclusive row windows (SKAB's anomaly spans).
    public static func labelRuns(_ labels: [Bool]) -> [RowWindow] {
        var out: [RowWindow] = []
        var start: Int? = nil
        for (i, a) in labels.enumerated() {
            if a, start == nil { start = i }
            if !a, let s = start { out.append(RowWindow(start: s, end: i - 1)); start = nil }
        }
        if let s = start { out.append(RowWindow(start: s, end: labels.count - 1)) }
        return out
    }

    /// Changepoint windows: from each `changepoint` row to the last row within 60 s after it.
    /// Where two changepoints are closer than that, the earlier window stops before the later
    /// changepoint, so windows never overlap and each changepoint keeps its own window.
    public static func changepointWindows(changepoint: [Bool], epochMs: [Int64], windowMs: Int64 = 60_000) -> [RowWindow] {
        let cps = changepoint.indices.filter { changepoint[$0] }
        var out: [RowWindow] = []
        for (n, c) in cps.enumerated() {
            var e = c
            let limit = epochMs[c] + windowMs
            let stop = n + 1 < cps.count ? cps[n + 1] - 1 : epochMs.count - 1
            while e + 1 <= stop && epochMs[e + 1] <= limit { e += 1 }
            out.append(RowWindow(start: c, end: e))
        }
        return out
    }
}
