// The fleet as pure value types: machines advance through simulated time and yield readings.
// No clock and no I/O, so tests step through a day in milliseconds and two runs with one
// seed give identical readings.
import ForewarnCore
import Foundation

/// One reading from the physics. `clean` is the noise-free value behind it, which the
/// truth is computed from; `value` is what goes on the wire (noise, sensor faults, 0.001 resolution).
public struct SimReading: Sendable, Equatable {
    public var machine: Int
    public var sensor: Int
    public var ts: SimTime
    public var value: Double
    public var clean: Double
}

/// One injected fault as the truth file records it.
public struct FaultTruth: Sendable, Equatable {
    public var machine: String
    public var kind: FaultKind
    public var onset: SimTime
    /// When the noise-free primary sensor first reaches its failure threshold (a sample time);
    /// nil for sensor faults and for degradations that never get there within 30 days.
    public var failure: SimTime?
    public var sensors: [String]

    /// `{"machine","kind","onset","failure","sensors"}`, one line of the truth file.
    public func jsonLine() -> String {
        var w = JSONWriter()
        w.beginObject()
        w.field("machine", machine)
        w.field("kind", kind.rawValue)
        w.field("onset", onset)
        w.key("failure")
        if let failure { w.integer(failure) } else { w.null() }
        w.key("sensors")
        w.beginArray()
        for s in sensors { w.string(s) }
        w.endArray()
        w.endObject()
        return w.string
    }
}

/// One machine: its sensors, its fixed healthy offsets, its faults and its noise stream.
public struct MachineSimulator: Sendable {
    public let spec: MachineSpec
    public let sensors: [SensorConfig]
    public let load: LoadProfile
    public private(set) var faults: [FaultPlan] = []
    /// Each machine's healthy values differ a little, as real units do.
    let offsets: [Double]
    private var noise: SimulationRandom
    /// Spikes draw from their own stream so that adding them leaves the noise unchanged.
    private var spikeRandom: SimulationRandom
    private var nextSample: [SimTime]
    private var lastValue: [Double?]
    private var frozen: [Double?]
    /// The earliest time any of this machine's sensors samples next.
    public private(set) var nextDue: SimTime

    public init(spec: MachineSpec, type: MachineType, load: LoadProfile, seed: UInt64, start: SimTime) {
        self.spec = spec
        self.sensors = type.sensors
        self.load = load
        var r = SimulationRandom(seed: seed, stream: "machine/" + spec.id)
        offsets = type.sensors.map { r.uniform(-$0.kind.unitSpread, $0.kind.unitSpread) }
        noise = r
        spikeRandom = SimulationRandom(seed: seed, stream: "spikes/" + spec.id)
        nextSample = Array(repeating: start, count: type.sensors.count)
        lastValue = Array(repeating: nil, count: type.sensors.count)
        frozen = Array(repeating: nil, count: type.sensors.count)
        nextDue = start
    }

    mutating func add(_ fault: FaultPlan) { faults.append(fault) }

    /// Scales fault `k` so that the noise-free primary first fails at `target` (to the sample).
    /// Load and ambient move the crossing, so a magnitude solved at nominal load would miss
    /// `time_to_failure` by hours; bisection on the real physics hits it. Failure time falls
    /// monotonically with the magnitude, which makes bisection sound.
    mutating func calibrate(fault k: Int, sensor i: Int, target: SimTime, start: SimTime) {
        let onset = faults[k].onset
        let period = sensors[i].samplePeriod
        let lastSample = start + (target - start) / period * period
        var sim = self
        func failure(_ m: Double) -> SimTime? {
            sim.faults[k].magnitude = m
            return sim.firstFailure(sensor: i, from: onset, start: start, horizon: target)
        }
        if failure(0) != nil { faults[k].magnitude = 0; return }
        var lo = 0.0
        var hi = max(faults[k].magnitude, 1e-9)
        var hiFailure = failure(hi)
        var grow = 0
        while hiFailure == nil && grow < 60 { lo = hi; hi *= 2; hiFailure = failure(hi); grow += 1 }
        // Done as soon as the failure lands on the last sample before the target.
        for _ in 0..<60 where hiFailure != lastSample && hi - lo > hi * 1e-12 {
            let mid = (lo + hi) / 2
            if let f = failure(mid) { hi = mid; hiFailure = f } else { lo = mid }
        }
        faults[k].magnitude = hi
    }

    /// The noise-free value of sensor `i` at `ts`: healthy baseline with load and ambient, plus every degradation.
    public func cleanValue(_ i: Int, at ts: SimTime) -> Double {
        cleanValue(i, at: ts, load: load.load(at: ts))
    }

    func cleanValue(_ i: Int, at ts: SimTime, load l: Double) -> Double {
        let kind = sensors[i].kind
        var v = kind.healthy + offsets[i] + kind.loadGain * (l - LoadProfile.nominal)
        if kind == .temperature { v += ambientOffset(at: ts) }
        for f in faults { v += f.effect(on: kind, at: ts, load: l) }
        return kind.saturate(v)
    }

