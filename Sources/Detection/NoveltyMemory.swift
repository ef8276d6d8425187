// Novelty: a bounded memory of the short shapes a stream has shown (windows of its last few
// readings, in units of the warm-up's range) and a test of whether the current shape is unlike
// all of them. Streams whose anomalies are events never seen before (a value far beyond any
// earlier one, a new pattern) are caught here even when their noise is heavy-tailed, because
// the test is on distance from what was seen, not on a fitted distribution. The idea follows
// the novelty detectors that lead NAB (CAD OSE, ARTime): remember what was seen, flag what was
// not, then rest. Constant memory (capacity × width values); O(1) per reading for a familiar
// shape (the last match is tried first), O(capacity × width) for a novel one.

/// A novelty test over one stream. Pure value type.
public struct NoveltyMemory: Codable, Sendable, Equatable {
    public let width: Int
    public let capacity: Int
    /// Distance (L-infinity, in warm-up ranges) beyond which a shape is novel.
    public let vigilance: Double
    /// Readings after a novelty during which no new one is reported.
    public let restReadings: Int
    /// Readings a reported novelty holds its ratio, so the alert lifecycle sees it.
    public let holdReadings: Int
    /// Distinct warm-up values needed for the test to run: a stream of a few levels (small
    /// counts, states) sets a new record by chance too often, and is left to the likelihood.
    public let minLevels: Int
    private var enabled = true

    private var low = 0.0
    private var constantWarmup = false
    private var range = 1.0
    private var recent: [Double] = []
    /// `capacity` shapes of `width` values, flattened; `stored` of them in use.
    private var shapes: [Double] = []
    private var lastUsed: [Int] = []
    private var stored = 0
    private var lastMatch = 0
    private var readings = 0
    private var lastReported = Int.min / 2
    private var held = 0
    private var heldRatio = 0.0

    /// Shapes remembered now (never more than `capacity`).
    public var rememberedShapes: Int { stored }

    public init(width: Int, capacity: Int, vigilance: Double, restReadings: Int, holdReadings: Int, minLevels: Int = 20) {
        self.minLevels = minLevels
        self.width = Swift.max(1, width)
        self.capacity = Swift.max(1, capacity)
        self.vigilance = vigilance > 0 ? vigilance : 1
        self.restReadings = Swift.max(0, restReadings)
        self.holdReadings = Swift.max(1, holdReadings)
    }

    /// Learns the warm-up: its range becomes the unit, and its shapes are remembered (none reported).
    public mutating func learn(warmup w: [Double]) {
        guard let lo = w.min(), let hi = w.max() else { return }
        enabled = Set(w).count >= minLevels
        low = lo
        // A constant warm-up has no range: a tenth of its level, so any real change is novel.
        range = hi > lo ? hi - lo : Swift.max(Swift.abs(lo) * 0.1, 1e-9)
        constantWarmup = hi == lo
        for v in w { _ = step(v, report: false) }
    }

    /// Whether more readings after the warm-up may still be learned (`learn(_:)`): not after a
    /// constant warm-up, whose first change is what the test is for, nor when it is off.
    public var learnsOn: Bool { enabled && !constantWarmup }

    /// One reading that is still learned, not tested: the unit widens to the range seen so far
    /// (the remembered shapes are re-expressed in it) and the shape is remembered; nothing is
    /// reported.
    public mutating func learn(_ value: Double) {
        guard learnsOn else { return }
        let high = low + range
        if value < low || value > high {
            let newLow = Swift.min(low, value)
            let newRange = Swift.max(high, value) - newLow
            let scale = range / newRange, shift = (low - newLow) / newRange
            for i in shapes.indices { shapes[i] = shapes[i] * scale + shift }
            for i in recent.indices { recent[i] = recent[i] * scale + shift }
            (low, range) = (newLow, newRange)
        }
        _ = step(value, report: false)
    }

    /// One reading after the warm-up: the ratio (distance / vigilance, at least 1) while a
    /// novelty is reported and held, else 0.
    public mutating func observe(_ value: Double) -> Double {
        guard enabled else { return 0 }
        if step(value, report: true) { return heldRatio }
        if held > 0 { held -= 1; return heldRatio }
        return 0
    }

