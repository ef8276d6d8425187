// The self-calibrating threshold: how rare is a value, judged by the stream's own history of
// such values? Peaks over threshold, as in SPOT (Siffer et al., KDD 2017): the history's
// upper quantile `u` splits off the tail, a generalised Pareto distribution is fitted to the
// excesses over `u` (method of moments), and a new value's tail probability is
//     P(X > x) = (n_u / n) · (1 + ξ (x − u) / σ)^(−1/ξ)        for x > u.
// Unlike a Gaussian tail, this follows each stream's own tail: heavy for spiky counts, light
// for smooth signals, bounded for a capped one. Constant memory (a ring of the last values);
// the fit is refreshed every `refreshEvery` values, so the cost per value stays O(1) amortised.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct ScoreTail: Codable, Sendable, Equatable {
    public let capacity: Int
    /// Share of the history above `u` (default 0.05 — and at least `minExcesses` values).
    public let tailShare: Double
    public let refreshEvery: Int
    private var ring: [Double] = []
    private var head = 0
    private var sinceFit = 0
    // The fit: threshold, share above it, GPD scale and shape.
    private var u = 0.0
    private var share = 0.0
    private var sigma = 0.0
    private var xi = 0.0
    public private(set) var isFitted = false

    static let minExcesses = 10
    /// Smallest GPD scale: values are in noise standard deviations, so a thousandth of one
    /// is "no spread" (a flat history), not a reason for an infinite surprise.
    static let minScale = 1e-3

    public init(capacity: Int, tailShare: Double = 0.05, refreshEvery: Int = 50) {
        self.capacity = Swift.max(capacity, 2 * Self.minExcesses)
        self.tailShare = Swift.min(Swift.max(tailShare, 0.001), 0.5)
        self.refreshEvery = Swift.max(refreshEvery, 1)
        ring.reserveCapacity(self.capacity)
    }

    public var count: Int { ring.count }

    public mutating func push(_ x: Double) {
        guard x.isFinite else { return }
        if ring.count < capacity { ring.append(x) } else { ring[head] = x }
        head = (head + 1) % capacity
        sinceFit += 1
        if sinceFit >= refreshEvery { fit() }
    }

    /// Upper-tail probability of `x` under the fitted tail; nil before a fit. Values at or
    /// below the tail threshold get the empirical share above it (they are not rare).
    public func tailProbability(_ x: Double) -> Double? {
        guard isFitted else { return nil }
        guard x > u else { return share }
        let y = (x - u) / sigma
        let p: Double
        if Swift.abs(xi) < 1e-6 {
            p = share * exp(-y)
        } else {
            let base = 1 + xi * y
            // A bounded tail (ξ < 0) ends at u − σ/ξ: beyond it the value was impossible so far.
            p = base <= 0 ? 0 : share * pow(base, -1 / xi)
        }
        return Swift.max(p, 1e-300)
    }

    /// Refits `u`, the share above it and the GPD to the current history.
    public mutating func fit() {
        sinceFit = 0
        let n = ring.count
        let k = Swift.max(Self.minExcesses, Int((tailShare * Double(n)).rounded()))
        guard n >= 2 * Self.minExcesses, k < n else { return }
        var sorted = ring
        sorted.sort()
        u = sorted[n - k - 1]
        var m = 0.0, m2 = 0.0
        for v in sorted[(n - k)...] { let e = v - u; m += e; m2 += e * e }
        m /= Double(k)
        let variance = Swift.max(m2 / Double(k) - m * m, 0)
        share = Double(k) / Double(n)
        if m <= 0 {
            // A flat top: every excess is zero. Anything above `u` is new; an exponential tail
            // at the smallest scale says how new.
            sigma = Self.minScale
            xi = 0
        } else if variance <= 0 {
            sigma = Swift.max(m, Self.minScale)
            xi = 0
        } else {
            // Method of moments: mean = σ/(1−ξ), variance = σ²/((1−ξ)²(1−2ξ)).
            // ξ is kept in [−0.5, 0.45] (a finite variance), σ then matches the mean.
            let r = m * m / variance
            xi = Swift.min(Swift.max(0.5 * (1 - r), -0.5), 0.45)
            sigma = Swift.max(m * (1 - xi), Self.minScale)
        }
        isFitted = true
    }
}