    /// The healthy value at nominal load and mean ambient: what fault magnitudes are solved against.
    func nominalBaseline(_ i: Int) -> Double { sensors[i].kind.healthy + offsets[i] }

    /// Emits the readings of every sensor due at `ts` (which must be `nextDue`).
    public mutating func sample(at ts: SimTime, machineIndex: Int, into out: inout [SimReading]) {
        let l = load.load(at: ts)
        var due = SimTime.max
        for i in sensors.indices {
            if nextSample[i] == ts {
                nextSample[i] = ts + sensors[i].samplePeriod
                let clean = cleanValue(i, at: ts, load: l)
                // Draw the noise even when the reading is then lost, so faults do not shift later noise.
                var value = clean + sensors[i].noise * noise.gaussian()
                if sensors[i].kind.failsBelow || sensors[i].kind == .vibration { value = max(value, 0) }
                var emit = true
                var stuck = false
                for f in faults where !f.kind.isDegradation && f.sensors.contains(i) && f.isActive(at: ts) {
                    switch f.kind {
                    case .dropout:
                        emit = false
                    case .stuck:
                        // Frozen at the last value the sensor reported before it stuck.
                        if frozen[i] == nil { frozen[i] = lastValue[i] ?? value }
                        stuck = true
                    case .spikes:
                        if spikeRandom.unit() <= f.probability {
                            // Physically impossible: ten times the value, or negative.
                            value = spikeRandom.unit() < 0.5 ? value * 10 : -value * spikeRandom.uniform(1, 3)
                        }
                    default:
                        break
                    }
                }
                if stuck { value = frozen[i]! } else { frozen[i] = nil }
                value = (value * 1000).rounded() / 1000
                if emit {
                    out.append(SimReading(machine: machineIndex, sensor: i, ts: ts, value: value, clean: clean))
                    if !stuck { lastValue[i] = value }
                }
            }
            due = min(due, nextSample[i])
        }
        nextDue = due
    }

    /// The first sample time at or after `from` when sensor `i`'s noise-free value has failed;
    /// scans the sensor's own sample grid so the answer is exact to the sample.
    func firstFailure(sensor i: Int, from: SimTime, start: SimTime, horizon: SimTime) -> SimTime? {
        let kind = sensors[i].kind
        let period = sensors[i].samplePeriod
        var ts = from <= start ? start : start + ((from - start + period - 1) / period) * period
        while ts <= horizon {
            if kind.hasFailed(cleanValue(i, at: ts)) { return ts }
            ts += period
        }
        return nil
    }
}

/// The whole fleet, stepping in simulated time. Readings come out ordered by time, then
/// by machine (scenario order), then by sensor (type order).
public struct FleetSimulator: Sendable {
    public let scenario: Scenario
    public let seed: UInt64
    public let start: SimTime
    public private(set) var machines: [MachineSimulator]
    /// Every fault of the scenario, scheduled and drawn, in that order.
    public let truth: [FaultTruth]
    /// Every reading before `now` has been emitted.
    public private(set) var now: SimTime

    /// Degradations that have not failed by 30 days after onset are reported with `failure: null`.
    public static let failureHorizon: Int64 = 30 * 86_400_000

    public init(scenario: Scenario, seed: UInt64, start: SimTime = defaultSimulationStart) throws(ScenarioError) {
        self.scenario = scenario
        self.seed = seed
        self.start = start
        now = start
        machines = scenario.machines.map {
            MachineSimulator(spec: $0, type: scenario.type(of: $0), load: scenario.load, seed: seed, start: start)
        }
        var specs = scenario.faults
        if let rf = scenario.randomFaults { specs += try Self.draw(rf, scenario: scenario, seed: seed) }

        // Plan every fault first, then calibrate, then find failures: faults on one machine add up.
        var planned: [(machine: Int, fault: Int, spec: FaultSpec)] = []
        for spec in specs {
            guard let mi = machines.firstIndex(where: { $0.spec.id == spec.machine }) else {
                throw ScenarioError(key: "faults", "no machine '\(spec.machine)'")
            }
            let plan = try Self.plan(spec, machine: machines[mi], start: start)
            planned.append((mi, machines[mi].faults.count, spec))
            machines[mi].add(plan)
        }
        for p in planned {
            let plan = machines[p.machine].faults[p.fault]
            guard let ttf = p.spec.timeToFailure, let primary = plan.kind.primary,
                  let i = machines[p.machine].sensors.firstIndex(where: { $0.kind == primary }) else { continue }
            machines[p.machine].calibrate(fault: p.fault, sensor: i, target: plan.onset + ttf, start: start)
        }
        let ms = machines
        truth = planned.map { p in
            let m = ms[p.machine]
            let plan = m.faults[p.fault]
            var failure: SimTime?
            if let primary = plan.kind.primary, let i = m.sensors.firstIndex(where: { $0.kind == primary }) {
                // A steady imbalance either fails within a day (at peak load) or never.
                let steady = plan.kind == .imbalance && plan.magnitude == 0
                let horizon = plan.onset + (steady ? 2 * LoadProfile.day : Self.failureHorizon)
                failure = m.firstFailure(sensor: i, from: plan.onset, start: start, horizon: horizon)
            }
            let names = plan.kind.isDegradation
                ? plan.kind.affected.filter { k in m.sensors.contains { $0.kind == k } }.map(\.rawValue)
                : plan.sensors.map { m.sensors[$0].name }
            return FaultTruth(machine: m.spec.id, kind: plan.kind, onset: plan.onset, failure: failure, sensors: names)
        }
    }