    /// Pushes the value; true when the shape is novel and a novelty is reported now.
    private mutating func step(_ value: Double, report: Bool) -> Bool {
        readings += 1
        // The newest value last; shifted in place (`width` is a few readings).
        if recent.count < width { recent.append((value - low) / range) } else {
            for i in 1..<width { recent[i - 1] = recent[i] }
            recent[width - 1] = (value - low) / range
        }
        guard recent.count == width else { return false }
        // A shape further than half the vigilance from every remembered one is remembered, so
        // any shape within half the vigilance of one seen before has a remembered one within
        // the vigilance: what is reported is at least that far from everything seen.
        if let j = firstWithin(vigilance / 2) {
            lastMatch = j
            lastUsed[j] = readings
            return false
        }
        let novel = firstWithin(vigilance) == nil
        let distance = novel ? nearestDistance() : 0
        remember()
        guard novel, report, readings - lastReported > restReadings else { return false }
        lastReported = readings
        held = holdReadings - 1
        heldRatio = distance.isFinite ? distance / vigilance : 2
        return true
    }

    /// The first remembered shape within `limit` of the current one (every value within it),
    /// the last match tried first. The hot loop of the test: raw buffers, no bounds checks.
    func firstWithin(_ limit: Double) -> Int? {
        width == 4 ? firstWithin4(limit) : firstWithinScalar(limit)
    }

    /// `firstWithin` for any width (internal: tests compare it with `firstWithin4`).
    func firstWithinScalar(_ limit: Double) -> Int? {
        let w = width, n = stored
        return shapes.withUnsafeBufferPointer { sp in
            recent.withUnsafeBufferPointer { rp -> Int? in
                var j = lastMatch
                for _ in 0..<n {
                    let base = j * w
                    var i = 0
                    while i < w, Swift.abs(sp[base + i] - rp[i]) <= limit { i += 1 }
                    if i == w { return j }
                    j = j + 1 == n ? 0 : j + 1
                }
                return nil
            }
        }
    }

    /// `firstWithin` for the default width of 4: one shape is one SIMD4 compare, no inner loop.
    /// Same order and same test (a NaN difference matches nowhere, as in the scalar loop).
    func firstWithin4(_ limit: Double) -> Int? {
        let n = stored
        guard n > 0 else { return nil }
        return shapes.withUnsafeBufferPointer { sp in
            recent.withUnsafeBufferPointer { rp -> Int? in
                let raw = UnsafeRawPointer(sp.baseAddress!)
                let r = SIMD4<Double>(rp[0], rp[1], rp[2], rp[3])
                let lim = SIMD4<Double>(repeating: limit)
                func matches(_ j: Int) -> Bool {
                    let s = raw.loadUnaligned(fromByteOffset: j &* 32, as: SIMD4<Double>.self)
                    let d = s - r
                    return all((d .<= lim) .& (d .>= -lim))  // |d| <= limit, false for NaN
                }
                for j in lastMatch..<n where matches(j) { return j }
                for j in 0..<Swift.min(lastMatch, n) where matches(j) { return j }
                return nil
            }
        }
    }

    /// Distance to the nearest remembered shape (infinity with none): only for a new one.
    private func nearestDistance() -> Double {
        var best = Double.infinity
        for j in 0..<stored {
            var d = 0.0
            let base = j * width
            for i in 0..<width { d = Swift.max(d, Swift.abs(shapes[base + i] - recent[i])) }
            best = Swift.min(best, d)
        }
        return best
    }

    /// Stores the current shape, replacing the least recently matched one when full.
    private mutating func remember() {
        if stored < capacity {
            shapes.append(contentsOf: recent)
            lastUsed.append(readings)
            lastMatch = stored
            stored += 1
            return
        }
        var j = 0
        for k in 1..<stored where lastUsed[k] < lastUsed[j] { j = k }
        for i in 0..<width { shapes[j * width + i] = recent[i] }
        lastUsed[j] = readings
        lastMatch = j
    }
}
