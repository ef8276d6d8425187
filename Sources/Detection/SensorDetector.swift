// The univariate chain for one (machine, sensor): sensor health, static limits, robust z,
// EWMA z, CUSUM, Page-Hinkley, windowed Gaussian tail and trend/time-to-threshold.
// O(1) work per reading (the warm-up median is computed once), constant memory.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sensor-health findings for one reading. These raise `kind: sensor` alerts, never machine alerts.
public struct SensorHealth: Sendable, Equatable, Codable {
    /// Same value for an implausibly long run.
    public var stuck = false
    /// The gap before this reading was a dropout.
    public var dropout = false
    /// The value is outside the physical range (value discarded by the models).
    public var spike = false

    public init(stuck: Bool = false, dropout: Bool = false, spike: Bool = false) {
        self.stuck = stuck
        self.dropout = dropout
        self.spike = spike
    }

    public var isHealthy: Bool { !(stuck || dropout || spike) }
    /// Model name for the alert: the most specific finding.
    public var model: String { spike ? "spike" : (stuck ? "stuck" : (dropout ? "dropout" : "none")) }
}

/// Result of one reading through the univariate chain. Ratios are value / control limit
/// (1 = at the limit, 0 during warm-up).
public struct SensorOutput: Sendable, Equatable {
    public var warmedUp = false
    /// The value the models saw (after the impulse filter); nil for a rejected reading.
    public var modelValue: Double? = nil
    public var health = SensorHealth()
    public var robustZ = 0.0
    public var ewmaZ = 0.0
    public var robustZRatio = 0.0
    public var ewmaZRatio = 0.0
    public var cusumRatio = 0.0
    public var pageHinkleyRatio = 0.0
    public var gaussianTailRatio = 0.0
    public var gaussianTailProbability = 1.0
    /// The windowed Gaussian's means and spread: the last `gaussianShortWindow` readings' mean, and
    /// the mean and standard deviation (at least the scale floor) of the `gaussianWindow` before.
    public var shortMean = 0.0
    public var longMean = 0.0
    public var longSD = 0.0
    public var trendRatio = 0.0
    public var likelihoodRatio = 0.0
    public var seasonalRatio = 0.0
    public var noveltyRatio = 0.0
    public var limitRatio = 0.0
    public var limitSeverity: Severity? = nil
    /// Holt slope, units per second.
    public var slopePerSecond = 0.0
    /// Estimated seconds until the failure threshold, nil without threshold or trend toward it.
    public var timeToThresholdSeconds: Double? = nil

    public init() {}

    /// Ratio of one model (0 for models that are not univariate).
    public func ratio(_ m: ModelKind) -> Double {
        switch m {
        case .robustZ: return robustZRatio
        case .ewmaZ: return ewmaZRatio
        case .cusum: return cusumRatio
        case .pageHinkley: return pageHinkleyRatio
        case .gaussianTail: return gaussianTailRatio
        case .trend: return trendRatio
        case .limit: return limitRatio
        case .likelihood: return likelihoodRatio
        case .seasonal: return seasonalRatio
        case .novelty: return noveltyRatio
        case .pca: return 0
        }
    }
}

/// Streaming state of one sensor. Codable so the service can checkpoint it.
public struct SensorDetector: Codable, Sendable {
    public let spec: SensorSpec
    public let params: UnivariateParameters
    public let warmupCount: Int

