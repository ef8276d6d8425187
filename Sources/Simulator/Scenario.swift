// Scenarios: what fleet to simulate and which faults to inject, read from YAML.
// Parsing is strict: an unknown key or a bad value is an error that names the key
// (`faults[1].onset`), so a typo never silently simulates a healthy fleet.
import ForewarnCore
import Foundation
import Yams

public struct ScenarioError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The key path of the problem, e.g. `faults[1].onset`; empty for whole-file problems.
    public var key: String
    public var message: String
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { key.isEmpty ? message : "scenario key '\(key)': \(message)" }
}

/// How readings go on the wire (DESIGN.md, MQTT input).
public enum PayloadForm: String, Sendable, CaseIterable {
    /// `{"ts":..,"value":..,"unit":..}` on `factory/{site}/{machine}/{sensor}`.
    case object
    /// `{"ts":..,"values":{...}}` on `factory/{site}/{machine}/batch`, one per machine and instant.
    case batch
    /// A bare number; the gateway stamps it with the receive time.
    case plain
}

/// One sensor of a machine type.
public struct SensorConfig: Sendable, Equatable {
    public var kind: PumpSensor
    public var samplePeriod: Int64
    public var noise: Double
    public var name: String { kind.rawValue }
    public var unit: String { kind.unit }
}

/// A machine type: the pump physics with a choice of sensors and sample rates.
public struct MachineType: Sendable, Equatable {
    public var name: String
    public var sensors: [SensorConfig]

    /// The built-in `pump`: all four sensors at 1 Hz.
    public static let pump = MachineType(name: "pump", sensors: PumpSensor.allCases.map {
        SensorConfig(kind: $0, samplePeriod: 1000, noise: $0.defaultNoise)
    })
}

public struct MachineSpec: Sendable, Equatable {
    public var id: String
    public var type: String
    public var site: String
}

/// A scheduled fault. Times are offsets from the simulated start, in milliseconds.
public struct FaultSpec: Sendable, Equatable {
    public var machine: String
    public var kind: FaultKind
    public var onset: Int64
    /// Sensor faults: how long (nil: to the end of the run).
    public var duration: Int64?
    /// Degradations: roughly when the failure comes; the magnitude is solved for it, and the
    /// truth's exact failure time is found by evaluating the noise-free physics.
    public var timeToFailure: Int64?
    /// overheating °C/h, friction A/h, leak bar/h at nominal load; imbalance: mm/s per hour.
    public var rate: Double?
    /// bearing-wear: initial amplitude A of A·(e^(t/τ) − 1), mm/s.
    public var amplitude: Double?
    /// bearing-wear: τ. Default a quarter of the time to failure.
    public var timeConstant: Int64?
    /// imbalance: the step at onset, mm/s. Default 2.
    public var step: Double?
    /// Sensor faults: which sensors (empty: stuck and spikes take the first, dropout takes all).
    public var sensors: [String]
    /// spikes: chance per reading. Default 0.02.
    public var probability: Double?

    public init(machine: String, kind: FaultKind, onset: Int64, duration: Int64? = nil, timeToFailure: Int64? = nil,
                rate: Double? = nil, amplitude: Double? = nil, timeConstant: Int64? = nil, step: Double? = nil,
                sensors: [String] = [], probability: Double? = nil) {
        self.machine = machine
        self.kind = kind
        self.onset = onset
        self.duration = duration
        self.timeToFailure = timeToFailure
        self.rate = rate
        self.amplitude = amplitude
        self.timeConstant = timeConstant
        self.step = step
        self.sensors = sensors
        self.probability = probability
    }

    /// The keys each kind accepts besides machine, kind and onset.
    static func parameters(of kind: FaultKind) -> [String] {
        switch kind {
        case .bearingWear: ["time_to_failure", "amplitude", "time_constant"]
        case .imbalance: ["step", "rate", "time_to_failure"]
        case .overheating, .friction, .leak: ["time_to_failure", "rate"]
        case .stuck, .dropout: ["sensors", "duration"]
        case .spikes: ["sensors", "duration", "probability"]
        }
    }
}

