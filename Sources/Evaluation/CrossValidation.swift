// Leave-one-category-out cross-validation: is the default configuration chosen for reasons
// that carry over to data it was not chosen on?
//
// Every candidate configuration is replayed once over every file. For each category (NAB) or
// group (SKAB), the candidate that scores best on all the *other* categories is picked, and the
// left-out category is scored with it. The left-out column is what a parameter change has to
// improve; the in-sample column (the shipped default on everything) is shown beside it.
import Detection

/// A named configuration to choose from.
public struct Candidate: Sendable {
    public var name: String
    public var config: DetectorConfiguration
    public init(name: String, config: DetectorConfiguration) { self.name = name; self.config = config }
}

public enum Candidates {
    /// The NAB grid: the shipped default first, then the settings that decide how sensitive the
    /// univariate chain is — the risk level of the self-calibrated threshold, its history, the least spread it is
    /// judged with, the novelty test's vigilance, shape width and rest — how many steps a score must hold
    /// before an alert opens, and which openings count as a daily recurrence. (NAB streams are univariate: the PCA settings do not apply.)
    public static func nab(base: DetectorConfiguration = DetectorConfiguration()) -> [Candidate] {
        var out = [Candidate(name: "default", config: base)]
        for risk in [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8] where risk != base.univariate.likelihoodTailLimit {
            out.append(variant(base, "likelihood-tail=\(risk)") { $0.univariate.likelihoodTailLimit = risk })
        }
        for w in [500, 1000, 2000, 4000] where w != base.univariate.likelihoodWindow {
            out.append(variant(base, "likelihood-window=\(w)") { $0.univariate.likelihoodWindow = w })
        }
        for f in [0.001, 0.19, 0.35] where f != base.univariate.likelihoodSpreadFloor {
            out.append(variant(base, "likelihood-spread-floor=\(f)") { $0.univariate.likelihoodSpreadFloor = f })
        }
        for (name, learn, evt) in [("no-warmup-learning", false, base.univariate.calibratedTail), ("pareto-tail", true, true)] {
            let c = variant(base, name) { $0.univariate.learnDuringWarmup = learn; $0.univariate.calibratedTail = evt }
            out.append(c)
            if evt { for risk in [1e-2, 1e-3] { out.append(variant(c.config, "pareto-tail risk=\(risk)") { $0.univariate.likelihoodTailLimit = risk }) } }
        }
        out.append(variant(base, "no-novelty") { $0.enabledModels.remove(.novelty) })
        for v in [0.3, 0.5, 0.8, 1.0] where v != base.univariate.noveltyVigilance {
            out.append(variant(base, "novelty-vigilance=\(v)") { $0.univariate.noveltyVigilance = v })
        }
        for w in [1, 2, 4, 8] where w != base.univariate.noveltyWidth {
            out.append(variant(base, "novelty-width=\(w)") { $0.univariate.noveltyWidth = w })
        }
        for f in [0.2, 0.5] where f != base.univariate.noveltyRestFraction {
            out.append(variant(base, "novelty-rest=\(f)") { $0.univariate.noveltyRestFraction = f })
        }
        out.append(variant(base, "no-recurrence") { $0.lifecycle.recurrencePeriods = 0 })
        for k in [1, 3] where k != base.lifecycle.recurrencePeriods {
            out.append(variant(base, "recurrence-periods=\(k)") { $0.lifecycle.recurrencePeriods = k })
        }
        for minutes in [5, 30] where Int64(minutes) * 60_000 != base.lifecycle.recurrenceToleranceMs {
            out.append(variant(base, "recurrence-tolerance=\(minutes)m") { $0.lifecycle.recurrenceToleranceMs = Int64(minutes) * 60_000 })
        }
        return out + openCounts(base)
    }

    /// The SKAB grid: the default, when a multivariate excursion counts as settled, and the
    /// open count. (Its machines run the PCA monitor; the univariate tests do not feed the score.)
    public static func skab(base: DetectorConfiguration = DetectorConfiguration()) -> [Candidate] {
        var out = [Candidate(name: "default", config: base)]
        for f in [0.0, 0.05, 0.2] where f != base.multivariate.excursionSettleFraction {
            out.append(variant(base, "settle-fraction=\(f)") { $0.multivariate.excursionSettleFraction = f })
        }
        for ms: Int64 in [5_000, 30_000] where ms != base.multivariate.excursionSettleMs {
            out.append(variant(base, "settle-hold=\(ms / 1000)s") { $0.multivariate.excursionSettleMs = ms })
        }
        return out + openCounts(base)
    }