    public private(set) var count = 0
    private var warmup: [Double]? = []
    // Fixed robust baseline from warm-up.
    private var median = 0.0
    private var robustSigma = 1.0
    private var sigmaFloor = 1e-9
    // Adaptive baseline.
    private var ewmaMean = 0.0
    private var ewmaVar = 0.0
    // CUSUM.
    private var cusumPos = 0.0
    private var cusumNeg = 0.0
    // Page-Hinkley (forgetting variant, reference = running mean of the residual).
    private var phMean = 0.0
    private var phUp = 0.0
    private var phUpMin = 0.0
    private var phDown = 0.0
    private var phDownMax = 0.0
    // Windowed Gaussian.
    private var longWindow: RollingWindow
    private var shortWindow: RollingWindow
    // Anomaly likelihood over the surprise |EWMA z|.
    private var surpriseLong: RollingWindow
    private var surpriseShort: RollingWindow
    // The same histories' upper tails, fitted (peaks over threshold) for the calibrated test.
    private var surpriseTail: ScoreTail
    // Shapes of the last few readings seen so far, and whether the current one is new.
    private var novelty: NoveltyMemory
    private var residualTail: ScoreTail
    // Seasonal profiles (time-of-day and time-of-week buckets) and the likelihood of the
    // residual that neither explains.
    private var daily: SeasonalProfile
    private var weekly: SeasonalProfile
    private var residualLong: RollingWindow
    private var residualShort: RollingWindow
    // Holt trend (per second).
    private var level = 0.0
    private var slope = 0.0
    // Health.
    private var lastValue = Double.nan
    /// The last raw values, for the impulse filter's median of five.
    private var recentRaw: [Double] = []
    private var run = 0
    private var warmupMaxRun = 0
    private var lastTs: Int64? = nil
    /// The first reading's time: novelty's learning span is measured from it.
    private var firstTs: Int64? = nil
    private var meanIntervalMs = 0.0

    public init(spec: SensorSpec, params: UnivariateParameters = UnivariateParameters(), warmupCount: Int = 400) {
        self.spec = spec
        self.params = params
        self.warmupCount = Swift.max(2, warmupCount)
        longWindow = RollingWindow(capacity: params.gaussianWindow)
        shortWindow = RollingWindow(capacity: params.gaussianShortWindow)
        surpriseLong = RollingWindow(capacity: params.likelihoodWindow)
        novelty = NoveltyMemory(width: params.noveltyWidth, capacity: params.noveltyMemory, vigilance: params.noveltyVigilance,
                                restReadings: Int(params.noveltyRestFraction * Double(Swift.max(2, warmupCount))),
                                holdReadings: params.likelihoodShortWindow, minLevels: params.noveltyMinLevels)
        surpriseShort = RollingWindow(capacity: params.likelihoodShortWindow)
        daily = SeasonalProfile(periodMs: params.seasonalPeriodMs, buckets: params.seasonalBuckets)
        weekly = SeasonalProfile(periodMs: params.weeklyPeriodMs, buckets: params.weeklyBuckets)
        residualLong = RollingWindow(capacity: params.likelihoodWindow)
        residualShort = RollingWindow(capacity: params.likelihoodShortWindow)
        surpriseTail = ScoreTail(capacity: params.likelihoodWindow)
        residualTail = ScoreTail(capacity: params.likelihoodWindow)
        warmup?.reserveCapacity(self.warmupCount)
    }

    public var isWarmedUp: Bool { warmup == nil }

    /// Feed one reading. `ts` is epoch ms (reading time).
    /// Forgets the trend's slope: a slope measured across an operating-point change is the
    /// change, not wear.
    public mutating func resetTrendSlope() { slope = 0 }

