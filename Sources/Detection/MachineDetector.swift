// Detection: the pure, I/O-free anomaly models of Forewarn.
//
// This module owns the streaming models (per-sensor chain in SensorDetector, PCA T^2/Q in
// PCAMonitor), the fusion of their limit ratios into one machine score in [0,1], and the
// alert lifecycle. `MachineDetector` is the entry point the service calls: one value per
// machine, fed readings in reading time, returning alert events; it is Codable for checkpoints.
// Nothing here reads clocks, files or the network, so online and offline runs agree.

/// One machine's detector: per-sensor chains, a PCA monitor, fusion and alert lifecycles.
public struct MachineDetector: Codable, Sendable {
    public let config: DetectorConfiguration

    private var sensors: [String: SensorDetector] = [:]
    private var lastValues: [String: Double] = [:]
    private var lastOutputs: [String: SensorOutputSnapshot] = [:]
    private var pca: PCAMonitor? = nil
    private var pcaOutput = PCAOutputSnapshot()
    private var machineAlerts: AlertLifecycle
    private var healthAlerts: [String: AlertLifecycle] = [:]
    // Trend slopes are not trusted while the operating point moves, and reset after a change.
    private var trendResetPending = false
    // When each sensor's trend projection last crossed its horizon (for `trendPersistMs`).
    private var trendBeyondSince: [String: Int64] = [:]
    private var pendingBucket: Int64? = nil
    private var pendingTs: Int64 = 0
    /// Latest fused machine score in [0,1].
    public private(set) var score: Double = 0
    /// Model and sensors behind the latest score.
    public private(set) var topModel: String = ""
    public private(set) var topSensors: [String] = []

    public init(config: DetectorConfiguration = DetectorConfiguration()) {
        self.config = config
        machineAlerts = AlertLifecycle(params: config.lifecycle, machine: config.machine, site: config.site, kind: .machine)
    }

    /// Whether a machine alert episode is currently open.
    public var machineAlertOpen: Bool { machineAlerts.isOpen }
    /// Operating-point changes (e.g. shift changes) the multivariate monitor has followed.
    public var operatingChangesFollowed: Int { pca?.operatingChanges ?? 0 }
    /// Whether the multivariate monitor has finished its warm-up fit.
    public var isPCAFitted: Bool { pca?.isFitted ?? false }

    // MARK: - Input

    /// A full aligned vector of this machine's readings at `ts` (epoch ms). One machine step.
    public mutating func observe(ts: Int64, values: [String: Double]) -> [AlertEvent] {
        var events = flush()
        for name in values.keys.sorted() {
            if let e = observeSensor(ts: ts, sensor: name, value: values[name]!) { events.append(e) }
        }
        if let e = machineStep(ts: ts) { events.append(e) }
        return events
    }

    /// A single sensor reading. Sensors are aligned into machine vectors by `bucketMs` time
    /// buckets: the machine step for a bucket runs when a reading of a later bucket arrives
    /// (or on `flush()`).
    public mutating func observe(ts: Int64, sensor: String, value: Double) -> [AlertEvent] {
        let bucket = Self.floorDiv(ts, max(config.bucketMs, 1))
        var events: [AlertEvent] = []
        if let b = pendingBucket, bucket > b { events = flush() }
        if let e = observeSensor(ts: ts, sensor: sensor, value: value) { events.append(e) }
        if pendingBucket.map({ bucket > $0 }) ?? true { pendingBucket = bucket }
        pendingTs = max(pendingTs, ts)
        return events
    }

    /// Runs the machine step for a pending bucket, if any (e.g. at end of input or on a tick).
    public mutating func flush() -> [AlertEvent] {
        guard pendingBucket != nil else { return [] }
        pendingBucket = nil
        let ts = pendingTs
        return machineStep(ts: ts).map { [$0] } ?? []
    }

    // MARK: - Steps

    private mutating func observeSensor(ts: Int64, sensor name: String, value: Double) -> AlertEvent? {
        // Mutated in place through the dictionary: a copy taken out and put back would copy
        // every window and profile of the sensor on each reading (copy on write).
        if sensors[name] == nil {
            sensors[name] = SensorDetector(spec: config.spec(for: name), params: config.univariate, warmupCount: config.warmupCount)
        }
        let out = sensors[name]!.observe(ts: ts, value: value)
        if !out.health.spike { lastValues[name] = out.modelValue ?? value }
        lastOutputs[name] = SensorOutputSnapshot(out)

        if healthAlerts[name] == nil {
            healthAlerts[name] = AlertLifecycle(params: config.sensorLifecycle, machine: config.machine,
                                                site: config.site, kind: .sensor, source: name)
        }
        let h = out.health
        return healthAlerts[name]!.step(ts: ts, score: h.isHealthy ? 0 : 1, context: AlertContext(
            model: h.isHealthy ? "sensor_health" : h.model, sensors: [name],
            evidence: ["value": value, "stuck": h.stuck ? 1 : 0, "dropout": h.dropout ? 1 : 0, "spike": h.spike ? 1 : 0],
            timeToThresholdS: nil))
    }

