// Throughput of the univariate chain (one SensorDetector, all models on) against a trivial
// loop over the same data in the same run, so machine noise affects both alike; the fleet's
// readings through the models in process (the baseline of the end-to-end figure); and the
// loader that puts the same readings into Kafka for scripts/bench-detector.
import ArgumentParser
import Detection
import Detector
import ForewarnCore
import Foundation
import Kafka
import Logging

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

        let bs = baseline.inSeconds, cs = chain.inSeconds
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
        let full = (clock.now - t2).inSeconds
        print("machine pipeline (8 sensors/vector): \(Int(Double(m) / full)) vectors/s = \(Int(Double(m * 8) / full)) readings/s [events \(events)]")
    }

    /// The fleet's readings one at a time through one `MachineDetector` per machine (what the
    /// detector service does per record, without Kafka): the models alone, then the canonical
    /// JSON decoding plus the models.
    static func runFleet(_ fleet: BenchFleet, models: MachineModels, modelsName: String) {
        var values: [[UInt8]] = []
        values.reserveCapacity(fleet.count)
        fleet.forEach { values.append($0.canonicalJSON()) }
        let readings = values.map { try! Reading.decodeCanonical($0) }
        let clock = ContinuousClock()
        func pass(decoding: Bool) -> (seconds: Double, events: Int) {
            var machines: [String: MachineDetector] = [:]
            var events = 0
            let t0 = clock.now
            for i in 0..<values.count {
                let r = decoding ? try! Reading.decodeCanonical(values[i]) : readings[i]
                events += machines[r.machine, default: MachineDetector(config: models.configuration(machine: r.machine, site: r.site))]
                    .observe(ts: r.ts, sensor: r.sensor, value: r.value).count
            }
            return ((clock.now - t0).inSeconds, events)
        }
        let shape = "\(fleet.machines) machines x \(fleet.sensors) sensors, \(fleet.count) readings, models \(modelsName)"
        let m = pass(decoding: false)
        print("fleet models in process (\(shape)): \(Int(Double(fleet.count) / m.seconds)) readings/s [events \(m.events)]")
        let d = pass(decoding: true)
        print("fleet decode + models in process (\(shape)): \(Int(Double(fleet.count) / d.seconds)) readings/s [events \(d.events)]")
    }

    /// Writes the fleet's readings to `topic` as the gateway's forwarder does (key = machine,
    /// canonical JSON value, headers gateway/seq/mqtt_topic) and waits for every delivery report.
    static func load(_ fleet: BenchFleet, bootstrap: String, topic: String) throws {
        let producer = try KafkaProducer(bootstrap: bootstrap, properties: ["linger.ms": "20", "batch.num.messages": "10000"],
                                         logger: Logger(label: "forewarn.bench"))
        let clock = ContinuousClock()
        let t0 = clock.now
        var seq = 0, delivered = 0, failed: KafkaError?
        func drain(_ timeout: Duration) {
            for e in producer.poll(timeout: timeout, max: 100_000) {
                switch e {
                case .delivered: delivered += 1
                case let .failed(_, error): failed = error
                case let .error(error, fatal): if fatal { failed = error }
                }
            }
        }
        fleet.forEach { r in
            seq += 1
            while true {
                do throws(KafkaError) {
                    try producer.produce(topic: topic, key: Array(r.machine.utf8), value: r.canonicalJSON(),
                                         headers: BenchFleet.headers(r, seq: seq), id: UInt64(seq))
                    break
                } catch {
                    if error.kind != .queueFull { failed = error; break }
                    drain(.milliseconds(10))
                }
            }
            if seq % 10_000 == 0 { drain(.zero) }
        }
        let deadline = clock.now + .seconds(120)
        while delivered < seq && failed == nil && clock.now < deadline { drain(.milliseconds(100)) }
        if let failed { throw ValidationError("detector-load: \(failed)") }
        guard delivered == seq else { throw ValidationError("detector-load: \(delivered) of \(seq) delivered within 120 s") }
        try checkRetained(seq, bootstrap: bootstrap, topic: topic)
        print("loaded \(seq) readings (\(fleet.machines) machines x \(fleet.sensors) sensors x \(fleet.perSensor)) into \(topic) in \(String(format: "%.2f", (clock.now - t0).inSeconds)) s")
    }

    /// Every loaded record must still be in the topic: dev-kafka's mock broker keeps a bounded log
    /// per partition and drops the oldest records beyond it (~160,000 of these records per partition).
    static func checkRetained(_ count: Int, bootstrap: String, topic: String) throws {
        let consumer = try KafkaConsumer(bootstrap: bootstrap, groupID: "forewarn-bench-load", logger: Logger(label: "forewarn.bench"))
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic, timeout: .seconds(10))
        let marks = consumer.watermarks((0..<Int32(partitions)).map { TopicPartition(topic: topic, partition: $0) }, timeout: .seconds(10))
        let dropped = marks.values.reduce(0) { $0 + $1.low }
        let held = marks.values.reduce(0) { $0 + $1.high - $1.low }
        guard marks.count == partitions, dropped == 0, held == Int64(count) else {
            throw ValidationError("detector-load: \(topic) holds \(held) of the \(count) readings (\(dropped) dropped by the broker's retention, \(partitions - marks.count) partitions unanswered); dev-kafka keeps ~160,000 such records per partition: load fewer readings or use more partitions")
        }
    }

    static func format1(_ x: Double) -> String {
        let v = (x * 10).rounded() / 10
        return String(v)
    }
}