    public mutating func observe(ts: Int64, value: Double) -> SensorOutput {
        var out = SensorOutput()
        let p = params

        // Dropout: the gap before this reading, judged against the typical interval.
        if let last = lastTs {
            let gap = Double(ts - last)
            if meanIntervalMs > 0, ts - last > p.dropoutMinMs, gap > p.dropoutIntervalFactor * meanIntervalMs {
                out.health.dropout = true
            } else if gap > 0 {
                meanIntervalMs = meanIntervalMs == 0 ? gap : meanIntervalMs + 0.05 * (gap - meanIntervalMs)
            }
        }
        lastTs = ts
        if firstTs == nil { firstTs = ts }

        // Physically impossible values are sensor faults: report and keep them out of the models.
        if !value.isFinite || (spec.physicalMin.map { value < $0 } ?? false) || (spec.physicalMax.map { value > $0 } ?? false) {
            out.health.spike = true
            out.warmedUp = isWarmedUp
            return out
        }

        // Stuck: identical values for longer than ever seen in warm-up (quantised sensors repeat).
        if value == lastValue { run += 1 } else { run = 1 }
        lastValue = value
        count += 1

        // Impulse filter: the models see the median of the last five readings, so glitches of
        // up to two readings in a row never reach them, while a real step arrives two readings late.
        var value = value
        // Shifted in place once full: `removeFirst` moved the buffer (memmove) per reading.
        if recentRaw.count < 5 { recentRaw.append(value) } else {
            for i in 1..<5 { recentRaw[i - 1] = recentRaw[i] }
            recentRaw[4] = value
        }
        if p.impulseFilter, recentRaw.count == 5 { value = Self.medianOfFive(recentRaw) }
        out.modelValue = value

        // Static limits apply from the first reading; they need no baseline.
        for lim in spec.limits {
            var excess = 0.0
            if let lo = lim.min, value < lo { excess = lo - value }
            if let hi = lim.max, value > hi { excess = value - hi }
            if excess > 0 {
                let sev = lim.severity
                if out.limitSeverity.map({ sev > $0 }) ?? true { out.limitSeverity = sev }
                out.limitRatio = Swift.max(out.limitRatio, sev == .critical ? 2.5 : 1.2)
            }
        }

        // The static limits and the PCA monitor (`modelValue`, with its own glitch gate) judge the
        // raw value; the statistical models judge a fast stream's lone outlier as a transient.
        if !p.impulseFilter, warmup == nil, recentRaw.count == 5, Self.isFastStream(p, meanIntervalMs: meanIntervalMs) {
            let limit = p.residualClamp * Swift.max(ewmaVar.squareRoot(), sigmaFloor)
            if Self.isBeyondMedianOfFive(recentRaw, limit: limit) { value = Self.medianOfFive(recentRaw) }
        }

        updateTrend(ts: ts, value: value, out: &out)
        let dailyResidual = daily.update(ts: ts, value: value, alpha: p.seasonalAlpha)
        let weeklyResidual = weekly.update(ts: ts, value: value, alpha: p.seasonalAlpha)

        if warmup != nil {
            // The time-of-period residuals are learned during the warm-up too, so the seasonal
            // test is live when it ends.
            if p.learnDuringWarmup, let res = dailyResidual {
                let z = Swift.min(daily.standardize(res, clamp: p.residualClamp, alpha: p.ewmaAlpha, floor: sigmaFloor), 20)
                Self.pushHistory(z, short: &residualShort, long: &residualLong, tail: &residualTail, calibratedTail: p.calibratedTail)
            }
            // Appended in place: a copy taken out of the optional and put back copied the whole
            // buffer on every warm-up reading.
            warmup!.append(value)
            warmupMaxRun = Swift.max(warmupMaxRun, run)
            longWindow.push(value)
            shortWindow.push(value)
            if warmup!.count >= warmupCount {
                finishWarmup(warmup!)
                warmup = nil
            }
            return out
        }
        out.warmedUp = true

        let stuckRun = Swift.max(Double(p.stuckMinRun), p.stuckWarmupFactor * Double(warmupMaxRun))
        out.health.stuck = Double(run) >= stuckRun

        // Robust z against the fixed warm-up baseline.
        let rz = (value - median) / robustSigma
        out.robustZ = rz
        out.robustZRatio = Swift.abs(rz) / p.robustZLimit

        // EWMA z against the adaptive baseline; clamped residual updates it (Huber-like).
        let sd = Swift.max(ewmaVar.squareRoot(), sigmaFloor)
        let ez = (value - ewmaMean) / sd
        out.ewmaZ = ez
        out.ewmaZRatio = Swift.abs(ez) / p.ewmaZLimit
        let c = p.residualClamp
        let cz = Swift.min(Swift.max(ez, -c), c)
        let r = cz * sd
        ewmaMean += p.ewmaAlpha * r
        ewmaVar = (1 - p.ewmaAlpha) * (ewmaVar + p.ewmaAlpha * r * r)

        // Two-sided CUSUM on the clamped standardized residual.
        cusumPos = Swift.max(0, cusumPos + cz - p.cusumK)
        cusumNeg = Swift.max(0, cusumNeg - cz - p.cusumK)
        out.cusumRatio = Swift.max(cusumPos, cusumNeg) / p.cusumH

        // Page-Hinkley: cumulative deviation from the residual's own running mean.
        phMean += 0.01 * (cz - phMean)
        let f = p.phForgetting
        phUp = f * phUp + (cz - phMean - p.phDelta)
        phUpMin = Swift.min(phUpMin * f, phUp)
        phDown = f * phDown + (cz - phMean + p.phDelta)
        phDownMax = Swift.max(phDownMax * f, phDown)
        out.pageHinkleyRatio = Swift.max(phUp - phUpMin, phDownMax - phDown) / p.phLambda

        // Windowed Gaussian: is the short-term mean in the tail of the long window?
        shortWindow.push(value)
        let lsd = Swift.max(longWindow.variance.squareRoot(), sigmaFloor)
        let gz = (shortWindow.mean - longWindow.mean) / lsd
        let tail = Swift.max(Stats.twoSidedTail(gz), 1e-300)
        out.gaussianTailProbability = tail
        (out.shortMean, out.longMean, out.longSD) = (shortWindow.mean, longWindow.mean, lsd)
        out.gaussianTailRatio = log(tail) / log(p.gaussianTailLimit)
        longWindow.push(value)

        // Novelty learns over the warm-up's span of stream time at the reference interval, not
        // over its readings alone: 400 readings of a 1 s stream are 7 minutes, too few to show
        // its range, and heavy-tailed noise would then set "novel" records all day.
        if novelty.learnsOn, ts - (firstTs ?? ts) < Int64(warmupCount - 1) * p.referenceIntervalMs {
            novelty.learn(value)
        } else {
            out.noveltyRatio = novelty.observe(value)
        }

        // Surprise against the seasonal profiles: the daily one, and the weekly one once this
        // time of week has history. A reading is only as surprising as the best of them says,
        // so a weekend that differs from weekdays is explained by the weekly profile.
        var seasonalZ: Double? = nil
        var seasonalScale = Double.infinity
        if let res = dailyResidual {
            seasonalScale = daily.scale
            seasonalZ = daily.standardize(res, clamp: c, alpha: p.ewmaAlpha, floor: sigmaFloor)
        }
        if let res = weeklyResidual {
            seasonalScale = Swift.min(seasonalScale, weekly.scale)
            let wz = weekly.standardize(res, clamp: c, alpha: p.ewmaAlpha, floor: sigmaFloor)
            seasonalZ = Swift.min(seasonalZ ?? wz, wz)
        }
        // The signal is seasonal when a profile predicts it better than the adaptive level does.
        let seasonalSignal = seasonalScale < sd

        // Anomaly likelihood (as in Numenta's post-processing): is the recent average surprise
        // far in the upper tail of the distribution of averaged surprise over the long window?
        // The history holds the short-window averages, so like is compared with like (a mean of
        // several readings against the spread of such means, not of single readings).
        // The surprise is the smaller of the level residual and the seasonal one: a regular daily
        // swing is a large level residual but is predicted by the profile, so it is no surprise.
        let logLimit = Self.logTailLimit(p, meanIntervalMs: meanIntervalMs)
        let surprise = Swift.min(Swift.abs(ez), seasonalSignal ? (seasonalZ ?? .infinity) : .infinity, 20)
        surpriseShort.push(surprise)
        if let r = Self.tailRatio(short: surpriseShort, long: surpriseLong, tail: surpriseTail, params: p, warmupCount: warmupCount, logLimit: logLimit) { out.likelihoodRatio = r }
        surpriseLong.push(surpriseShort.mean)
        if p.calibratedTail { surpriseTail.push(surpriseShort.mean) }

        // Same test on the residual from the time-of-period profile: a value that is normal
        // for the level but wrong for the time of day (a missing daily peak) is surprising here.
        // As above, the history holds short-window averages.
        if let z = seasonalZ {
            let sz = Swift.min(z, 20)
            residualShort.push(sz)
            if let r = Self.tailRatio(short: residualShort, long: residualLong, tail: residualTail, params: p, warmupCount: warmupCount, logLimit: logLimit) { out.seasonalRatio = r }
            residualLong.push(residualShort.mean)
            if p.calibratedTail { residualTail.push(residualShort.mean) }
        }

        return out
    }

