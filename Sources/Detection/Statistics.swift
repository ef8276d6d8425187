// Small numeric building blocks shared by the models: a fixed-size ring buffer with running
// sums, median/MAD, quantiles and the Gaussian tail.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fixed-capacity ring buffer of Doubles with running sum and sum of squares (O(1) mean/variance).
public struct RollingWindow: Codable, Sendable, Equatable {
    public private(set) var capacity: Int
    private var storage: [Double]
    private var head = 0
    public private(set) var count = 0
    private var sum = 0.0
    private var sumSq = 0.0
    // Running sums drift with floating-point error; recompute them every `capacity` pushes.
    private var sinceRecompute = 0

    public init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
        storage = []
        storage.reserveCapacity(self.capacity)
    }

    public var isFull: Bool { count == capacity }
    public var mean: Double { count == 0 ? 0 : sum / Double(count) }
    public var variance: Double {
        guard count > 1 else { return 0 }
        let m = sum / Double(count)
        return Swift.max(0, (sumSq - Double(count) * m * m) / Double(count - 1))
    }

    public mutating func push(_ x: Double) {
        if storage.count < capacity {
            storage.append(x)
            count += 1
        } else {
            let old = storage[head]
            storage[head] = x
            sum -= old
            sumSq -= old * old
        }
        head += 1  // no division per push: head < capacity always
        if head == capacity { head = 0 }
        sum += x
        sumSq += x * x
        sinceRecompute += 1
        if sinceRecompute >= capacity { recompute() }
    }

    private mutating func recompute() {
        sinceRecompute = 0
        var s = 0.0, q = 0.0
        for v in storage { s += v; q += v * v }
        sum = s
        sumSq = q
    }
}

enum Stats {
    static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        let n = s.count
        return n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2])
    }

    /// Linear-interpolated empirical quantile, q in [0,1].
    static func quantile(_ xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        let pos = Swift.min(Swift.max(q, 0), 1) * Double(s.count - 1)
        let lo = Int(pos.rounded(.down))
        let hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    static func meanStd(_ xs: [Double]) -> (mean: Double, std: Double) {
        guard !xs.isEmpty else { return (0, 0) }
        let m = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return (m, 0) }
        let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
        return (m, v.squareRoot())
    }

    /// Two-sided Gaussian tail probability P(|Z| >= |z|).
    @inline(__always)
    static func twoSidedTail(_ z: Double) -> Double { erfc(Swift.abs(z) / 2.0.squareRoot()) }

    @inline(__always)
    static func ln(_ x: Double) -> Double { log(x) }

    @inline(__always)
    static func exp2neg(_ x: Double) -> Double { exp2(-x) }
}

/// Maps a model's limit ratio (1 = at its control limit) to a score in [0,1): 1 - 2^-r,
/// so a model exactly at its limit scores 0.5, twice the limit 0.75.
@inline(__always)
public func scoreFromRatio(_ r: Double) -> Double {
    r <= 0 ? 0 : 1 - Stats.exp2neg(r)
}

/// Inverse of `scoreFromRatio`.
@inline(__always)
public func ratioFromScore(_ s: Double) -> Double {
    s <= 0 ? 0 : (s >= 1 ? .infinity : -log2(1 - s))
}
