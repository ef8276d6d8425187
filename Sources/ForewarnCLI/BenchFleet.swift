// The readings the detector benchmarks feed: a fleet of healthy pumps (the sensors of
// models/pump.yaml), one reading per sensor per second, in the gateway's Kafka record format.
// The same stream goes through the in-process figure (`forewarn bench detector`) and the
// end-to-end one (`forewarn bench detector-load`, then the real detector, scripts/bench-detector),
// so the two are measured on identical work.
import Detection
import ForewarnCore
import Kafka

struct BenchFleet {
    var machines: Int
    var sensors: Int
    var perSensor: Int

    /// Healthy operating point and noise of the pump's sensors (models/pump.yaml's order).
    static let profile: [(name: String, unit: String, level: Double, noise: Double)] = [
        ("vib_rms", "mm/s", 2.0, 0.15), ("temp_c", "°C", 60, 0.8),
        ("current_a", "A", 20, 0.4), ("pressure_bar", "bar", 6, 0.08),
    ]
    static let start: Int64 = 1_764_547_200_000  // 2025-12-01T00:00:00Z

    var count: Int { machines * sensors * perSensor }

    func machineID(_ m: Int) -> String { "m" + String(1000 + m).dropFirst() }

    func sensor(_ s: Int) -> (name: String, unit: String, level: Double, noise: Double) {
        let p = Self.profile[s % Self.profile.count]
        return s < Self.profile.count ? p : (p.name + "_\(s / Self.profile.count)", p.unit, p.level, p.noise)
    }

    /// Every reading in the order a gateway forwards them: second by second, machine by
    /// machine, sensor by sensor (each machine's `ts` increasing). Deterministic.
    func forEach(_ body: (Reading) -> Void) {
        var rng = SplitMix64(seed: 11)
        let ids = (0..<machines).map(machineID)
        let specs = (0..<sensors).map(sensor)
        for t in 0..<perSensor {
            let ts = Self.start + Int64(t) * 1000
            for id in ids {
                for s in specs {
                    let value = ((s.level + s.noise * rng.nextGaussian()) * 1000).rounded() / 1000
                    body(Reading(site: "s1", machine: id, sensor: s.name, ts: ts, value: value, unit: s.unit))
                }
            }
        }
    }

    /// The gateway's headers for a reading (DESIGN.md: gateway, seq, mqtt_topic).
    static func headers(_ r: Reading, seq: Int) -> [KafkaHeader] {
        [KafkaHeader("gateway", "bench"), KafkaHeader("seq", String(seq)),
         KafkaHeader("mqtt_topic", "factory/\(r.site)/\(r.machine)/\(r.sensor)")]
    }
}