    private mutating func updateTrend(ts: Int64, value: Double, out: inout SensorOutput) {
        let p = params
        if count == 1 {
            level = value
            slope = 0
        } else {
            let dt = Swift.max(Double(ts - (lastTrendTs ?? ts)) / 1000.0, 0)
            let predicted = level + slope * dt
            let newLevel = predicted + p.trendLevelAlpha * (value - predicted)
            if dt > 0 {
                slope += p.trendSlopeAlpha * ((newLevel - level) / dt - slope)
            }
            level = newLevel
        }
        lastTrendTs = ts
        out.slopePerSecond = slope
        // Only after the warm-up: a slope fitted to the first minutes is mostly noise.
        guard let thr = spec.failureThreshold, count > warmupCount else { return }
        var ttt: Double? = nil
        if (thr >= level && value >= thr) || (thr < level && value <= thr) {
            ttt = 0
        } else if thr > level, slope > 0 {
            ttt = (thr - level) / slope
        } else if thr < level, slope < 0 {
            ttt = (thr - level) / slope
        }
        out.timeToThresholdSeconds = ttt
        if let t = ttt { out.trendRatio = p.rulHorizonSeconds / Swift.max(t, 1) }
    }
    private var lastTrendTs: Int64? = nil

    /// Anomaly-likelihood ratio: how far the short-window mean of surprise sits in the upper tail
    /// of the long window's history of such means (1 = at the tail limit, whose log is
    /// `logLimit`: see `logTailLimit`). Nil until the
    /// history is long enough, or when the recent mean is not above the historical one.
    /// Static, with the parameters passed in: a method of `self` given `self`'s windows copied
    /// the whole detector per reading (the optimiser cannot always prove the borrow safe).
    static func tailRatio(short: RollingWindow, long: RollingWindow, tail: ScoreTail, params p: UnivariateParameters, warmupCount: Int,
                          logLimit: Double) -> Double? {
        let needed = Swift.min(p.likelihoodMinHistory, long.capacity, p.learnDuringWarmup ? warmupCount : Int.max)
        guard long.count >= needed else { return nil }
        if p.calibratedTail {
            guard let pt = tail.tailProbability(short.mean), pt < 1 else { return nil }
            return log(pt) / logLimit
        }
        let ssd = Swift.max(long.variance.squareRoot(), p.likelihoodSpreadFloor)
        let lz = (short.mean - long.mean) / ssd
        guard lz > 0 else { return nil }
        let lt = Swift.max(0.5 * erfc(lz / 2.0.squareRoot()), 1e-300)
        return log(lt) / logLimit
    }

