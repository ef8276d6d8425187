// Multivariate monitor for one machine: PCA fitted on a healthy warm-up of aligned,
// standardized sensor vectors; Hotelling T^2 in the retained subspace and SPE/Q in the residual.
//
// Control limits: the empirical `limitQuantile` of the warm-up's own T^2 and Q values times
// `limitMargin`. We chose empirical limits over the F / Jackson-Mudholkar approximations
// because industrial sensors are rarely Gaussian (quantised, skewed), and the theoretical
// limits then misstate the false-alarm rate; the margin compensates for in-sample optimism.
//
// Operating-point changes: a warm-up at one load knows nothing of the others, so the first
// shift change would leave the normal band. When the monitor leaves its band, it watches for up
// to `operatingChangeDecideMs` (score held) and asks how the vector got there: several sensors
// moving together fast is a change of operating point, and the monitor follows it; anything
// slower, or one sensor alone, is an anomaly. See docs/detection.md.

/// Symmetric eigen-decomposition by cyclic Jacobi rotations. Small d (tens) only.
public enum SymmetricEigen {
    /// Returns eigenvalues (descending) and eigenvectors as columns of a row-major d x d matrix.
    public static func decompose(_ matrix: [Double], dimension d: Int, sweeps: Int = 100) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        for _ in 0..<sweeps {
            var off = 0.0
            for i in 0..<d { for j in (i + 1)..<max(d, i + 1) where j < d { off += a[i * d + j] * a[i * d + j] } }
            if off < 1e-22 { break }
            for p in 0..<d {
                for q in (p + 1)..<max(d, p + 1) where q < d {
                    let apq = a[p * d + q]
                    if abs(apq) < 1e-300 { continue }
                    let app = a[p * d + p], aqq = a[q * d + q]
                    let theta = (aqq - app) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0..<d {
                        let akp = a[k * d + p], akq = a[k * d + q]
                        a[k * d + p] = c * akp - s * akq
                        a[k * d + q] = s * akp + c * akq
                    }
                    for k in 0..<d {
                        let apk = a[p * d + k], aqk = a[q * d + k]
                        a[p * d + k] = c * apk - s * aqk
                        a[q * d + k] = s * apk + c * aqk
                    }
                    for k in 0..<d {
                        let vkp = v[k * d + p], vkq = v[k * d + q]
                        v[k * d + p] = c * vkp - s * vkq
                        v[k * d + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<d).sorted { a[$0 * d + $0] > a[$1 * d + $1] }
        var values = [Double](), vectors = [Double](repeating: 0, count: d * d)
        for (newCol, old) in order.enumerated() {
            values.append(a[old * d + old])
            for k in 0..<d { vectors[k * d + newCol] = v[k * d + old] }
        }
        return (values, vectors)
    }
}

/// A fitted PCA model with T^2 / Q statistics.
public struct PCAModel: Codable, Sendable, Equatable {
    public let dimension: Int
    public let components: Int
    public let mean: [Double]
    public let scale: [Double]
    /// d x k loadings, row-major.
    public let loadings: [Double]
    public let eigenvalues: [Double]

    /// Fits on row vectors that are already standardized (`mean`/`scale` are kept for the caller).
    public static func fit(standardized rows: [[Double]], mean: [Double], scale: [Double], varianceExplained: Double) -> PCAModel {
        let d = mean.count
        let n = Double(max(rows.count - 1, 1))
        var mu = [Double](repeating: 0, count: d)
        for r in rows { for i in 0..<d { mu[i] += r[i] } }
        for i in 0..<d { mu[i] /= Double(max(rows.count, 1)) }
        var cov = [Double](repeating: 0, count: d * d)
        for r in rows {
            for i in 0..<d {
                let xi = r[i] - mu[i]
                for j in i..<d { cov[i * d + j] += xi * (r[j] - mu[j]) }
            }
        }
        for i in 0..<d { for j in i..<d { cov[i * d + j] /= n; cov[j * d + i] = cov[i * d + j] } }
        let (vals, vecs) = SymmetricEigen.decompose(cov, dimension: d)
        let total = max(vals.reduce(0) { $0 + max($1, 0) }, 1e-300)
        var k = 0, acc = 0.0
        while k < d - 1 && acc / total < varianceExplained { acc += max(vals[k], 0); k += 1 }
        k = max(k, 1)
        // Floor tiny eigenvalues so T^2 stays finite for degenerate (e.g. constant) inputs.
        let floor = max(total * 1e-6, 1e-12)
        var load = [Double](repeating: 0, count: d * k)
        for i in 0..<d { for j in 0..<k { load[i * k + j] = vecs[i * d + j] } }
        // The standardized inputs may have nonzero mean after smoothing; fold it into `mean`.
        var adjMean = mean
        for i in 0..<d { adjMean[i] = mean[i] + mu[i] * scale[i] }
        return PCAModel(dimension: d, components: k, mean: adjMean, scale: scale, loadings: load,
                        eigenvalues: (0..<k).map { max(vals[$0], floor) })
    }

    /// T^2 and Q of a standardized vector `z` (already centred with this model's mean).
    @inline(__always)
    public func statistics(centred z: [Double]) -> (t2: Double, q: Double) {
        let d = dimension, k = components
        var t2 = 0.0
        var recon = [Double](repeating: 0, count: d)
        for j in 0..<k {
            var t = 0.0
            for i in 0..<d { t += z[i] * loadings[i * k + j] }
            t2 += t * t / eigenvalues[j]
            for i in 0..<d { recon[i] += t * loadings[i * k + j] }
        }
        var q = 0.0
        for i in 0..<d { let e = z[i] - recon[i]; q += e * e }
        return (t2, q)
    }
}

/// Output of the PCA monitor for one aligned vector.
public struct PCAOutput: Codable, Sendable, Equatable {
    public var fitted = false
    public var t2 = 0.0
    public var q = 0.0
    public var t2Limit = 0.0
    public var qLimit = 0.0
    /// Smoothed max(T^2/limit, Q/limit).
    public var ratio = 0.0
    /// Sensor with the largest residual contribution (for evidence).
    public var topSensors: [String] = []
    /// The monitor is deciding whether it sees an operating-point change, or following one:
    /// `ratio` is held below the alert limit.
    public var operatingChange = false
    /// The machine vector is moving like an operating-point change right now (several sensors,
    /// fast), whether or not the monitor has left its band.
    public var moving = false
    /// The monitor is following an operating-point change it recognised.
    public var following = false
    /// Several sensors are moving together at least half as fast as a change: the start of a
    /// ramp, or a slow one. Trend projections must persist to count meanwhile.
    public var broadMove = false
    public init() {}
}

/// Where a monitor is in telling operating-point changes from anomalies.
public enum OperatingChangePhase: Codable, Sendable, Equatable {
    /// In band, or out of band with change recognition off.
    case normal
    /// Out of band since `since` (ms); the score is held until the decision.
    case deciding(since: Int64)
    /// Following an operating-point change that began at `since`; `settledSince` is when the
    /// monitor last came back in band.
    case following(since: Int64, settledSince: Int64?)
    /// Out of band and not a change: scored as usual until back in band.
    case anomaly
}

/// Streaming PCA monitor: collects warm-up vectors, fits, then scores.
public struct PCAMonitor: Codable, Sendable {
    public let sensors: [String]
    public let params: MultivariateParameters
    public let warmupCount: Int
    private var warmupRows: [[Double]] = []
    private var smoothed: [Double]
    private var model: PCAModel? = nil
    private var t2Limit = 1.0
    private var qLimit = 1.0
    // Limits for one unsmoothed vector, and the gate that keeps single-vector glitches out.
    private var rawT2Limit = 1.0
    private var rawQLimit = 1.0
    private var glitches: GlitchGate
    private var heldVector: [Double]? = nil
    private var heldTs: Int64 = 0
    private var lastOutput = PCAOutput()
    private var smoothRatio = 0.0
    private var settling: ExcursionSettling
    /// The smoothed ratio relative to a settled excursion's offset (what is reported and judged).
    private var ratio: Double { settling.relative(smoothRatio) }
    // Raw warm-up statistics for standardization.
    private var scale: [Double] = []
    private var mean: [Double] = []
    // Mean of the smoothed standardized warm-up rows (what the PCA centres on).
    private var offset: [Double] = []
    // Operating-change recognition: a slow EWMA of x/scale, and its snapshots over the lookback.
    public private(set) var changePhase = OperatingChangePhase.normal
    private var slowView: [Double] = []
    private var snapshots: [[Double]] = []
    private var snapshotTimes: [Int64] = []
    /// Operating-point changes followed so far (for evidence and tests).
    public private(set) var operatingChanges = 0
    private var lastFollowingTs: Int64? = nil

    public init(sensors: [String], params: MultivariateParameters, warmupCount: Int) {
        self.sensors = sensors
        self.params = params
        self.warmupCount = max(warmupCount, sensors.count + 2)
        smoothed = [Double](repeating: 0, count: sensors.count)
        settling = ExcursionSettling(fraction: params.excursionSettleFraction, holdMs: params.excursionSettleMs,
                                       holdReadings: params.excursionSettleReadings, maxAgeMs: params.excursionSettleMaxAgeMs)
        glitches = GlitchGate(isolation: params.glitchIsolation)
    }

    /// Glitches kept out of the monitor so far.
    public var droppedGlitches: Int { glitches.dropped }

    public var isFitted: Bool { model != nil }

    /// Feed one aligned vector in `sensors` order, observed at `ts` (epoch ms).
    public mutating func observe(_ x: [Double], ts: Int64 = 0) -> PCAOutput {
        guard let m = model else {
            warmupRows.append(x)
            if warmupRows.count >= warmupCount { fit() }
            return PCAOutput()
        }
        switch glitches.step(outOfLimits: isOutOfLimits(x, model: m)) {
        case .feed:
            break
        case .hold:
            heldVector = x
            heldTs = ts
            return lastOutput
        case .feedHeldThenThis:
            if let h = heldVector { _ = score(h, ts: heldTs, model: m) }
            heldVector = nil
        case .dropHeldThenFeed:
            heldVector = nil
        }
        lastOutput = score(x, ts: ts, model: m)
        return lastOutput
    }

    /// Whether one vector, unsmoothed, is beyond the raw limits.
    private func isOutOfLimits(_ x: [Double], model m: PCAModel) -> Bool {
        let d = sensors.count
        var z = [Double](repeating: 0, count: d)
        for i in 0..<d { z[i] = (x[i] - mean[i]) / scale[i] - offset[i] }
        let (t2, q) = m.statistics(centred: z)
        return limitRatio(t2: t2, q: q, t2Limit: rawT2Limit, qLimit: rawQLimit) >= 1
    }

    private mutating func score(_ x: [Double], ts: Int64, model m: PCAModel) -> PCAOutput {
        var out = PCAOutput()
        let d = sensors.count
        let recognise = params.operatingChangeRate > 0
        if recognise { remember(x, ts: ts) }
        let move = recognise ? recentMove(ts: ts) : (rate: 0.0, dominance: 1.0)
        let a = params.inputSmoothingAlpha
        var z = [Double](repeating: 0, count: d)
        var trackAlpha = 0.0
        if case .following = changePhase {
            trackAlpha = params.operatingChangeAlpha
        } else if params.driftAlpha > 0 && ratio < params.driftFreezeRatio {
            // A broad move (several sensors) too slow to count as a change, such as an hour-long
            // load ramp, is followed faster than a drift of one sensor, which is how wear looks.
            let broad = recognise && params.broadDriftAlpha > 0 && isBroad(move, atLeast: 0)
            trackAlpha = broad ? max(params.broadDriftAlpha, params.driftAlpha) : params.driftAlpha
        }
        for i in 0..<d {
            let s = (x[i] - mean[i]) / scale[i]
            if trackAlpha > 0 { mean[i] += trackAlpha * (x[i] - mean[i]) }
            smoothed[i] += a * (s - smoothed[i])
            z[i] = smoothed[i] - offset[i]
        }
        let (t2, q) = m.statistics(centred: z)
        let r = limitRatio(t2: t2, q: q, t2Limit: t2Limit, qLimit: qLimit)
        smoothRatio += params.scoreSmoothingAlpha * (r - smoothRatio)
        settling.step(raw: smoothRatio, ts: ts)
        if recognise { advanceChangePhase(ts: ts, move: move) }
        out.fitted = true
        out.t2 = t2
        out.q = q
        out.t2Limit = t2Limit
        out.qLimit = qLimit
        if recognise {
            // A clearer bar than for following: a slow wear trend on two coupled sensors
            // (friction heats the motor) can reach min-rate, and the trend model must keep it.
            out.moving = isBroad(move, atLeast: 1.5)
            out.broadMove = isBroad(move, atLeast: 0.5)
        }
        if case .following = changePhase { out.following = true }
        switch changePhase {
        case .deciding, .following:
            out.operatingChange = true
            out.ratio = min(ratio, params.driftFreezeRatio)
        case .normal, .anomaly:
            out.ratio = ratio
        }
        // Rank sensors by |z|: which sensors moved away from the healthy operating point.
        let ranked = (0..<d).sorted { abs(z[$0]) > abs(z[$1]) }
        out.topSensors = ranked.prefix(3).filter { abs(z[$0]) > 1 }.map { sensors[$0] }
        if out.topSensors.isEmpty, let f = ranked.first { out.topSensors = [sensors[f]] }
        return out
    }

    // MARK: - Operating-point changes

    /// Updates the slow view of the vector and its snapshots (one per sixth of the lookback).
    private mutating func remember(_ x: [Double], ts: Int64) {
        let d = sensors.count
        if slowView.count != d {
            slowView = (0..<d).map { x[$0] / scale[$0] }
        } else {
            // ~50 steps of memory: quiet enough to measure a move of half a sigma per minute.
            for i in 0..<d { slowView[i] += 0.02 * (x[i] / scale[i] - slowView[i]) }
        }
        let lookback = params.operatingChangeLookbackMs
        if snapshotTimes.last.map({ ts - $0 >= lookback / 6 }) ?? true {
            snapshots.append(slowView)
            snapshotTimes.append(ts)
            while let first = snapshotTimes.first, ts - first > lookback {
                snapshots.removeFirst()
                snapshotTimes.removeFirst()
            }
        }
    }

    /// How fast (sigma per minute) and how broadly the vector moved over the lookback: the
    /// fastest displacement over windows of at least half the lookback (shorter ones are noise).
    func recentMove(ts: Int64) -> (rate: Double, dominance: Double) {
        var best = (rate: 0.0, dominance: 1.0)
        let minAge = max(params.operatingChangeLookbackMs / 2, 1)
        for (snap, t) in zip(snapshots, snapshotTimes) where ts - t >= minAge {
            var sum = 0.0, top = 0.0
            for i in 0..<slowView.count {
                let dd = (slowView[i] - snap[i]) * (slowView[i] - snap[i])
                sum += dd
                top = max(top, dd)
            }
            let rate = sum.squareRoot() / (Double(ts - t) / 60_000)
            if rate > best.rate { best = (rate, sum > 0 ? top / sum : 1) }
        }
        return best
    }

    /// Whether `move` involves several sensors (no one above `operatingChangeDominance`) and
    /// is at least `factor` times `operatingChangeRate` fast.
    private func isBroad(_ move: (rate: Double, dominance: Double), atLeast factor: Double) -> Bool {
        move.rate >= factor * params.operatingChangeRate && move.dominance <= params.operatingChangeDominance
    }

    private mutating func advanceChangePhase(ts: Int64, move: (rate: Double, dominance: Double)) {
        let inBand = ratio < params.driftFreezeRatio
        switch changePhase {
        case .normal:
            if !inBand { changePhase = .deciding(since: ts) }
        case .deciding(let since):
            if isBroad(move, atLeast: 1) {
                changePhase = .following(since: ts, settledSince: nil)
                // A ramp can leave and re-enter the band several times: one change, one count.
                if lastFollowingTs.map({ ts - $0 > params.operatingChangeMaxMs }) ?? true { operatingChanges += 1 }
            } else if inBand {
                changePhase = .normal
            } else if ts - since >= params.operatingChangeDecideMs {
                changePhase = .anomaly
            }
        case .following(let since, let settled):
            lastFollowingTs = ts
            if inBand {
                let s = settled ?? ts
                changePhase = ts - s >= params.operatingChangeSettleMs ? .normal : .following(since: since, settledSince: s)
            } else if ts - since >= params.operatingChangeMaxMs {
                // Still out of band after a change's worth of time: not a change after all.
                changePhase = .anomaly
            } else {
                changePhase = .following(since: since, settledSince: nil)
            }
        case .anomaly:
            if inBand { changePhase = .normal }
        }
    }

    private mutating func fit() {
        let d = sensors.count
        var mu = [Double](repeating: 0, count: d), sd = [Double](repeating: 0, count: d)
        for i in 0..<d {
            let (m, s) = Stats.meanStd(warmupRows.map { $0[i] })
            mu[i] = m
            // A sensor constant in warm-up still needs a scale; keep it small but finite.
            sd[i] = max(s, 1e-3 * max(abs(m), 1e-3))
        }
        mean = mu
        scale = sd
        // Smooth the warm-up exactly as live data will be smoothed, so limits match.
        let a = params.inputSmoothingAlpha
        var sm = [Double](repeating: 0, count: d)
        var rows: [[Double]] = []
        rows.reserveCapacity(warmupRows.count)
        for (n, r) in warmupRows.enumerated() {
            var z = [Double](repeating: 0, count: d)
            for i in 0..<d {
                let s = (r[i] - mu[i]) / sd[i]
                sm[i] = n == 0 ? s : sm[i] + a * (s - sm[i])
                z[i] = sm[i]
            }
            rows.append(z)
        }
        smoothed = sm
        let fitted = PCAModel.fit(standardized: rows, mean: mu, scale: sd, varianceExplained: params.varianceExplained)
        // Skip the first rows: the EWMA is still settling there.
        let skip = min(Int(3 / max(a, 1e-3)), rows.count / 4)
        let centredSmoothed = rows.dropFirst(skip).lazy.map { (r: [Double]) -> [Double] in
            var z = r
            for i in 0..<d { z[i] = (r[i] * sd[i] + mu[i] - fitted.mean[i]) / sd[i] }
            return z
        }
        (t2Limit, qLimit) = limits(fitted, centredSmoothed)
        // The same limits for single unsmoothed vectors, which are noisier.
        let centredRaw = warmupRows.lazy.map { (r: [Double]) -> [Double] in
            var z = r
            for i in 0..<d { z[i] = (r[i] - fitted.mean[i]) / sd[i] }
            return z
        }
        (rawT2Limit, rawQLimit) = limits(fitted, centredRaw)
        model = fitted
        offset = (0..<d).map { (fitted.mean[$0] - mu[$0]) / sd[$0] }
        warmupRows = []
    }

    /// T² and Q limits over centred warm-up vectors: their `limitQuantile`, times `limitMargin`.
    private func limits(_ m: PCAModel, _ centred: some Sequence<[Double]>) -> (t2: Double, q: Double) {
        var t2s: [Double] = [], qs: [Double] = []
        for z in centred {
            let (t2, q) = m.statistics(centred: z)
            t2s.append(t2)
            qs.append(q)
        }
        return (max(Stats.quantile(t2s, params.limitQuantile) * params.limitMargin, 1e-9),
                max(Stats.quantile(qs, params.limitQuantile) * params.limitMargin, 1e-9))
    }

    /// The weighted ratio of T² and Q to their limits (1 = at a limit).
    private func limitRatio(t2: Double, q: Double, t2Limit: Double, qLimit: Double) -> Double {
        max(params.t2Weight * t2 / t2Limit, params.qWeight * q / qLimit)
    }
}