    private static func openCounts(_ base: DetectorConfiguration) -> [Candidate] {
        [1, 3, 6, 12].filter { $0 != base.lifecycle.openCount }.map { n in variant(base, "open-count=\(n)") { $0.lifecycle.openCount = n } }
    }

    private static func variant(_ base: DetectorConfiguration, _ name: String, _ change: (inout DetectorConfiguration) -> Void) -> Candidate {
        var c = base
        change(&c)
        return Candidate(name: name, config: c)
    }
}

public struct NABFold: Sendable {
    public var category: String
    /// The shipped default on this category.
    public var inSample: NABTally
    /// The candidate picked on the other categories, and its score on this one.
    public var chosen: String
    public var leftOut: NABTally
}

public struct NABCrossValidation: Sendable {
    public var folds: [NABFold]
    public var inSample: NABTally { folds.reduce(NABTally()) { $0 + $1.inSample } }
    public var leftOut: NABTally { folds.reduce(NABTally()) { $0 + $1.leftOut } }
}

public struct SKABFold: Sendable {
    public var group: String
    public var inSample: ConfusionCounts
    public var chosen: String
    public var leftOut: ConfusionCounts
}

public struct SKABCrossValidation: Sendable {
    public var folds: [SKABFold]
    public var inSample: ConfusionCounts { folds.reduce(ConfusionCounts()) { $0 + $1.inSample } }
    public var leftOut: ConfusionCounts { folds.reduce(ConfusionCounts()) { $0 + $1.leftOut } }
}

public enum CrossValidation {
    /// `reports[i]` is candidate i over the same files; candidate 0 is the shipped default.
    /// Picks by the standard profile, normalised over the other categories as one corpus; ties
    /// go to the earlier candidate.
    public static func nab(candidates: [Candidate], reports: [NABReport], profile: NABProfile = .standard) -> NABCrossValidation {
        precondition(!reports.isEmpty && candidates.count == reports.count)
        let cats = reports[0].categories
        let folds = cats.map { cat -> NABFold in
            let others = reports.map { $0.total(profile) { $0.category != cat } }
            let best = bestIndex(others) { t -> Double in t.windows == 0 ? t.raw : t.normalized(profile) }
            return NABFold(category: cat, inSample: reports[0].total(profile) { $0.category == cat },
                           chosen: candidates[best].name, leftOut: reports[best].total(profile) { $0.category == cat })
        }
        return NABCrossValidation(folds: folds)
    }

    /// SKAB: picks by point F1 over the other groups.
    public static func skab(candidates: [Candidate], reports: [SKABReport]) -> SKABCrossValidation {
        precondition(!reports.isEmpty && candidates.count == reports.count)
        let folds = reports[0].groups.map { g -> SKABFold in
            let others = reports.map { r in r.files.filter { $0.group != g }.reduce(ConfusionCounts()) { $0 + $1.counts } }
            let best = bestIndex(others) { $0.f1 }
            return SKABFold(group: g, inSample: reports[0].group(g), chosen: candidates[best].name, leftOut: reports[best].group(g))
        }
        return SKABCrossValidation(folds: folds)
    }

    /// Replays every candidate after the first over `files` (the first, the shipped default,
    /// is `defaultReport`), then cross-validates.
    public static func nab(files: [Evaluator.NABFile], defaultReport: NABReport, candidates: [Candidate] = Candidates.nab()) -> NABCrossValidation {
        let reports = [defaultReport] + candidates.dropFirst().map { Evaluator.evaluateNAB(files, base: $0.config) }
        return nab(candidates: candidates, reports: reports)
    }

    /// SKAB counterpart of `nab(files:defaultReport:candidates:)`.
    public static func skab(series: [LabeledSeries], defaultReport: SKABReport, candidates: [Candidate] = Candidates.skab()) -> SKABCrossValidation {
        let reports = [defaultReport] + candidates.dropFirst().map { Evaluator.evaluateSKAB(series, base: $0.config) }
        return skab(candidates: candidates, reports: reports)
    }

    static func bestIndex<T>(_ xs: [T], by value: (T) -> Double) -> Int {
        var best = 0
        for i in xs.indices.dropFirst() where value(xs[i]) > value(xs[best]) + 1e-12 { best = i }
        return best
    }
}