    /// The log of the likelihood tests' tail limit per reading. `likelihoodTailLimit` is stated
    /// for a stream read every `referenceIntervalMs`; one read more often gets a
    /// proportionally smaller limit, so it raises no more false alerts per day (a 1 s stream:
    /// 1/300 of it). A slower stream keeps the limit. Before the interval is known, the limit.
    static func logTailLimit(_ p: UnivariateParameters, meanIntervalMs: Double) -> Double {
        let base = log(p.likelihoodTailLimit)
        guard p.referenceIntervalMs > 0, meanIntervalMs > 0, meanIntervalMs < Double(p.referenceIntervalMs) else { return base }
        return base + log(meanIntervalMs / Double(p.referenceIntervalMs))
    }

    /// True when five readings of the stream span at most the reference interval, so one or two
    /// of them are a transient shorter than the time scale the models' limits were chosen on
    /// (`impulseFilterFastStreams`).
    static func isFastStream(_ p: UnivariateParameters, meanIntervalMs: Double) -> Bool {
        p.impulseFilterFastStreams && p.referenceIntervalMs > 0 && meanIntervalMs > 0
            && 5 * meanIntervalMs <= Double(p.referenceIntervalMs)
    }

    /// True when the newest of five readings (`w[4]`) is further than `limit` from their median:
    /// an outlier on its own (the readings around it do not follow it), which the models then see
    /// as the median. A step moves the median with it by its third reading, so it passes two
    /// readings late; ordinary readings pass unchanged, so the noise the models learn keeps its
    /// spread and its independence. Without sorting: the median is below `v - limit` exactly when
    /// three of the five are, and `v` is not, so three of the other four must be (and above alike).
    @inline(__always)
    static func isBeyondMedianOfFive(_ w: [Double], limit: Double) -> Bool {
        let v = w[4], lo = v - limit, hi = v + limit
        var below = 0, above = 0
        for i in 0..<4 {
            if w[i] < lo { below += 1 } else if w[i] > hi { above += 1 }
        }
        return below >= 3 || above >= 3
    }