    private mutating func machineStep(ts: Int64) -> AlertEvent? {
        let enabled = config.enabledModels
        let mv = config.multivariate
        if enabled.contains(.pca), pca == nil, lastValues.count >= mv.minSensors {
            // Declared sensors first (in model-file order), then any others seen, sorted.
            let declared = config.sensors.map(\.name).filter { lastValues[$0] != nil }
            let order = declared + lastValues.keys.filter { !declared.contains($0) }.sorted()
            if order.count >= mv.minSensors { pca = PCAMonitor(sensors: order, params: mv, warmupCount: config.warmupCount) }
        }
        if let names = pca?.sensors {
            var x: [Double] = []
            x.reserveCapacity(names.count)
            for s in names { if let v = lastValues[s] { x.append(v) } }
            // In place, for the same reason as the sensors' chains.
            if x.count == names.count { pcaOutput = PCAOutputSnapshot(pca!.observe(x, ts: ts)) }
        }

        let held = pcaOutput.operatingChange || pcaOutput.moving
        // Once a followed change is over, its slope is history: the trend starts afresh.
        if pcaOutput.following { trendResetPending = true }
        if trendResetPending && !held {
            trendResetPending = false
            for name in Array(sensors.keys) { sensors[name]?.resetTrendSlope() }
        }

        // Fusion: the score is driven by the model furthest beyond its own control limit.
        let pcaActive = pcaOutput.fitted
        var best = 0.0
        var bestModel = ""
        var bestSensors: [String] = []
        if pcaActive, enabled.contains(.pca) {
            best = pcaOutput.ratio
            bestModel = ModelKind.pca.rawValue
            bestSensors = pcaOutput.topSensors
        }
        let persist = config.univariate.trendPersistMs
        if persist > 0 {
            for (name, o) in lastOutputs {
                if o.ratio(.trend) >= 1 { trendBeyondSince[name] = trendBeyondSince[name] ?? ts } else { trendBeyondSince[name] = nil }
            }
        }
        for (name, o) in lastOutputs {
            for m in ModelKind.allCases where m != .pca && enabled.contains(m) {
                if pcaActive && !config.univariateWithPCA && m != .limit && m != .trend { continue }
                if m == .trend && held { continue }
                let r = o.ratio(m)
                // While several sensors move together, a projection has to hold before it counts:
                // the first minutes of a load ramp project a failure too.
                if m == .trend, persist > 0, r >= 1, pcaOutput.broadMove, (trendBeyondSince[name].map { ts - $0 < persist } ?? true) { continue }
                if r > best || (r == best && r > 0 && (bestSensors.first.map { name < $0 } ?? true)) {
                    best = r
                    bestModel = m.rawValue
                    bestSensors = [name]
                }
            }
        }
        score = scoreFromRatio(best)
        topModel = bestModel
        topSensors = bestSensors
        var life = machineAlerts
        let ev = life.step(ts: ts, score: score, context: self.context())
        machineAlerts = life
        return ev
    }

    /// Evidence for the current score; built only when an event is emitted.
    public func context() -> AlertContext {
        var ev: [String: Double] = ["score": score]
        var floor: Severity? = nil
        var ttt: Double? = nil
        for (name, o) in lastOutputs {
            if let t = o.timeToThresholdSeconds { ttt = min(ttt ?? t, t) }
            if let s = o.limitSeverity { floor = max(floor ?? s, s) }
            guard topSensors.contains(name) || o.limitSeverity != nil else { continue }
            ev["\(name).robust_z"] = o.robustZ
            ev["\(name).ewma_z"] = o.ewmaZ
            ev["\(name).slope_per_s"] = o.slopePerSecond
            for m in ModelKind.allCases where m != .pca {
                let r = o.ratio(m)
                if r > 0.25 { ev["\(name).\(m.rawValue)"] = r }
            }
        }
        if pcaOutput.fitted {
            ev["pca.t2"] = pcaOutput.t2
            ev["pca.t2_limit"] = pcaOutput.t2Limit
            ev["pca.q"] = pcaOutput.q
            ev["pca.q_limit"] = pcaOutput.qLimit
            ev["pca.ratio"] = pcaOutput.ratio
            if pcaOutput.operatingChange || pcaOutput.moving { ev["pca.operating_change"] = 1 }
        }
        return AlertContext(model: topModel, sensors: topSensors, evidence: ev, timeToThresholdS: ttt, severityFloor: floor)
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// The parts of a `SensorOutput` the fusion needs later; Codable for checkpoints.
struct SensorOutputSnapshot: Codable, Sendable {
    var ratios: [Double]
    var robustZ: Double
    var ewmaZ: Double
    var slopePerSecond: Double
    var timeToThresholdSeconds: Double?
    var limitSeverity: Severity?

    init(_ o: SensorOutput) {
        ratios = ModelKind.allCases.map { o.ratio($0) }
        robustZ = o.robustZ
        ewmaZ = o.ewmaZ
        slopePerSecond = o.slopePerSecond
        timeToThresholdSeconds = o.timeToThresholdSeconds
        limitSeverity = o.limitSeverity
    }

    func ratio(_ m: ModelKind) -> Double {
        let i = ModelKind.allCases.firstIndex(of: m)!
        return ratios[i]
    }
}

struct PCAOutputSnapshot: Codable, Sendable {
    var fitted = false
    var t2 = 0.0, q = 0.0, t2Limit = 0.0, qLimit = 0.0, ratio = 0.0
    var topSensors: [String] = []
    var operatingChange = false
    var moving = false
    var following = false
    var broadMove = false
    init() {}
    init(_ o: PCAOutput) {
        fitted = o.fitted
        t2 = o.t2
        q = o.q
        t2Limit = o.t2Limit
        qLimit = o.qLimit
        ratio = o.ratio
        topSensors = o.topSensors
        operatingChange = o.operatingChange
        moving = o.moving
        following = o.following
        broadMove = o.broadMove
    }
}