/// Faults drawn from the seed: `count` machines (without scheduled faults) each get one.
public struct RandomFaults: Sendable, Equatable {
    public var count: Int
    public var kinds: [FaultKind]
    /// Onset offset range, ms.
    public var onset: ClosedRange<Int64>
    /// Degradations: time-to-failure range, ms.
    public var timeToFailure: ClosedRange<Int64>
    /// Sensor faults: duration range, ms.
    public var duration: ClosedRange<Int64>
}

public struct Scenario: Sendable, Equatable {
    public var name: String
    public var description: String
    /// The seed and duration a run uses when the command line gives none.
    public var seed: UInt64?
    public var duration: Int64?
    public var payload: PayloadForm
    /// Topic template with `{site}`, `{machine}`, `{sensor}`; the batch form puts `batch` for the sensor.
    public var topic: String
    public var load: LoadProfile
    public var sites: [String]
    public var types: [String: MachineType]
    public var machines: [MachineSpec]
    public var faults: [FaultSpec]
    public var randomFaults: RandomFaults?

    public init(name: String = "scenario", description: String = "", seed: UInt64? = nil, duration: Int64? = nil,
                payload: PayloadForm = .object, topic: String = Scenario.defaultTopic, load: LoadProfile = .threeShifts,
                sites: [String] = [], types: [String: MachineType] = ["pump": .pump], machines: [MachineSpec] = [],
                faults: [FaultSpec] = [], randomFaults: RandomFaults? = nil) {
        self.name = name
        self.description = description
        self.seed = seed
        self.duration = duration
        self.payload = payload
        self.topic = topic
        self.load = load
        self.sites = sites
        self.types = types
        self.machines = machines
        self.faults = faults
        self.randomFaults = randomFaults
    }

    public static let defaultTopic = "factory/{site}/{machine}/{sensor}"