    /// Pushes one surprise value into a short window, and its short-window mean into the
    /// long history (and the fitted tail). Static: a method of `self` given `self`'s windows
    /// inout made Swift copy the whole detector for each call (every warm-up reading, and each
    /// value of the warm-up's replay).
    private static func pushHistory(_ z: Double, short: inout RollingWindow, long: inout RollingWindow, tail: inout ScoreTail,
                                    calibratedTail: Bool) {
        short.push(z)
        long.push(short.mean)
        if calibratedTail { tail.push(short.mean) }
    }

    /// The middle of five values: the element `sorted()[2]` gives (an insertion sort is stable,
    /// as the standard library's sort is, so even of 0.0 and -0.0 the same one), sorted on the
    /// stack rather than in a new array per reading.
    static func medianOfFive(_ a: [Double]) -> Double {
        var s = (a[0], a[1], a[2], a[3], a[4])
        return withUnsafeMutableBytes(of: &s) { raw in
            let v = raw.bindMemory(to: Double.self)
            for i in 1..<5 {
                let x = v[i]
                var j = i
                while j > 0 && x < v[j - 1] { v[j] = v[j - 1]; j -= 1 }
                v[j] = x
            }
            return v[2]
        }
    }

    /// The resolution of a quantised sensor: the step of the lattice every reading of the warm-up
    /// sits on, when they take at least three of its levels; nil for any other warm-up. Two levels
    /// are a state (off/on, a spike train), whose every change is news, not rounding.
    static func resolution(_ w: [Double]) -> Double? {
        guard w.count >= 3 else { return nil }
        var q = Double.infinity
        for i in 1..<w.count {
            let d = Swift.abs(w[i] - w[i - 1])
            if d > 0 { q = Swift.min(q, d) }
        }
        guard q.isFinite else { return nil }
        var levels = Set<Double>()
        for v in w where levels.count < 3 { levels.insert((v / q).rounded()) }
        guard levels.count >= 3 else { return nil }
        for i in 1..<w.count {
            let k = Swift.abs(w[i] - w[i - 1]) / q
            if Swift.abs(k - k.rounded()) > 0.01 { return nil }
        }
        return q
    }

