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

    /// Each sensor's state, in order of first reading; `slotIndex` finds a sensor's slot with
    /// one hash per reading (six dictionaries keyed by name took six).
    private var slots: [SensorSlot] = []
    private var slotIndex: [String: Int] = [:]
    private var pca: PCAMonitor? = nil
    /// The slot of each of the PCA monitor's sensors, in its order (-1 for one not seen yet).
    private var pcaSlots: [Int] = []
    private var pcaOutput = PCAOutputSnapshot()
    private var machineAlerts: AlertLifecycle
    // Trend slopes are not trusted while the operating point moves, and reset after a change.
    private var trendResetPending = false
    private var pendingBucket: Int64? = nil
    private var pendingTs: Int64 = 0
    /// `config.enabledModels` as bits of `ModelKind.index` (a Set lookup hashes).
    private let enabledBits: UInt32
    /// Latest fused machine score in [0,1].
    public private(set) var score: Double = 0
    /// Model and sensors behind the latest score.
    public private(set) var topModel: String = ""
    public private(set) var topSensors: [String] = []
    /// The sensor behind the open univariate alert and its state at the opening (the departure hold).
    private var departure: Departure? = nil

    public init(config: DetectorConfiguration = DetectorConfiguration()) {
        self.config = config
        machineAlerts = AlertLifecycle(params: config.lifecycle, machine: config.machine, site: config.site, kind: .machine)
        enabledBits = Self.bits(config.enabledModels)
    }

    /// Whether a machine alert episode is currently open.
    public var machineAlertOpen: Bool { machineAlerts.isOpen }
    /// Operating-point changes (e.g. shift changes) the multivariate monitor has followed.
    public var operatingChangesFollowed: Int { pca?.operatingChanges ?? 0 }
    /// Single-vector glitches the PCA monitor's gate kept out (see `GlitchGate`).
    public var glitchesDropped: Int { pca?.droppedGlitches ?? 0 }
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
        let i = slot(for: name)
        // Mutated in place in the array: a copy taken out and put back would copy every
        // window and profile of the sensor on each reading (copy on write).
        let out = slots[i].detector.observe(ts: ts, value: value)
        if !out.health.spike { slots[i].lastValue = out.modelValue ?? value }
        if slots[i].lastOutput == nil { slots[i].lastOutput = SensorOutputSnapshot(out) } else { slots[i].lastOutput!.update(out) }
        let h = out.health
        return slots[i].health.step(ts: ts, score: h.isHealthy ? 0 : 1, context: AlertContext(
            model: h.isHealthy ? "sensor_health" : h.model, sensors: [name],
            evidence: ["value": value, "stuck": h.stuck ? 1 : 0, "dropout": h.dropout ? 1 : 0, "spike": h.spike ? 1 : 0],
            timeToThresholdS: nil))
    }

    /// The slot of `name`, made on its first reading.
    private mutating func slot(for name: String) -> Int {
        if let i = slotIndex[name] { return i }
        slots.append(SensorSlot(name: name, config: config))
        slotIndex[name] = slots.count - 1
        if pca != nil { pcaSlots = Self.slotsOf(pca!.sensors, in: slotIndex) }
        return slots.count - 1
    }

    private mutating func machineStep(ts: Int64) -> AlertEvent? {
        let mv = config.multivariate
        if isEnabled(.pca), pca == nil { startPCA(minSensors: mv.minSensors) }
        if pca != nil {
            var x: [Double] = []
            x.reserveCapacity(pcaSlots.count)
            for i in pcaSlots where i >= 0 { if let v = slots[i].lastValue { x.append(v) } }
            // In place, for the same reason as the sensors' chains.
            if x.count == pcaSlots.count { pcaOutput = PCAOutputSnapshot(pca!.observe(x, ts: ts)) }
        }

        let held = pcaOutput.operatingChange || pcaOutput.moving
        // Once a followed change is over, its slope is history: the trend starts afresh.
        if pcaOutput.following { trendResetPending = true }
        if trendResetPending && !held {
            trendResetPending = false
            for i in slots.indices { slots[i].detector.resetTrendSlope() }
        }
        fuse(ts: ts, held: held)
        // The lifecycle is stepped in place; its context reads copies of what it needs (a
        // closure over `self` would overlap the mutation, and copying the lifecycle instead
        // copied its arrays on every step).
        let (outputs, pcaOut, s, model, sensors) = (slots, pcaOutput, score, topModel, topSensors)
        let e = machineAlerts.step(ts: ts, score: s, hold: isStillDeparted(), context: Self.context(slots: outputs, pca: pcaOut, score: s, model: model, sensors: sensors))
        if let e, e.state == .open { noteDeparture(sensors: sensors) }
        return e
    }

    /// Whether the open machine alert's sensor is still away from where it was when the alert
    /// opened, in the direction it left: its recent mean more than `departureHoldZ` standard
    /// deviations of its long window *at the opening* beyond that window's mean. While it is,
    /// the alert stays open whatever the adaptive tests say: they get used to a level that keeps
    /// creeping (a bearing wearing out). The hold lasts at most one long window of readings after
    /// the opening: by then that window holds only readings taken since, the sensor's new normal.
    /// docs/detection.md, "Runs to failure".
    private func isStillDeparted() -> Bool {
        let k = config.univariate.departureHoldZ
        guard k > 0, machineAlerts.isOpen, let d = departure, let i = slotIndex[d.sensor], let o = slots[i].lastOutput,
              slots[i].detector.count - d.readingCount < config.univariate.gaussianWindow else { return false }
        return (o.shortMean - d.mean) / d.sd * d.sign >= k
    }

    /// At an opening on a machine without a fitted PCA monitor, the sensor behind it, the
    /// direction it left in and its long window then. (A PCA machine's episodes close as before:
    /// SKAB's rig stays changed after a labelled fault, and its settled excursions are meant to close.)
    private mutating func noteDeparture(sensors: [String]) {
        departure = nil
        guard !pcaOutput.fitted, let name = sensors.first, let i = slotIndex[name], let o = slots[i].lastOutput, o.longSD > 0 else { return }
        departure = Departure(sensor: name, sign: o.shortMean >= o.longMean ? 1 : -1, mean: o.longMean, sd: o.longSD,
                              readingCount: slots[i].detector.count)
    }

    /// Starts the PCA monitor once enough sensors have a value: declared sensors first (in
    /// model-file order), then any others seen, sorted.
    private mutating func startPCA(minSensors: Int) {
        let seen = slots.filter { $0.lastValue != nil }.map(\.name)
        guard seen.count >= minSensors else { return }
        let declared = config.sensors.map(\.name).filter { slotIndex[$0].map { slots[$0].lastValue != nil } ?? false }
        let order = declared + seen.filter { !declared.contains($0) }.sorted()
        pca = PCAMonitor(sensors: order, params: config.multivariate, warmupCount: config.warmupCount)
        pcaSlots = Self.slotsOf(order, in: slotIndex)
    }

    /// Fusion: the score is driven by the model furthest beyond its own control limit; ties go
    /// to the first sensor by name, then to the first model in `ModelKind` order.
    private mutating func fuse(ts: Int64, held: Bool) {
        let pcaActive = pcaOutput.fitted
        var best = 0.0
        var bestModel = ""
        var bestSensors: [String] = []
        if pcaActive, isEnabled(.pca) {
            best = pcaOutput.ratio
            bestModel = ModelKind.pca.rawValue
            bestSensors = pcaOutput.topSensors
        }
        let persist = config.univariate.trendPersistMs
        for i in slots.indices {
            guard let o = slots[i].lastOutput else { continue }
            let name = slots[i].name
            if persist > 0 {
                if o.ratio(.trend) >= 1 { slots[i].trendBeyondSince = slots[i].trendBeyondSince ?? ts } else { slots[i].trendBeyondSince = nil }
            }
            for m in ModelKind.fused where isEnabled(m) {
                if pcaActive && !config.univariateWithPCA && m != .limit && m != .trend { continue }
                if m == .trend && held { continue }
                let r = o.ratio(m)
                // While several sensors move together, a projection has to hold before it counts:
                // the first minutes of a load ramp project a failure too.
                if m == .trend, persist > 0, r >= 1, pcaOutput.broadMove, (slots[i].trendBeyondSince.map { ts - $0 < persist } ?? true) { continue }
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
    }

    private func isEnabled(_ m: ModelKind) -> Bool { enabledBits & (1 << UInt32(m.index)) != 0 }

    private static func bits(_ models: Set<ModelKind>) -> UInt32 {
        models.reduce(0) { $0 | (1 << UInt32($1.index)) }
    }

    private static func slotsOf(_ names: [String], in index: [String: Int]) -> [Int] {
        names.map { index[$0] ?? -1 }
    }

    /// Evidence for the current score; built only when an event is emitted.
    public func context() -> AlertContext {
        Self.context(slots: slots, pca: pcaOutput, score: score, model: topModel, sensors: topSensors)
    }

    private static func context(slots: [SensorSlot], pca pcaOutput: PCAOutputSnapshot, score: Double,
                                model topModel: String, sensors topSensors: [String]) -> AlertContext {
        var ev: [String: Double] = ["score": score]
        var floor: Severity? = nil
        var ttt: Double? = nil
        for slot in slots {
            guard let o = slot.lastOutput else { continue }
            let name = slot.name
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

// MARK: - Checkpoints

extension MachineDetector {
    // The checkpoint keeps the layout of the dictionaries keyed by sensor name that the slots
    // replaced, so checkpoints written before and after read alike.
    private enum CodingKeys: String, CodingKey {
        case config, sensors, lastValues, lastOutputs, pca, pcaOutput, machineAlerts, healthAlerts
        case trendResetPending, trendBeyondSince, pendingBucket, pendingTs, score, topModel, topSensors
        case departure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decode(DetectorConfiguration.self, forKey: .config)
        enabledBits = Self.bits(config.enabledModels)
        let detectors = try c.decode([String: SensorDetector].self, forKey: .sensors)
        let values = try c.decode([String: Double].self, forKey: .lastValues)
        let outputs = try c.decode([String: SensorOutputSnapshot].self, forKey: .lastOutputs)
        let health = try c.decode([String: AlertLifecycle].self, forKey: .healthAlerts)
        let beyond = try c.decode([String: Int64].self, forKey: .trendBeyondSince)
        let names = Set(detectors.keys).union(values.keys).union(outputs.keys).union(health.keys).union(beyond.keys).sorted()
        var slots: [SensorSlot] = []
        var slotIndex: [String: Int] = [:]
        for name in names {
            var slot = SensorSlot(name: name, config: config)
            if let d = detectors[name] { slot.detector = d }
            if let h = health[name] { slot.health = h }
            slot.lastValue = values[name]
            slot.lastOutput = outputs[name]
            slot.trendBeyondSince = beyond[name]
            slotIndex[name] = slots.count
            slots.append(slot)
        }
        self.slots = slots
        self.slotIndex = slotIndex
        let pca = try c.decodeIfPresent(PCAMonitor.self, forKey: .pca)
        self.pca = pca
        pcaSlots = pca.map { Self.slotsOf($0.sensors, in: slotIndex) } ?? []
        pcaOutput = try c.decode(PCAOutputSnapshot.self, forKey: .pcaOutput)
        machineAlerts = try c.decode(AlertLifecycle.self, forKey: .machineAlerts)
        trendResetPending = try c.decode(Bool.self, forKey: .trendResetPending)
        pendingBucket = try c.decodeIfPresent(Int64.self, forKey: .pendingBucket)
        pendingTs = try c.decode(Int64.self, forKey: .pendingTs)
        score = try c.decode(Double.self, forKey: .score)
        topModel = try c.decode(String.self, forKey: .topModel)
        topSensors = try c.decode([String].self, forKey: .topSensors)
        departure = try c.decodeIfPresent(Departure.self, forKey: .departure)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(Dictionary(uniqueKeysWithValues: slots.map { ($0.name, $0.detector) }), forKey: .sensors)
        try c.encode(Dictionary(uniqueKeysWithValues: slots.compactMap { s in s.lastValue.map { (s.name, $0) } }), forKey: .lastValues)
        try c.encode(Dictionary(uniqueKeysWithValues: slots.compactMap { s in s.lastOutput.map { (s.name, $0) } }), forKey: .lastOutputs)
        try c.encodeIfPresent(pca, forKey: .pca)
        try c.encode(pcaOutput, forKey: .pcaOutput)
        try c.encode(machineAlerts, forKey: .machineAlerts)
        try c.encode(Dictionary(uniqueKeysWithValues: slots.map { ($0.name, $0.health) }), forKey: .healthAlerts)
        try c.encode(trendResetPending, forKey: .trendResetPending)
        try c.encode(Dictionary(uniqueKeysWithValues: slots.compactMap { s in s.trendBeyondSince.map { (s.name, $0) } }), forKey: .trendBeyondSince)
        try c.encodeIfPresent(pendingBucket, forKey: .pendingBucket)
        try c.encode(pendingTs, forKey: .pendingTs)
        try c.encode(score, forKey: .score)
        try c.encode(topModel, forKey: .topModel)
        try c.encode(topSensors, forKey: .topSensors)
        try c.encodeIfPresent(departure, forKey: .departure)
    }
}

/// What the departure hold remembers of an opening: the sensor, the direction it left in (+1 or
/// -1), its long window's mean and standard deviation, and its reading count then.
struct Departure: Codable, Sendable, Equatable {
    var sensor: String
    var sign: Double
    var mean: Double
    var sd: Double
    var readingCount: Int
}

/// One sensor of a machine: its chain, what the fusion reads of its last output, and its
/// sensor-health lifecycle.
struct SensorSlot: Sendable {
    let name: String
    var detector: SensorDetector
    /// The last value the PCA monitor may use (not a spike); nil until there is one.
    var lastValue: Double?
    var lastOutput: SensorOutputSnapshot?
    var health: AlertLifecycle
    /// When the trend projection last crossed its horizon (for `trendPersistMs`).
    var trendBeyondSince: Int64?

    init(name: String, config: DetectorConfiguration) {
        self.name = name
        detector = SensorDetector(spec: config.spec(for: name), params: config.univariate, warmupCount: config.warmupCount)
        health = AlertLifecycle(params: config.sensorLifecycle, machine: config.machine, site: config.site, kind: .sensor, source: name)
    }
}

/// The parts of a `SensorOutput` the fusion needs later; Codable for checkpoints.
struct SensorOutputSnapshot: Codable, Sendable {
    var ratios = [Double](repeating: 0, count: ModelKind.allCases.count)
    var robustZ = 0.0
    var ewmaZ = 0.0
    var shortMean = 0.0
    var longMean = 0.0
    var longSD = 0.0
    var slopePerSecond = 0.0
    var timeToThresholdSeconds: Double? = nil
    var limitSeverity: Severity? = nil

    init(_ o: SensorOutput) { update(o) }

    /// Takes `o`'s values, in the existing array (one allocation less per reading than a new
    /// snapshot).
    mutating func update(_ o: SensorOutput) {
        // A checkpoint written with another list of models holds another count.
        if ratios.count != ModelKind.allCases.count { ratios = [Double](repeating: 0, count: ModelKind.allCases.count) }
        for m in ModelKind.allCases { ratios[m.index] = o.ratio(m) }
        robustZ = o.robustZ
        ewmaZ = o.ewmaZ
        (shortMean, longMean, longSD) = (o.shortMean, o.longMean, o.longSD)
        slopePerSecond = o.slopePerSecond
        timeToThresholdSeconds = o.timeToThresholdSeconds
        limitSeverity = o.limitSeverity
    }

    func ratio(_ m: ModelKind) -> Double {
        let i = m.index
        return i < ratios.count ? ratios[i] : 0
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
