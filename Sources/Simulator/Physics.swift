// The pump physics: healthy behaviour (load, ambient, noise) and how each fault kind moves
// the noise-free values. Everything here is a pure function of simulated time and
// parameters, so the truth (when a value crosses its threshold) can be computed exactly.
import Foundation

/// The quantities the pump model knows, with the failure thresholds the detector shares
/// (models/pump.yaml). Values are noise-free unless stated.
public enum PumpSensor: String, CaseIterable, Sendable {
    case vibration = "vib_rms"
    case temperature = "temp_c"
    case current = "current_a"
    case pressure = "pressure_bar"

    public var unit: String {
        switch self {
        case .vibration: "mm/s"
        case .temperature: "°C"
        case .current: "A"
        case .pressure: "bar"
        }
    }

    /// Healthy value at nominal load (and mean ambient).
    public var healthy: Double {
        switch self {
        case .vibration: 2.5
        case .temperature: 55
        case .current: 20
        case .pressure: 6.0
        }
    }

    /// Functional failure: ISO 10816 zone D for vibration, the others from the pump's datasheet limits.
    public var failureThreshold: Double {
        switch self {
        case .vibration: 7.1
        case .temperature: 90
        case .current: 30
        case .pressure: 4.0
        }
    }

    /// Pressure fails by falling; the others by rising.
    public var failsBelow: Bool { self == .pressure }

    /// Default measurement noise (standard deviation).
    public var defaultNoise: Double {
        switch self {
        case .vibration: 0.15
        case .temperature: 0.25
        case .current: 0.2
        case .pressure: 0.04
        }
    }

    /// Change per unit of load away from nominal. Higher flow demand lowers discharge pressure.
    var loadGain: Double {
        switch self {
        case .vibration: 0.4
        case .temperature: 10
        case .current: 12
        case .pressure: -0.4
        }
    }

    /// Machine-to-machine spread of the healthy value (uniform ±), drawn once per machine.
    var unitSpread: Double {
        switch self {
        case .vibration: 0.15
        case .temperature: 1.5
        case .current: 0.8
        case .pressure: 0.1
        }
    }

    /// Noise-free values saturate here: a failed machine does not grow without bound.
    func saturate(_ v: Double) -> Double {
        switch self {
        case .vibration: min(v, 45)
        case .temperature: min(v, 150)
        case .current: min(v, 60)
        case .pressure: max(v, 0)
        }
    }

    /// Distance from a healthy value to the failure threshold (positive while healthy).
    func margin(from value: Double) -> Double { failsBelow ? value - failureThreshold : failureThreshold - value }

    func hasFailed(_ value: Double) -> Bool { failsBelow ? value <= failureThreshold : value >= failureThreshold }
}

/// One shift: from `start` (milliseconds into the UTC day) the plant runs at `load` (1 = full).
public struct Shift: Sendable, Equatable {
    public var start: Int64
    public var load: Double
    public init(start: Int64, load: Double) {
        self.start = start
        self.load = load
    }
}

/// The plant's daily load cycle. Load changes ramp linearly over `ramp` after each shift
/// starts, standing in for the thermal and hydraulic lag of a real changeover.
public struct LoadProfile: Sendable, Equatable {
    public static let nominal = 0.85
    public static let day: Int64 = 86_400_000

    public private(set) var shifts: [Shift]
    public var ramp: Int64

    public init(shifts: [Shift], ramp: Int64) {
        self.shifts = shifts.sorted { $0.start < $1.start }
        self.ramp = ramp
    }

    /// Three shifts: early 06-14 at full load, late 14-22 at 85 %, night 22-06 at 55 %.
    public static let threeShifts = LoadProfile(
        shifts: [Shift(start: 6 * 3_600_000, load: 1.0), Shift(start: 14 * 3_600_000, load: 0.85), Shift(start: 22 * 3_600_000, load: 0.55)],
        ramp: 15 * 60_000)

