// Settled excursions: when a large excursion of the PCA ratio falls back to a small share of
// its peak and stays there, the machine has come back most of the way but not all (a valve
// restored, a rig still warm). Alerting on the offset left behind would keep an alert open for
// as long as the offset lasts, long after the event. Instead the offset becomes the reference:
// ratios are reported relative to it, so the alert closes and drift tracking resumes (the
// monitor re-baselines on the new state). A deviation that grows again alerts anew, and the
// reference decays back to 1 as the machine returns to its trained state.
// A fault that keeps growing (wear) or holds its level never falls to a tenth of its peak, so
// it is never settled. The hold counts both time and readings, so slow sampling does not
// settle on one dip, and an excursion older than an hour (a fault building for hours or days,
// with dips) never settles. Pure value type, O(1) per step.

public struct ExcursionSettling: Codable, Sendable, Equatable {
    /// Share of the peak the ratio must stay below (0 = never settle).
    public let fraction: Double
    /// How long it must stay there, ms.
    public let holdMs: Int64
    /// And for how many readings at least: on slow sampling (a snapshot every 10 minutes)
    /// `holdMs` passes within two readings, and one dip of a spiky, growing fault is not a settled state.
    public let holdReadings: Int
    /// An excursion older than this, ms, is a condition, not an event, and never settles: a
    /// fault that has been building for hours (wear) keeps its alert through a dip.
    public let maxAgeMs: Int64
    /// The reference raw ratios are divided by (1 = the trained state).
    public private(set) var reference = 1.0
    /// Settled excursions so far (for evidence and tests).
    public private(set) var settled = 0
    private var peak = 0.0
    private var belowSince: Int64? = nil
    private var belowMax = 0.0
    private var belowCount = 0
    /// When the current excursion began (the ratio last rose to its limit).
    private var startedAt: Int64? = nil

    /// Where a settled offset is put: half the alert limit, below the close threshold.
    static let settledRatio = 0.5
    /// Per step, how fast the reference follows the raw ratio down (about 100 steps).
    static let decay = 0.01

    public init(fraction: Double, holdMs: Int64, holdReadings: Int = MultivariateParameters().excursionSettleReadings,
                maxAgeMs: Int64 = MultivariateParameters().excursionSettleMaxAgeMs) {
        self.fraction = fraction
        self.holdMs = holdMs
        self.holdReadings = holdReadings
        self.maxAgeMs = maxAgeMs
    }

    /// `raw` relative to the reference.
    public func relative(_ raw: Double) -> Double { raw / reference }

    /// Folds in one raw (smoothed) ratio at `ts`.
    public mutating func step(raw: Double, ts: Int64) {
        guard fraction > 0 else { return }
        let r = raw / reference
        if r < 1 {
            // Back within the limit: the excursion is over.
            peak = 0
            belowSince = nil
            startedAt = nil
        } else {
            let started = startedAt ?? ts
            startedAt = started
            peak = Swift.max(peak, r)
            if r < fraction * peak {
                let since = belowSince ?? ts
                belowMax = belowSince == nil ? raw : Swift.max(belowMax, raw)
                belowCount = belowSince == nil ? 1 : belowCount + 1
                belowSince = since
                if ts - since >= holdMs, belowCount >= holdReadings, ts - started <= maxAgeMs {
                    reference = Swift.max(reference, belowMax / Self.settledRatio)
                    settled += 1
                    peak = 0
                    belowSince = nil
                }
            } else {
                belowSince = nil
            }
        }
        let target = raw / Self.settledRatio
        if reference > 1, target < reference {
            reference = Swift.max(1, reference + Self.decay * (target - reference))
        }
    }
}
