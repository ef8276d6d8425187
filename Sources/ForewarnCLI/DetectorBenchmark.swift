// Throughput of the univariate chain (one SensorDetector, all models on) against a trivial
// loop over the same data in the same run, so machine noise affects both alike.
import Detection
import Foundation

enum DetectorBenchmark {
    static func run(readings n: Int) {
        var rng = SplitMix64(seed: 42)
        let data = (0..<65_536).map { _ in 50 + 2 * rng.nextGaussian() }
        let mask = data.count - 1
        let clock = ContinuousClock()

        // Baseline: an EWMA over the same stream (a loop that cannot be optimised away).
        var acc = 0.0
        let t0 = clock.now
        for i in 0..<n { acc += 0.01 * (data[i & mask] - acc) }
        let baseline = clock.now - t0

        var spec = SensorSpec(name: "vib_rms", unit: "mm/s", physicalMin: 0, physicalMax: 1000,
                              limits: [StaticLimit(max: 80, severity: .warning), StaticLimit(max: 95, severity: .critical)],
                              failureThreshold: 100)
        spec.unit = "mm/s"
        var det = SensorDetector(spec: spec, warmupCount: 400)
        var sink = 0.0
        let t1 = clock.now
        for i in 0..<n {
            let o = det.observe(ts: Int64(i) * 1000, value: data[i & mask])
            sink += o.cusumRatio + o.gaussianTailRatio
        }
        let chain = clock.now - t1

        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let bs = seconds(baseline), cs = seconds(chain)
        print("readings: \(n)")
        print("baseline loop: \(Int(Double(n) / bs)) readings/s (\(String(bs)) s) [\(acc)]")
        print("univariate chain: \(Int(Double(n) / cs)) readings/s (\(String(cs)) s) [\(sink > 0 ? "ok" : "?")]")
        print("chain cost: \(String(format1(cs / Double(n) * 1e9))) ns/reading")

        // Full machine pipeline (8 sensors, PCA, fusion, lifecycle) for context.
        let m = min(n / 20, 500_000)
        var md = MachineDetector(config: DetectorConfiguration(machine: "bench"))
        let names = (0..<8).map { "s\($0)" }
        var vals: [String: Double] = [:]
        let t2 = clock.now
        var events = 0
        for i in 0..<m {
            for (k, s) in names.enumerated() { vals[s] = data[(i * 8 + k) & mask] }
            events += md.observe(ts: Int64(i) * 1000, values: vals).count
        }
        let full = seconds(clock.now - t2)
        print("machine pipeline (8 sensors/vector): \(Int(Double(m) / full)) vectors/s = \(Int(Double(m * 8) / full)) readings/s [events \(events)]")
    }

    static func format1(_ x: Double) -> String {
        let v = (x * 10).rounded() / 10
        return String(v)
    }
}