    public func load(at ts: SimTime) -> Double {
        guard !shifts.isEmpty else { return Self.nominal }
        guard shifts.count > 1 else { return shifts[0].load }
        let tod = ((ts % Self.day) + Self.day) % Self.day
        // The current shift is the last one started; before the first start, yesterday's last.
        var i = shifts.count - 1
        for (k, s) in shifts.enumerated() where s.start <= tod { i = k }
        let cur = shifts[i]
        let prev = shifts[(i + shifts.count - 1) % shifts.count]
        let since = ((tod - cur.start) % Self.day + Self.day) % Self.day
        if ramp > 0 && since < ramp {
            return prev.load + (cur.load - prev.load) * Double(since) / Double(ramp)
        }
        return cur.load
    }
}

/// Daily ambient swing of ±3 °C: coldest at 03:00 UTC, warmest at 15:00.
func ambientOffset(at ts: SimTime) -> Double {
    let hours = Double(((ts % LoadProfile.day) + LoadProfile.day) % LoadProfile.day) / 3_600_000
    return 3 * sin(2 * Double.pi * (hours - 9) / 24)
}

/// The fault kinds: five degradations of the machine and three faults of a sensor.
public enum FaultKind: String, CaseIterable, Sendable {
    case bearingWear = "bearing-wear"
    case imbalance
    case overheating
    case friction
    case leak
    case stuck
    case dropout
    case spikes

    /// Degradations end in a functional failure; sensor faults only corrupt the data.
    public var isDegradation: Bool {
        switch self {
        case .bearingWear, .imbalance, .overheating, .friction, .leak: true
        case .stuck, .dropout, .spikes: false
        }
    }

    /// The sensor whose threshold defines the functional failure.
    public var primary: PumpSensor? {
        switch self {
        case .bearingWear, .imbalance: .vibration
        case .overheating: .temperature
        case .friction: .current
        case .leak: .pressure
        case .stuck, .dropout, .spikes: nil
        }
    }

    /// What a degradation moves (the truth's `sensors`).
    public var affected: [PumpSensor] {
        switch self {
        case .bearingWear: [.vibration, .temperature]
        case .imbalance: [.vibration]
        case .overheating: [.temperature]
        case .friction: [.current, .temperature]
        case .leak: [.pressure]
        case .stuck, .dropout, .spikes: []
        }
    }
}

/// A fault resolved for one machine: absolute times, solved magnitudes, sensor indices.
public struct FaultPlan: Sendable, Equatable {
    public var kind: FaultKind
    public var onset: SimTime
    /// Sensor faults end here (nil: to the end of the run). Degradations never heal.
    public var end: SimTime?
    /// Indices into the machine's sensors.
    public var sensors: [Int]
    /// bearing-wear: amplitude (mm/s); imbalance: growth (mm/s per hour);
    /// overheating, friction, leak: rate per hour at nominal load.
    public var magnitude: Double
    /// bearing-wear: e-folding time in hours.
    public var timeConstant: Double
    /// imbalance: the step in mm/s at onset.
    public var step: Double
    /// spikes: chance that a reading is a spike.
    public var probability: Double

    func isActive(at ts: SimTime) -> Bool { ts >= onset && (end.map { ts < $0 } ?? true) }

    /// How this degradation moves `sensor` at `ts` (0 before onset and for sensor faults).
    func effect(on sensor: PumpSensor, at ts: SimTime, load: Double) -> Double {
        guard kind.isDegradation, ts >= onset else { return 0 }
        let h = Double(ts - onset) / 3_600_000
        switch (kind, sensor) {
        case (.bearingWear, .vibration):
            // Spalling grows on itself: slow at first, then accelerating.
            return bearingGrowth(h)
        case (.bearingWear, .temperature):
            // Friction heat of a damaged bearing: a few degrees by failure.
            return 0.8 * bearingGrowth(h)
        case (.imbalance, .vibration):
            return step + magnitude * h
        case (.overheating, .temperature):
            // Fouled cooling: the excess temperature scales with the heat the load produces.
            return magnitude * h * load / LoadProfile.nominal
        case (.friction, .current):
            return magnitude * h
        case (.friction, .temperature):
            return 0.4 * magnitude * h
        case (.leak, .pressure):
            return -magnitude * h
        default:
            return 0
        }
    }

    private func bearingGrowth(_ h: Double) -> Double {
        // Capped exponent: the value saturates long before this matters.
        magnitude * (exp(min(h / timeConstant, 50)) - 1)
    }
}