    private mutating func finishWarmup(_ w: [Double]) {
        median = Stats.median(w)
        let mad = Stats.median(w.map { Swift.abs($0 - median) })
        let (m, s) = Stats.meanStd(w)
        // Quantised or near-constant sensors have MAD 0: fall back to the std, then to a
        // tiny scale relative to the level, so a later change still registers.
        let scaleFloor = Swift.max(1e-6 * Swift.max(Swift.abs(median), 1), 1e-12)
        sigmaFloor = Swift.max(s * 0.1, scaleFloor)
        // A quantised sensor's readings carry its rounding error (uniform over one step, standard
        // deviation q/sqrt(12)) however still the process is: without this floor the adaptive
        // scale of a sensor sitting on one level decays until its next one-step move is a 20-sigma
        // event ("Quantised sensors", docs/detection.md).
        if let q = Self.resolution(w) { sigmaFloor = Swift.max(sigmaFloor, q / 12.0.squareRoot()) }
        robustSigma = mad > 0 ? 1.4826 * mad : Swift.max(s, scaleFloor)
        ewmaMean = m
        ewmaVar = Swift.max(s, sigmaFloor) * Swift.max(s, sigmaFloor)
        novelty.learn(warmup: w)
        guard params.learnDuringWarmup else { return }
        // Replay the warm-up through the adaptive baseline, so the likelihood's history of
        // surprise is there when the warm-up ends (the warm-up is the learning period).
        let c = params.residualClamp
        for v in w {
            let sd = Swift.max(ewmaVar.squareRoot(), sigmaFloor)
            let ez = (v - ewmaMean) / sd
            let cz = Swift.min(Swift.max(ez, -c), c)
            let r = cz * sd
            ewmaMean += params.ewmaAlpha * r
            ewmaVar = (1 - params.ewmaAlpha) * (ewmaVar + params.ewmaAlpha * r * r)
            Self.pushHistory(Swift.min(Swift.abs(ez), 20), short: &surpriseShort, long: &surpriseLong, tail: &surpriseTail,
                             calibratedTail: params.calibratedTail)
        }
        surpriseTail.fit()
        residualTail.fit()
    }
}

/// A time-of-period profile: one EWMA value per bucket of the period, and the EWMA scale of
/// the residuals against it. O(1) per reading, memory O(buckets).
///
/// A bucket's value is learned from earlier periods only: the readings of the current visit to a
/// bucket (one period, one bucket) are pooled, and their mean folds into the bucket when the
/// readings move on. A stream sampled every second puts ~300 readings in each 5-minute bucket;
/// folding each of them in at once made the "profile" a 5-reading moving average within the
/// day, so one heavy-tailed outlier echoed through the next readings' residuals (docs/detection.md,
/// "Heavy tails"). With one reading per bucket and period (NAB's 5-minute series), pooling
/// changes nothing.
struct SeasonalProfile: Codable, Sendable {
    let periodMs: Int64
    private var values: [Double]
    private var seen: [Bool]
    private var residualVar = 0.0
    /// The visit being pooled: its bucket and period, and the sum and count of its readings.
    private var poolBucket = -1
    private var poolPeriod = Int64.min
    private var poolSum = 0.0
    private var poolCount = 0
    // The last bucket found and the reading times it spans: readings come every second or so
    // and buckets last minutes, so most readings skip the two 64-bit divisions. Not
    // checkpointed (recomputed on the first reading after a restore).
    private var cachedBucket = 0
    private var cachedPeriod: Int64 = 0
    private var cachedStart = Int64.max
    private var cachedEnd = Int64.min

    private enum CodingKeys: String, CodingKey { case periodMs, values, seen, residualVar, poolBucket, poolPeriod, poolSum, poolCount }

    init(periodMs: Int64, buckets: Int) {
        self.periodMs = Swift.max(periodMs, 1)
        values = [Double](repeating: 0, count: Swift.max(0, buckets))
        seen = [Bool](repeating: false, count: Swift.max(0, buckets))
    }

