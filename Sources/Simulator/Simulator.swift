// Simulator plays a fleet of machines with sensor physics and injected faults, and
// publishes their readings over MQTT. It owns:
//  - scenarios (`Scenario`): YAML files in simulators/ with sites, machine types, machines,
//    a fault schedule or seeded random faults; strict parsing whose errors name the key;
//  - the physics (`MachineSimulator`, `FleetSimulator`): pure value types, no I/O, no clock.
//    Readings carry simulated time, and one seed gives the same readings and truth every run;
//  - ground truth (`FaultTruth`): when each injected fault starts and when a degradation
//    becomes a functional failure (its noise-free primary sensor crosses the failure threshold);
//  - publishing (`SimulationRunner`): paces the physics against the wall clock at a speed
//    factor and publishes QoS 1 to `factory/{site}/{machine}/{sensor}`.
// The failure thresholds are the ones the detector uses in models/pump.yaml.
import Foundation

/// Simulated time: epoch milliseconds.
public typealias SimTime = Int64

/// 2026-01-01T00:00:00Z, the default simulated start, so that output is reproducible.
public let defaultSimulationStart: SimTime = 1_767_225_600_000

/// Durations as people write them: `90`, `90s`, `30m`, `6h`, `1d`, `1h30m`, `1.5h`, `250ms`.
/// A bare number is seconds. Returns milliseconds, or nil when the text is not a duration.
public func parseSimDuration(_ raw: String) -> Int64? {
    let s = raw.trimmingCharacters(in: .whitespaces)
    if s.isEmpty { return nil }
    if let v = Double(s) { return v.isFinite && v >= 0 ? Int64((v * 1000).rounded()) : nil }
    var total = 0.0
    var rest = Substring(s)
    while !rest.isEmpty {
        let number = rest.prefix { $0.isNumber || $0 == "." }
        guard !number.isEmpty, let v = Double(number), v.isFinite else { return nil }
        rest = rest.dropFirst(number.count)
        let unit = rest.prefix { $0.isLetter }
        rest = rest.dropFirst(unit.count)
        let scale: Double
        switch unit {
        case "ms": scale = 0.001
        case "s": scale = 1
        case "m", "min": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        total += v * scale
    }
    return Int64((total * 1000).rounded())
}

/// Formats milliseconds as a short duration (`1h30m`, `45s`, `250ms`) for logs and reports.
public func formatSimDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    if ms % 1000 != 0 && ms < 60_000 { return "\(ms)ms" }
    var s = ms / 1000
    var out = ""
    for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60)] where s >= size {
        out += "\(s / size)\(unit)"
        s %= size
    }
    if s > 0 || out.isEmpty { out += "\(s)s" }
    return out
}