    public static func load(path: String) throws(ScenarioError) -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioError(key: "", "cannot read scenario \(path): \(error.localizedDescription)")
        }
        var s = try parse(yaml: text)
        if s.name == "scenario" { s.name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
        return s
    }

    public static func parse(yaml text: String) throws(ScenarioError) -> Scenario {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ScenarioError(key: "", "scenario is not valid YAML: \(error)")
        }
        guard let root else { throw ScenarioError(key: "", "scenario is empty") }
        let top = try YAMLMap(root, path: "", allowed: ["name", "description", "seed", "duration", "payload", "topic", "load",
                                                      "sites", "machine_types", "machines", "faults", "random_faults"])
        var s = Scenario()
        if let v = try top.string("name") { s.name = v }
        if let v = try top.string("description") { s.description = v }
        if let v = try top.string("seed") {
            guard let seed = UInt64(v) else { throw ScenarioError(key: "seed", "'\(v)' must be a non-negative integer") }
            s.seed = seed
        }
        s.duration = try top.duration("duration")
        if let v = try top.string("payload") {
            guard let p = PayloadForm(rawValue: v) else {
                throw ScenarioError(key: "payload", "'\(v)' is not one of \(PayloadForm.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            s.payload = p
        }
        if let v = try top.string("topic") {
            guard v.contains("{machine}"), v.contains("{sensor}") else {
                throw ScenarioError(key: "topic", "'\(v)' must contain {machine} and {sensor}")
            }
            s.topic = v
        }
        if let node = top["load"] { s.load = try parseLoad(node) }
        if let node = top["sites"] {
            s.sites = try YAMLMap.list(node, path: "sites").enumerated().map { (i, n) throws(ScenarioError) in
                let id = try YAMLMap.scalar(n, path: "sites[\(i)]")
                try checkIdentifier(id, key: "sites[\(i)]")
                return id
            }
        }
        if let node = top["machine_types"] { s.types = try parseTypes(node) }
        guard let machinesNode = top["machines"] else { throw ScenarioError(key: "machines", "is required (a list of machines)") }
        s.machines = try parseMachines(machinesNode, scenario: s)
        if s.sites.isEmpty {
            for m in s.machines where !s.sites.contains(m.site) { s.sites.append(m.site) }
        }
        if let node = top["faults"] {
            s.faults = try YAMLMap.list(node, path: "faults").enumerated().map { (i, n) throws(ScenarioError) in
                try parseFault(n, path: "faults[\(i)]", scenario: s)
            }
        }
        if let node = top["random_faults"] { s.randomFaults = try parseRandomFaults(node) }
        return s
    }

    func type(of machine: MachineSpec) -> MachineType { types[machine.type] ?? .pump }

    // MARK: sections

    private static func parseLoad(_ node: Node) throws(ScenarioError) -> LoadProfile {
        let m = try YAMLMap(node, path: "load", allowed: ["shifts", "ramp"])
        var profile = LoadProfile.threeShifts
        if let shiftsNode = m["shifts"] {
            let shifts = try YAMLMap.list(shiftsNode, path: "load.shifts").enumerated().map { (i, n) throws(ScenarioError) in
                let path = "load.shifts[\(i)]"
                let sm = try YAMLMap(n, path: path, allowed: ["start", "load"])
                guard let start = try sm.string("start") else { throw ScenarioError(key: path + ".start", "is required (HH:MM)") }
                let parts = start.split(separator: ":")
                guard parts.count == 2, let h = Int(parts[0]), let mi = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(mi) else {
                    throw ScenarioError(key: path + ".start", "'\(start)' must be a time of day HH:MM (UTC)")
                }
                guard let load = try sm.double("load", range: 0...1.5) else { throw ScenarioError(key: path + ".load", "is required (0 to 1.5)") }
                return Shift(start: Int64(h * 3600 + mi * 60) * 1000, load: load)
            }
            guard !shifts.isEmpty else { throw ScenarioError(key: "load.shifts", "needs at least one shift") }
            profile = LoadProfile(shifts: shifts, ramp: profile.ramp)
        }
        if let ramp = try m.duration("ramp") {
            guard ramp <= 4 * 3_600_000 else { throw ScenarioError(key: "load.ramp", "must be at most 4h") }
            profile.ramp = ramp
        }
        return profile
    }

    private static func parseTypes(_ node: Node) throws(ScenarioError) -> [String: MachineType] {
        guard let mapping = node.mapping else { throw ScenarioError(key: "machine_types", "must be a mapping of type name to settings") }
        var types: [String: MachineType] = ["pump": .pump]
        for (k, v) in mapping {
            let name = try YAMLMap.scalar(k, path: "machine_types")
            let path = "machine_types.\(name)"
            try checkIdentifier(name, key: path)
            let m = try YAMLMap(v, path: path, allowed: ["model", "sample_rate", "sensors"])
            if let model = try m.string("model"), model != "pump" {
                throw ScenarioError(key: path + ".model", "'\(model)' is not a known physics model (allowed: pump)")
            }
            let defaultPeriod = try samplePeriod(m, path: path) ?? 1000
            var sensors: [SensorConfig] = []
            if let sensorsNode = m["sensors"] {
                guard let sm = sensorsNode.mapping else {
                    throw ScenarioError(key: path + ".sensors", "must be a mapping of sensor name to settings")
                }
                for (sk, sv) in sm {
                    let sname = try YAMLMap.scalar(sk, path: path + ".sensors")
                    let spath = "\(path).sensors.\(sname)"
                    guard let kind = PumpSensor(rawValue: sname) else {
                        throw ScenarioError(key: spath, "unknown sensor (allowed: \(PumpSensor.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    // `vib_rms:` with nothing after it keeps the defaults.
                    var sensor = SensorConfig(kind: kind, samplePeriod: defaultPeriod, noise: kind.defaultNoise)
                    if sv.scalar.map({ $0.string.isEmpty || $0.string == "~" || $0.string == "null" }) != true {
                        let sm2 = try YAMLMap(sv, path: spath, allowed: ["sample_rate", "noise"])
                        if let p = try samplePeriod(sm2, path: spath) { sensor.samplePeriod = p }
                        if let n = try sm2.double("noise", range: 0...100) { sensor.noise = n }
                    }
                    sensors.append(sensor)
                }
                guard !sensors.isEmpty else { throw ScenarioError(key: path + ".sensors", "needs at least one sensor") }
            } else {
                sensors = PumpSensor.allCases.map { SensorConfig(kind: $0, samplePeriod: defaultPeriod, noise: $0.defaultNoise) }
            }
            types[name] = MachineType(name: name, sensors: sensors)
        }
        return types
    }

    private static func samplePeriod(_ m: YAMLMap, path: String) throws(ScenarioError) -> Int64? {
        guard let hz = try m.double("sample_rate", range: 0.001...1000) else { return nil }
        return max(1, Int64((1000 / hz).rounded()))
    }

    private static func parseMachines(_ node: Node, scenario s: Scenario) throws(ScenarioError) -> [MachineSpec] {
        var machines: [MachineSpec] = []
        var seen: Set<String> = []
        for (i, n) in try YAMLMap.list(node, path: "machines").enumerated() {
            let path = "machines[\(i)]"
            let m = try YAMLMap(n, path: path, allowed: ["id", "type", "site", "count", "prefix"])
            let type = try m.string("type") ?? "pump"
            guard s.types[type] != nil else {
                throw ScenarioError(key: path + ".type", "unknown machine type '\(type)' (known: \(s.types.keys.sorted().joined(separator: ", ")))")
            }
            guard let site = try m.string("site") else { throw ScenarioError(key: path + ".site", "is required") }
            try checkIdentifier(site, key: path + ".site")
            if !s.sites.isEmpty && !s.sites.contains(site) {
                throw ScenarioError(key: path + ".site", "'\(site)' is not listed in sites (\(s.sites.joined(separator: ", ")))")
            }
            var ids: [String] = []
            if let count = try m.int("count", range: 1...100_000) {
                // A generator: `{count: 50, prefix: pump-}` gives pump-001 ... pump-050.
                if try m.string("id") != nil { throw ScenarioError(key: path + ".id", "cannot be used with count (use prefix)") }
                let prefix = try m.string("prefix") ?? "m"
                let width = String(count).count
                ids = (1...count).map { n in
                    let digits = String(n)
                    return prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits
                }
            } else {
                if try m.string("prefix") != nil { throw ScenarioError(key: path + ".prefix", "only goes with count") }
                guard let id = try m.string("id") else { throw ScenarioError(key: path + ".id", "is required (or count and prefix)") }
                ids = [id]
            }
            for id in ids {
                try checkIdentifier(id, key: path + ".id")
                guard seen.insert(id).inserted else { throw ScenarioError(key: path + ".id", "machine '\(id)' is defined twice") }
                machines.append(MachineSpec(id: id, type: type, site: site))
            }
        }
        guard !machines.isEmpty else { throw ScenarioError(key: "machines", "needs at least one machine") }
        return machines
    }

    private static func parseFault(_ node: Node, path: String, scenario s: Scenario) throws(ScenarioError) -> FaultSpec {
        // Read the kind first: which other keys are allowed depends on it.
        guard let kmap = node.mapping else { throw ScenarioError(key: path, "must be a mapping") }
        guard let kindText = kmap["kind"]?.scalar?.string else { throw ScenarioError(key: path + ".kind", "is required") }
        guard let kind = FaultKind(rawValue: kindText) else {
            throw ScenarioError(key: path + ".kind", "'\(kindText)' is not a fault kind (allowed: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let m = try YAMLMap(node, path: path, allowed: ["machine", "kind", "onset"] + FaultSpec.parameters(of: kind),
                            hint: "for kind \(kind.rawValue)")
        guard let machine = try m.string("machine") else { throw ScenarioError(key: path + ".machine", "is required") }
        guard let spec = s.machines.first(where: { $0.id == machine }) else {
            throw ScenarioError(key: path + ".machine", "'\(machine)' is not a machine of this scenario")
        }
        guard let onset = try m.duration("onset") else { throw ScenarioError(key: path + ".onset", "is required (offset from the start, e.g. 1h30m)") }
        var f = FaultSpec(machine: machine, kind: kind, onset: onset)
        f.duration = try m.duration("duration")
        if f.duration == 0 { throw ScenarioError(key: path + ".duration", "must be positive") }
        f.timeToFailure = try m.duration("time_to_failure")
        if f.timeToFailure == 0 { throw ScenarioError(key: path + ".time_to_failure", "must be positive") }
        f.rate = try m.double("rate", range: 0...1e6)
        f.amplitude = try m.double("amplitude", range: 1e-9...100)
        f.timeConstant = try m.duration("time_constant")
        if f.timeConstant == 0 { throw ScenarioError(key: path + ".time_constant", "must be positive") }
        f.step = try m.double("step", range: 0...100)
        f.probability = try m.double("probability", range: 0...1)
        let type = s.type(of: spec)
        if let sensorsNode = m["sensors"] {
            let names: [String]
            if let one = sensorsNode.scalar?.string { names = [one] } else {
                names = try YAMLMap.list(sensorsNode, path: path + ".sensors").enumerated().map { (i, n) throws(ScenarioError) in
                    try YAMLMap.scalar(n, path: "\(path).sensors[\(i)]")
                }
            }
            for n in names where !type.sensors.contains(where: { $0.name == n }) {
                throw ScenarioError(key: path + ".sensors", "machine \(machine) (type \(type.name)) has no sensor '\(n)' (it has \(type.sensors.map(\.name).joined(separator: ", ")))")
            }
            guard !names.isEmpty else { throw ScenarioError(key: path + ".sensors", "must name at least one sensor") }
            f.sensors = names
        }
        if let primary = kind.primary, !type.sensors.contains(where: { $0.kind == primary }) {
            throw ScenarioError(key: path + ".kind", "\(kind.rawValue) needs sensor \(primary.rawValue), which type \(type.name) lacks")
        }
        switch kind {
        case .bearingWear:
            if f.timeToFailure == nil && f.amplitude == nil {
                throw ScenarioError(key: path + ".time_to_failure", "is required for bearing-wear (or amplitude)")
            }
            if f.timeToFailure != nil && f.amplitude != nil {
                throw ScenarioError(key: path + ".amplitude", "give either time_to_failure or amplitude, not both")
            }
            if f.amplitude != nil && f.timeConstant == nil {
                throw ScenarioError(key: path + ".time_constant", "is required with amplitude")
            }
        case .imbalance:
            if f.timeToFailure != nil && f.rate != nil {
                throw ScenarioError(key: path + ".rate", "give either time_to_failure or rate, not both")
            }
        case .overheating, .friction, .leak:
            if f.timeToFailure == nil && f.rate == nil {
                throw ScenarioError(key: path + ".time_to_failure", "is required for \(kind.rawValue) (or rate)")
            }
            if f.timeToFailure != nil && f.rate != nil {
                throw ScenarioError(key: path + ".rate", "give either time_to_failure or rate, not both")
            }
            if f.rate == 0 { throw ScenarioError(key: path + ".rate", "must be positive") }
        case .stuck, .dropout, .spikes:
            break
        }
        return f
    }

    private static func parseRandomFaults(_ node: Node) throws(ScenarioError) -> RandomFaults {
        let m = try YAMLMap(node, path: "random_faults", allowed: ["count", "kinds", "onset", "time_to_failure", "duration"])
        guard let count = try m.int("count", range: 0...100_000) else { throw ScenarioError(key: "random_faults.count", "is required") }
        var kinds = FaultKind.allCases.filter(\.isDegradation)
        if let kn = m["kinds"] {
            kinds = try YAMLMap.list(kn, path: "random_faults.kinds").enumerated().map { (i, n) throws(ScenarioError) in
                let t = try YAMLMap.scalar(n, path: "random_faults.kinds[\(i)]")
                guard let k = FaultKind(rawValue: t) else {
                    throw ScenarioError(key: "random_faults.kinds[\(i)]", "'\(t)' is not a fault kind (allowed: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return k
            }
            guard !kinds.isEmpty else { throw ScenarioError(key: "random_faults.kinds", "needs at least one kind") }
        }
        return RandomFaults(count: count, kinds: kinds,
                            onset: try m.durationRange("onset") ?? 3_600_000...4 * 3_600_000,
                            timeToFailure: try m.durationRange("time_to_failure") ?? 2 * 3_600_000...6 * 3_600_000,
                            duration: try m.durationRange("duration") ?? 10 * 60_000...30 * 60_000)
    }

    private static func checkIdentifier(_ id: String, key: String) throws(ScenarioError) {
        do { try Identifier.validate(id, field: "identifier") } catch {
            throw ScenarioError(key: key, error.detail)
        }
    }
}

/// A YAML mapping that rejects keys outside `allowed`, naming the full key path.
struct YAMLMap {
    let mapping: Node.Mapping
    let path: String

    init(_ node: Node, path: String, allowed: [String], hint: String = "") throws(ScenarioError) {
        guard let m = node.mapping else { throw ScenarioError(key: path.isEmpty ? "" : path, "must be a mapping") }
        for (k, _) in m {
            let name = k.scalar?.string ?? "?"
            if !allowed.contains(name) {
                throw ScenarioError(key: Self.join(path, name), "unknown key\(hint.isEmpty ? "" : " " + hint) (allowed: \(allowed.joined(separator: ", ")))")
            }
        }
        mapping = m
        self.path = path
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    subscript(_ key: String) -> Node? { mapping[key] }

    static func scalar(_ node: Node, path: String) throws(ScenarioError) -> String {
        guard let s = node.scalar?.string else { throw ScenarioError(key: path, "must be a single value") }
        return s
    }

    static func list(_ node: Node, path: String) throws(ScenarioError) -> [Node] {
        guard let seq = node.sequence else { throw ScenarioError(key: path, "must be a list") }
        return Array(seq)
    }

    func string(_ key: String) throws(ScenarioError) -> String? {
        guard let node = mapping[key] else { return nil }
        return try Self.scalar(node, path: Self.join(path, key))
    }

    func double(_ key: String, range: ClosedRange<Double>) throws(ScenarioError) -> Double? {
        guard let s = try string(key) else { return nil }
        guard let v = Double(s), v.isFinite, range.contains(v) else {
            throw ScenarioError(key: Self.join(path, key), "'\(s)' must be a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    func int(_ key: String, range: ClosedRange<Int>) throws(ScenarioError) -> Int? {
        guard let s = try string(key) else { return nil }
        guard let v = Int(s), range.contains(v) else {
            throw ScenarioError(key: Self.join(path, key), "'\(s)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    func duration(_ key: String) throws(ScenarioError) -> Int64? {
        guard let s = try string(key) else { return nil }
        guard let v = parseSimDuration(s) else {
            throw ScenarioError(key: Self.join(path, key), "'\(s)' is not a duration (e.g. 90, 45s, 30m, 1h30m, 2d)")
        }
        return v
    }

    /// `[1h, 3h]` or a single duration.
    func durationRange(_ key: String) throws(ScenarioError) -> ClosedRange<Int64>? {
        guard let node = mapping[key] else { return nil }
        let p = Self.join(path, key)
        let texts: [String]
        if let s = node.scalar?.string { texts = [s, s] } else {
            texts = try Self.list(node, path: p).enumerated().map { (i, n) throws(ScenarioError) in try Self.scalar(n, path: "\(p)[\(i)]") }
        }
        guard texts.count == 2 else { throw ScenarioError(key: p, "must be a duration or a list [min, max]") }
        guard let lo = parseSimDuration(texts[0]), let hi = parseSimDuration(texts[1]) else {
            throw ScenarioError(key: p, "'\(texts)' are not durations (e.g. [1h, 3h])")
        }
        guard lo <= hi else { throw ScenarioError(key: p, "min is larger than max") }
        return lo...hi
    }
}