    /// Residual against the bucket for `ts` as learned from earlier periods (nil while it has
    /// none, or with no buckets); the value joins the current visit's pool.
    mutating func update(ts: Int64, value: Double, alpha: Double) -> Double? {
        let n = values.count
        guard n > 0 else { return nil }
        let (b, period) = bucket(ts, buckets: n)
        if b != poolBucket || period != poolPeriod {
            foldPool(alpha: alpha)
            (poolBucket, poolPeriod, poolSum, poolCount) = (b, period, 0, 0)
        }
        poolSum += value
        poolCount += 1
        guard seen[b] else { return nil }
        let r = value - values[b]
        if residualVar == 0 { residualVar = r * r }
        return r
    }

    /// Folds the pooled visit's mean into its bucket (the bucket's first visit sets it).
    private mutating func foldPool(alpha: Double) {
        guard poolCount > 0, poolBucket >= 0, poolBucket < values.count else { return }
        let mean = poolSum / Double(poolCount)
        if seen[poolBucket] { values[poolBucket] += alpha * (mean - values[poolBucket]) } else {
            values[poolBucket] = mean
            seen[poolBucket] = true
        }
    }

    /// The bucket of `ts` and the index of its period (floor(ts / period)), taken from the
    /// cache while `ts` stays within the last bucket's span.
    mutating func bucket(_ ts: Int64, buckets n: Int) -> (bucket: Int, period: Int64) {
        if ts >= cachedStart && ts < cachedEnd { return (cachedBucket, cachedPeriod) }
        let (b, phase) = Self.directBucket(ts, buckets: n, period: periodMs)
        let origin = ts - phase
        if let (start, end) = Self.span(bucket: b, buckets: n, period: periodMs, origin: origin) {
            (cachedBucket, cachedPeriod, cachedStart, cachedEnd) = (b, origin / periodMs, start, end)
        }
        return (b, origin / periodMs)
    }

    /// The bucket of `ts` and its phase, computed (what the cache must agree with).
    static func directBucket(_ ts: Int64, buckets n: Int, period: Int64) -> (bucket: Int, phase: Int64) {
        var phase = ts % period
        if phase < 0 { phase += period }
        return (Swift.min(Int(phase * Int64(n) / period), n - 1), phase)
    }

    /// The reading times of bucket `b` in the period starting at `origin`: it holds the phases
    /// p with b · period <= p · n < (b + 1) · period. Nil on overflow (then nothing is cached).
    private static func span(bucket b: Int, buckets n: Int, period: Int64, origin: Int64) -> (Int64, Int64)? {
        let n64 = Int64(n)
        func ceilPhase(_ k: Int64) -> Int64? {  // ceil(k · period / n)
            let (m, o1) = k.multipliedReportingOverflow(by: period)
            let (t, o2) = m.addingReportingOverflow(n64 - 1)
            return o1 || o2 ? nil : t / n64
        }
        guard let lo = ceilPhase(Int64(b)), let hi = b == n - 1 ? period : ceilPhase(Int64(b) + 1) else { return nil }
        let (start, o1) = origin.addingReportingOverflow(lo)
        let (end, o2) = origin.addingReportingOverflow(hi)
        return o1 || o2 ? nil : (start, end)
    }

    /// Current residual scale (standard deviation).
    var scale: Double { residualVar.squareRoot() }

    /// |residual| in units of the residual scale; the clamped residual then updates the scale.
    mutating func standardize(_ r: Double, clamp c: Double, alpha: Double, floor: Double) -> Double {
        let rs = Swift.max(residualVar.squareRoot(), floor)
        let z = Swift.abs(r) / rs
        let cr = Swift.min(Swift.max(r, -c * rs), c * rs)
        residualVar = (1 - alpha) * (residualVar + alpha * cr * cr)
        return z
    }
}
