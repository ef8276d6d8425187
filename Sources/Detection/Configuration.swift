// Configuration of one machine's detector. Every field has a default that works
// without tuning; a `models/` file only needs to name what differs.

/// Alert severity, ordered (info < warning < critical).
public enum Severity: String, Codable, Sendable, Comparable, CaseIterable {
    case info, warning, critical

    private var rank: Int {
        switch self {
        case .info: return 0
        case .warning: return 1
        case .critical: return 2
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// The anomaly models a detector can run. Raw values are the names used in alerts (`model`).
public enum ModelKind: String, Codable, Sendable, CaseIterable, Hashable {
    case robustZ = "robust_z"          // |x - median| / (1.4826 MAD), warm-up baseline
    case ewmaZ = "ewma_z"              // |x - EWMA mean| / EWMA sigma, slowly adapting baseline
    case cusum                         // two-sided CUSUM on the EWMA residual
    case pageHinkley = "page_hinkley"  // two-sided Page-Hinkley on the EWMA residual
    case gaussianTail = "gaussian_tail" // tail probability of a short mean vs a long window
    case trend                         // Holt slope, time to the failure threshold
    case limit                         // static min/max limits from the machine model
    case likelihood = "anomaly_likelihood" // tail probability of recent surprise vs its own history
    case seasonal                      // anomaly likelihood of the residual vs a time-of-period profile
    case novelty                       // the last few readings unlike every shape remembered
    case pca                           // Hotelling T^2 + SPE/Q on a PCA of the warm-up
}

extension ModelKind {
    /// The position in `allCases`, without a search.
    var index: Int {
        switch self {
        case .robustZ: 0
        case .ewmaZ: 1
        case .cusum: 2
        case .pageHinkley: 3
        case .gaussianTail: 4
        case .trend: 5
        case .limit: 6
        case .likelihood: 7
        case .seasonal: 8
        case .novelty: 9
        case .pca: 10
        }
    }

    /// The per-sensor models the fusion weighs, in `allCases` order (all but PCA).
    static let fused: [ModelKind] = allCases.filter { $0 != .pca }
}

/// One static limit band. A reading outside [min, max] breaches with `severity`.
public struct StaticLimit: Codable, Sendable, Equatable {
    /// Lower bound; nil = none.
    public var min: Double?
    /// Upper bound; nil = none.
    public var max: Double?
    /// Severity of a breach.
    public var severity: Severity

    public init(min: Double? = nil, max: Double? = nil, severity: Severity = .warning) {
        self.min = min
        self.max = max
        self.severity = severity
    }
}

/// What the detector knows about one sensor. Sensors that are not declared get
/// `SensorSpec(name:)`, i.e. statistical models only.
public struct SensorSpec: Codable, Sendable, Equatable {
    /// Sensor name as it appears in readings (e.g. `vib_rms`).
    public var name: String
    /// Unit, informational (default nil).
    public var unit: String?
    /// Readings below this are physically impossible: a sensor fault (`spike`), not a machine
    /// symptom. Default nil = unbounded.
    public var physicalMin: Double?
    /// Readings above this are physically impossible (default nil = unbounded).
    public var physicalMax: Double?
    /// Static limit bands with severities (default none).
    public var limits: [StaticLimit]
    /// Value at which the machine is considered failed; enables time-to-threshold
    /// (default nil = no remaining-useful-life estimate).
    public var failureThreshold: Double?

    public init(name: String, unit: String? = nil, physicalMin: Double? = nil, physicalMax: Double? = nil,
                limits: [StaticLimit] = [], failureThreshold: Double? = nil) {
        self.name = name
        self.unit = unit
        self.physicalMin = physicalMin
        self.physicalMax = physicalMax
        self.limits = limits
        self.failureThreshold = failureThreshold
    }
}

/// Parameters of the per-sensor (univariate) chain.
public struct UnivariateParameters: Codable, Sendable, Equatable {
    /// |robust z| that counts as the control limit (ratio 1). Default 8: the warm-up
    /// baseline is fixed, so it must tolerate slow drift.
    public var robustZLimit: Double = 8
    /// EWMA smoothing of the adaptive mean/variance (default 0.02, ~50 readings memory).
    public var ewmaAlpha: Double = 0.02
    /// |EWMA z| that counts as the control limit (default 6).
    public var ewmaZLimit: Double = 6
    /// Residuals are clamped to +-this many sigma before they update the baseline or feed
    /// CUSUM/Page-Hinkley, so one outlier cannot dominate (default 4).
    public var residualClamp: Double = 4
    /// CUSUM reference value k in sigma (default 0.5: tuned for shifts of ~1 sigma).
    public var cusumK: Double = 0.5
    /// CUSUM decision interval h in sigma (default 10).
    public var cusumH: Double = 10
    /// Page-Hinkley tolerance delta in sigma (default 0.5).
    public var phDelta: Double = 0.5
    /// Page-Hinkley threshold lambda in sigma (default 25).
    public var phLambda: Double = 25
    /// Page-Hinkley forgetting factor of its cumulative sums (default 0.999).
    public var phForgetting: Double = 0.999
    /// Long window of the windowed Gaussian model, readings (default 2000).
    public var gaussianWindow: Int = 2000
    /// Short window whose mean is tested against the long window (default 5).
    public var gaussianShortWindow: Int = 5
    /// Tail probability that counts as the control limit (default 1e-6).
    public var gaussianTailLimit: Double = 1e-6
    /// Anomaly likelihood: window of past surprise values (|EWMA z|) it is judged against
    /// (default 1000 readings).
    public var likelihoodWindow: Int = 1000
    /// Anomaly likelihood (and seasonal): averaged surprise values needed in the history before
    /// the test reports anything (default 1000, half the window: the tail of a thin history
    /// is poorly estimated; chosen from a sweep of 100/300/600/800/1000/1200/2000 on NAB).
    public var likelihoodMinHistory: Int = 1000
    /// Anomaly likelihood: recent readings averaged (default 10, as in Numenta's likelihood;
    /// also the better of 3/5/10/20 in a NAB sweep).
    public var likelihoodShortWindow: Int = 10
    /// Anomaly likelihood (and seasonal): tail probability that counts as the control limit
    /// (default 1e-6). Chosen from a sweep on the NAB subset (1e-3...1e-8, with the short
    /// window and minimum history below) that also keeps 100k readings of noise alert-free:
    /// averages of |z| are right-skewed, so the Gaussian tail needs a stricter limit than 1e-5.
    public var likelihoodTailLimit: Double = 1e-6
    /// The reading interval the likelihood tests' limit and the novelty test's warm-up are stated
    /// for (default 5 minutes, NAB's, on which both were chosen). Operators count false alerts
    /// per machine and day, and a stream read every second makes 300 times as many tests a day as
    /// one read every 5 minutes: its `likelihoodTailLimit` per reading is made 300 times smaller,
    /// so its false alerts per day stay those of a 5-minute stream, and novelty goes on learning
    /// until the stream has run for the warm-up's span at this interval. Slower streams keep both;
    /// 0 = per reading, whatever the interval (docs/detection.md, "A false-alert budget per day").
    public var referenceIntervalMs: Int64 = 300_000
    /// Anomaly likelihood (and seasonal): the least spread (standard deviation) the history of
    /// averaged surprise is judged with (default 0.25, in units of surprise). A stream that has
    /// been quieter than white noise (a flat spell, a weekly profile that predicts well) has a
    /// history with almost no spread, and then an ordinary reading is a tail event. White noise's
    /// 10-reading mean of |z| has a spread of 0.19; 0.25 was chosen on NAB from 0.19…0.4
    /// (docs/detection.md, "A floor under the surprise's spread").
    public var likelihoodSpreadFloor: Double = 0.25
    /// Judge the averaged surprise by the fitted tail of its own history (peaks over threshold,
    /// a generalised Pareto tail as in SPOT) instead of a Gaussian tail (default false: on NAB
    /// it cut false positives by half but missed more windows; see docs/detection.md).
    public var calibratedTail: Bool = false
    /// Learn the likelihood's history of surprise during the warm-up (the level residuals
    /// replayed when it ends, the time-of-period residuals as they come), so the tests are live
    /// as soon as the warm-up is over; the history then needs at most `warmupCount` values
    /// (default true).
    public var learnDuringWarmup: Bool = true
    /// Novelty: readings per remembered shape (default 4).
    public var noveltyWidth: Int = 4
    /// Novelty: shapes remembered, least recently matched replaced first (default 200).
    public var noveltyMemory: Int = 200
    /// Novelty: L-infinity distance from every remembered shape, in units of the warm-up's
    /// range (max - min), beyond which the current shape is novel (default 0.5).
    public var noveltyVigilance: Double = 0.5
    /// Novelty: after one is reported, none for this share of the warm-up's length (default 0.2).
    public var noveltyRestFraction: Double = 0.2
    /// Novelty: distinct values the warm-up must show for the test to run (default 20); streams
    /// of a few levels (small counts, states) are left to the likelihood.
    public var noveltyMinLevels: Int = 20
    /// Seasonal profile period, ms (default one day).
    public var seasonalPeriodMs: Int64 = 86_400_000
    /// Buckets per period (default 288: 5-minute buckets over a day).
    public var seasonalBuckets: Int = 288
    /// Weekly profile period, ms (default one week): weekdays and weekends differ in most
    /// human-driven signals. Used once a time of week has history.
    public var weeklyPeriodMs: Int64 = 604_800_000
    /// Buckets of the weekly profile (default 2016: 5-minute buckets; 0 = no weekly profile).
    public var weeklyBuckets: Int = 2016
    /// EWMA rate of each bucket's profile value (default 0.2, ~5 periods of memory).
    public var seasonalAlpha: Double = 0.2
    /// Holt level smoothing for the trend model (default 0.05).
    public var trendLevelAlpha: Double = 0.05
    /// Holt slope smoothing for the trend model (default 0.01).
    public var trendSlopeAlpha: Double = 0.01
    /// While several sensors move together (a possible load ramp, seen by the PCA monitor), the
    /// trend model feeds the machine score only once its projection has been within the
    /// horizon this long, ms (default 0). A load ramp toward a threshold projects a failure for
    /// its first minutes too; wear keeps projecting it.
    public var trendPersistMs: Int64 = 0
    /// Time to threshold (s) at or below which the trend model reaches its limit (default 3600).
    public var rulHorizonSeconds: Double = 3600
    /// Minimum run of identical readings before a sensor counts as stuck (default 60).
    public var stuckMinRun: Int = 60
    /// A stuck run must also exceed this multiple of the longest run seen in warm-up, so that
    /// coarsely quantised sensors are not flagged (default 3).
    public var stuckWarmupFactor: Double = 3
    /// A gap between readings longer than this (ms) is a dropout (default 30 000) ...
    public var dropoutMinMs: Int64 = 30_000
    /// ... and also longer than this multiple of the typical interval (default 10).
    public var dropoutIntervalFactor: Double = 10
    /// Median-of-five filter on the values the models see (default false). Right for physical
    /// sensors whose single-sample glitches are noise; wrong where a one-sample spike is the
    /// anomaly itself (as in NAB's spike series).
    public var impulseFilter: Bool = false
    /// On a stream read so often that five readings span at most `referenceIntervalMs`, a reading
    /// further than `residualClamp` standard deviations from the median of the last five reaches
    /// the statistical models as that median (default true; a Hampel filter). There one or two
    /// such readings are a transient shorter than the time scale the models' limits were chosen on,
    /// and heavy-tailed noise read every second makes them every hour; a step passes two readings
    /// late. Slower streams keep every reading (NAB's one-reading spikes are its anomalies); the
    /// static limits and the PCA monitor (which has its own glitch gate) see the raw value.
    /// docs/detection.md, "Heavy tails".
    public var impulseFilterFastStreams: Bool = true
    /// An open machine alert raised by one sensor (no PCA monitor fitted) is not resolved while
    /// that sensor's mean of the last `gaussianShortWindow` readings is still more than this many
    /// standard deviations of its `gaussianWindow`, as that window was at the opening, beyond the
    /// window's mean then, in the direction it departed; for at most `gaussianWindow` readings
    /// after the opening (default 2; 0 = off). The adaptive tests get used to a level that keeps
    /// creeping, so a degradation's alert used to close while the machine was still far from its
    /// normal and reopen hours before the failure. docs/detection.md, "Runs to failure".
    public var departureHoldZ: Double = 2

    public init() {}
}

/// Parameters of the per-machine PCA monitor (Hotelling T^2 + SPE/Q).
public struct MultivariateParameters: Codable, Sendable, Equatable {
    /// Fewer sensors than this: no PCA (default 2).
    public var minSensors: Int = 2
    /// Components kept: the smallest number explaining this share of variance (default 0.9).
    public var varianceExplained: Double = 0.9
    /// EWMA applied to standardized inputs before projection, warm-up included, so limits
    /// match (default 0.3; 1 = no smoothing).
    public var inputSmoothingAlpha: Double = 0.3
    /// Empirical quantile of warm-up statistics used as control limit (default 0.99).
    public var limitQuantile: Double = 0.99
    /// Multiplier on the empirical limit: in-sample limits are optimistic and a short warm-up
    /// under-samples slow variation (default 2.5).
    public var limitMargin: Double = 2.5
    /// EWMA of the T^2/Q ratio before fusion (default 0.2; 1 = none).
    public var scoreSmoothingAlpha: Double = 0.2
    /// Weight of T^2/limit in the monitor ratio (default 0.3; 0 = Q only). T^2 is down-weighted
    /// because slow drift (e.g. thermal) moves along the healthy principal directions, while
    /// faults usually break the correlation structure and show in Q.
    public var t2Weight: Double = 0.3
    /// Weight of Q/limit in the monitor ratio (default 1; 0 = T^2 only).
    public var qWeight: Double = 1
    /// After warm-up, the operating point (per-sensor mean) follows slow drift with this EWMA
    /// rate while the monitor is below `driftFreezeRatio` (default 0.01, ~100 readings;
    /// 0 = fixed warm-up mean).
    public var driftAlpha: Double = 0.01
    /// Drift tracking pauses while the smoothed ratio is at or above this (default 0.5), so an
    /// anomaly is not learned as normal.
    public var driftFreezeRatio: Double = 0.5
    /// Operating-point changes (shift changes, load steps): when the monitor leaves its normal
    /// band because several sensors moved together at least this fast, in warm-up standard
    /// deviations per minute of the vector's displacement, the monitor follows the move instead
    /// of alarming on it (default 0 = off; `models/pump.yaml` uses 0.6). A slow drift or a move
    /// of a single sensor is never taken for an operating-point change; limits and trends keep
    /// watching throughout.
    public var operatingChangeRate: Double = 0
    /// The largest sensor's share of the move (squared, standardized) must be at most this
    /// (default 0.85): a load change moves several process variables together, a fault
    /// usually one.
    public var operatingChangeDominance: Double = 0.85
    /// How far back the move is measured, ms (default 360 000 = 6 min; snapshots every sixth).
    public var operatingChangeLookbackMs: Int64 = 360_000
    /// How long the monitor may watch after leaving its band before it decides, ms (default
    /// 180 000: a ramp can leave the band half a minute in, before its rate is measurable).
    /// It follows as soon as the move qualifies; its score is held below the alert limit meanwhile.
    public var operatingChangeDecideMs: Int64 = 180_000
    /// A change that has not settled after this long is an anomaly after all, ms
    /// (default 1 800 000 = 30 min).
    public var operatingChangeMaxMs: Int64 = 1_800_000
    /// Drift tracking rate while the recent move is broad (no sensor above
    /// `operatingChangeDominance`) but slower than a change, e.g. an hour-long load ramp
    /// (default 0 = `driftAlpha` always). Only with operating-change recognition on.
    public var broadDriftAlpha: Double = 0
    /// EWMA rate at which the operating point follows during a change (default 0.05 per step).
    public var operatingChangeAlpha: Double = 0.05
    /// The change is over when the monitor has stayed below `driftFreezeRatio` this long, ms
    /// (default 60 000).
    public var operatingChangeSettleMs: Int64 = 60_000
    /// An excursion has settled when its ratio has stayed below this share of its peak for
    /// `excursionSettleMs` (default 0.1; 0 = never): the machine has come back most of the way
    /// but not all (a valve restored, a rig still warm). The offset left behind becomes the
    /// reference, so the alert closes and drift tracking resumes on it; see `ExcursionSettling`.
    public var excursionSettleFraction: Double = 0.1
    /// How long the ratio must stay below `excursionSettleFraction` of its peak, ms (default 10 000).
    public var excursionSettleMs: Int64 = 10_000
    /// And how many readings at least (default 10: at SKAB's 1 s rows the 10 s bind, at one
    /// snapshot every 10 minutes 10 readings are 90 minutes, not the 2 readings 10 s would allow).
    public var excursionSettleReadings: Int = 10
    /// An excursion that has lasted longer than this, ms, never settles (default 3 600 000, an
    /// hour): SKAB's output is the same with any limit from 30 minutes up, while wear builds for
    /// hours or days and dips on the way (docs/detection.md, "Settled excursions").
    public var excursionSettleMaxAgeMs: Int64 = 3_600_000
    /// A vector beyond the limits on its own (unsmoothed), with the next one back within them
    /// and none beyond them in the previous `glitchIsolation` readings, is a glitch and is kept
    /// out of the monitor (default 10; 0 = off); see `GlitchGate`.
    public var glitchIsolation: Int = 10

    public init() {}
}

/// Alert lifecycle: turns a score in [0,1] into open/update/resolved events.
public struct LifecycleParameters: Codable, Sendable, Equatable {
    /// Score at or above which a step counts as exceeding (default 0.5 = model limit).
    public var openThreshold: Double = 0.5
    /// Consecutive exceeding steps needed to open (default 3).
    public var openCount: Int = 3
    /// And the exceedance must have lasted this long, ms (default 0).
    public var openHoldMs: Int64 = 0
    /// Hysteresis: score below this counts toward resolving (default 0.4).
    public var closeThreshold: Double = 0.4
    /// Consecutive steps below `closeThreshold` needed to resolve (default 10).
    public var closeCount: Int = 10
    /// And for at least this long, ms (default 0).
    public var closeHoldMs: Int64 = 0
    /// An update is sent when the score moved more than this since the last event (default 0.1) ...
    public var updateScoreDelta: Double = 0.1
    /// ... but not more often than this, ms; severity changes bypass it (default 10 000).
    public var minUpdateIntervalMs: Int64 = 10_000
    /// After a resolve, no new episode opens for this long, ms (default 0).
    public var cooldownMs: Int64 = 0
    /// Score at or above which severity is critical, else warning (default 0.8).
    public var criticalScore: Double = 0.8
    /// An alert that would open at the same time of day (within `recurrenceToleranceMs`) as an
    /// opening one or up to `recurrencePeriods` periods before is a schedule (a nightly job, a
    /// cleaning cycle), not news: it is held, not raised. Period, ms (default one day).
    public var recurrencePeriodMs: Int64 = 86_400_000
    /// Periods looked back for the recurrence test (default 2; 0 = off).
    public var recurrencePeriods: Int = 2
    /// How close to the same time of day counts as a recurrence, ms (default 900 000: 15 min).
    public var recurrenceToleranceMs: Int64 = 900_000
    /// A held recurrence still at or above the open threshold after this long is raised after
    /// all, ms (default 3 600 000: 1 h): a schedule's excursion ends, a fault that starts at the
    /// same time of day does not.
    public var recurrenceMaxHoldMs: Int64 = 3_600_000

    public init() {}

    /// Defaults for sensor-health alerts: open at once, resolve after 3 healthy readings.
    public static var sensorHealth: LifecycleParameters {
        var p = LifecycleParameters()
        p.openCount = 1
        p.closeCount = 3
        p.closeThreshold = 0.5
        p.minUpdateIntervalMs = 60_000
        // A sensor fault is reported however regular it is.
        p.recurrencePeriods = 0
        return p
    }
}

/// Full configuration of one machine's detector (one `models/` file per machine type).
public struct DetectorConfiguration: Codable, Sendable, Equatable {
    /// Machine id, used in alerts and alert ids (default "machine").
    public var machine: String = "machine"
    /// Site id, copied into alerts (default "site").
    public var site: String = "site"
    /// Declared sensors; others are accepted with defaults (default none declared).
    public var sensors: [SensorSpec] = []
    /// Readings per sensor (and aligned vectors per machine) used as healthy warm-up before
    /// any statistical alert (default 400).
    public var warmupCount: Int = 400
    /// Time bucket (ms) that aligns single-sensor readings into machine vectors (default 1000).
    public var bucketMs: Int64 = 1000
    /// Models that feed the machine score. Default: seasonal and anomaly likelihood (the
    /// adaptive univariate tests that held up on NAB), static limits, trend and PCA. The other
    /// univariate statistics (robust z, EWMA z, CUSUM, Page-Hinkley, windowed Gaussian) are
    /// always computed and reported as evidence; enabling them trades more alarms for speed
    /// (their fixed-baseline or cumulative nature over-alarms on drifting, seasonal signals).
    public var enabledModels: Set<ModelKind> = [.seasonal, .likelihood, .novelty, .limit, .trend, .pca]
    /// Whether univariate statistical models also feed the machine score when the PCA monitor
    /// runs (default false: on a multi-sensor machine T^2/Q already sees every sensor and
    /// per-sensor tests mostly add false alarms; limits and trend always feed it).
    public var univariateWithPCA: Bool = false
    public var univariate = UnivariateParameters()
    public var multivariate = MultivariateParameters()
    /// Machine alert lifecycle.
    public var lifecycle = LifecycleParameters()
    /// Sensor-health alert lifecycle.
    public var sensorLifecycle = LifecycleParameters.sensorHealth

    public init(machine: String = "machine", site: String = "site", sensors: [SensorSpec] = []) {
        self.machine = machine
        self.site = site
        self.sensors = sensors
    }

    public func spec(for sensor: String) -> SensorSpec {
        sensors.first { $0.name == sensor } ?? SensorSpec(name: sensor)
    }
}

/// A machine type's model file is this configuration.
public typealias MachineModel = DetectorConfiguration