    /// The truth for a run of `duration` (nil: unbounded): faults whose onset falls inside it.
    public func truth(forDuration duration: Int64?) -> [FaultTruth] {
        guard let duration else { return truth }
        return truth.filter { $0.onset < start + duration }
    }

    /// Emits every reading with `now <= ts < end`, in order, and moves `now` to `end`.
    public mutating func advance(until end: SimTime, into out: inout [SimReading]) {
        while true {
            var t = SimTime.max
            for m in machines where m.nextDue < t { t = m.nextDue }
            guard t < end else { break }
            for i in machines.indices where machines[i].nextDue == t {
                machines[i].sample(at: t, machineIndex: i, into: &out)
            }
        }
        now = max(now, end)
    }

    /// Resolves a scheduled fault against its machine: absolute times, sensor indices,
    /// and the magnitude that makes the failure come about `time_to_failure` after onset.
    static func plan(_ f: FaultSpec, machine m: MachineSimulator, start: SimTime) throws(ScenarioError) -> FaultPlan {
        let onset = start + f.onset
        var plan = FaultPlan(kind: f.kind, onset: onset, end: f.duration.map { onset + $0 }, sensors: [],
                             magnitude: 0, timeConstant: 1, step: 0, probability: f.probability ?? 0.02)
        if let primary = f.kind.primary {
            guard let i = m.sensors.firstIndex(where: { $0.kind == primary }) else {
                throw ScenarioError(key: "faults", "\(f.kind.rawValue) on \(m.spec.id) needs sensor \(primary.rawValue)")
            }
            plan.sensors = [i]
            let gap = primary.margin(from: m.nominalBaseline(i))
            let ttfHours = f.timeToFailure.map { Double($0) / 3_600_000 }
            switch f.kind {
            case .bearingWear:
                let tau = f.timeConstant.map { Double($0) / 3_600_000 } ?? (ttfHours ?? 4) / 4
                plan.timeConstant = tau
                plan.magnitude = f.amplitude ?? gap / (exp(ttfHours! / tau) - 1)
            case .imbalance:
                plan.step = f.step ?? 2.0
                if let ttfHours {
                    guard plan.step < gap else {
                        throw ScenarioError(key: "faults", "imbalance on \(m.spec.id): a step of \(plan.step) already reaches the threshold; drop time_to_failure")
                    }
                    plan.magnitude = (gap - plan.step) / ttfHours
                } else {
                    plan.magnitude = f.rate ?? 0
                }
            default:
                plan.magnitude = f.rate ?? gap / ttfHours!
            }
        } else {
            let names = f.sensors.isEmpty ? (f.kind == .dropout ? m.sensors.map(\.name) : [m.sensors[0].name]) : f.sensors
            plan.sensors = names.compactMap { n in m.sensors.firstIndex { $0.name == n } }
        }
        return plan
    }

    /// Random faults from the seed: distinct machines that have no scheduled fault.
    static func draw(_ rf: RandomFaults, scenario: Scenario, seed: UInt64) throws(ScenarioError) -> [FaultSpec] {
        var r = SimulationRandom(seed: seed, stream: "random_faults")
        let busy = Set(scenario.faults.map(\.machine))
        var candidates = scenario.machines.filter { !busy.contains($0.id) }.map(\.id)
        guard rf.count <= candidates.count else {
            throw ScenarioError(key: "random_faults.count", "\(rf.count) faults need as many machines without scheduled faults; there are \(candidates.count)")
        }
        func pick(_ range: ClosedRange<Int64>) -> Int64 {
            range.lowerBound + Int64(r.uniform(0, 1) * Double(range.upperBound - range.lowerBound))
        }
        var out: [FaultSpec] = []
        for _ in 0..<rf.count {
            let machine = candidates.remove(at: Int(r.next() % UInt64(candidates.count)))
            let kind = rf.kinds[Int(r.next() % UInt64(rf.kinds.count))]
            var f = FaultSpec(machine: machine, kind: kind, onset: pick(rf.onset))
            if kind.isDegradation {
                f.timeToFailure = pick(rf.timeToFailure)
            } else {
                f.duration = pick(rf.duration)
                let type = scenario.type(of: scenario.machines.first { $0.id == machine }!)
                if kind != .dropout { f.sensors = [type.sensors[Int(r.next() % UInt64(type.sensors.count))].name] }
            }
            out.append(f)
        }
        return out
    }

    // MARK: names for the wire

    public func machineID(_ r: SimReading) -> String { machines[r.machine].spec.id }
    public func sensorName(_ r: SimReading) -> String { machines[r.machine].sensors[r.sensor].name }
}
