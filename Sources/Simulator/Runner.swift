// Publishing: paces the physics against the wall clock and publishes each reading QoS 1.
// The physics never sees the clock; this loop only asks it for "everything before T".
import Foundation
import Logging
import MQTT
import Synchronization

/// Set from a signal handler or another thread to end a run early; the run still waits
/// for its acknowledgements and reports what it published.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .relaxed) }
    public var isStopped: Bool { flag.load(ordering: .relaxed) }
}

public struct RunSummary: Sendable {
    /// Readings whose publish the client accepted (a batch message counts each of its values).
    public var readings: Int
    public var messages: Int
    /// Simulated time covered, ms.
    public var simulated: Int64
    /// Wall time from the first publish to the last acknowledgement.
    public var wallSeconds: Double
    /// Every QoS 1 publish was acknowledged by the broker.
    public var acknowledged: Bool
    public var stoppedEarly: Bool
    /// Why the run ended before its end, other than a stop request.
    public var error: String?
    public var readingsPerSecond: Double { wallSeconds > 0 ? Double(readings) / wallSeconds : 0 }
}

public struct SimulationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns readings into topics and payloads, with everything per sensor precomputed:
/// at 50,000 readings a second, string building is most of the work.
public struct PayloadEncoder: Sendable {
    public let form: PayloadForm
    /// [machine][sensor] topic, and [machine] batch topic.
    let topics: [[String]]
    let batchTopics: [String]
    let sensorNames: [[[UInt8]]]
    let unitSuffixes: [[[UInt8]]]

    public init(fleet: FleetSimulator, form: PayloadForm) {
        self.form = form
        let template = fleet.scenario.topic
        func topic(_ m: MachineSimulator, _ sensor: String) -> String {
            template.replacingOccurrences(of: "{site}", with: m.spec.site)
                .replacingOccurrences(of: "{machine}", with: m.spec.id)
                .replacingOccurrences(of: "{sensor}", with: sensor)
        }
        topics = fleet.machines.map { m in m.sensors.map { topic(m, $0.name) } }
        batchTopics = fleet.machines.map { topic($0, "batch") }
        sensorNames = fleet.machines.map { m in m.sensors.map { Array("\"\($0.name)\":".utf8) } }
        unitSuffixes = fleet.machines.map { m in m.sensors.map { Array(",\"unit\":\"\($0.unit)\"}".utf8) } }
    }

    /// Calls `emit(topic, payload, readings)` for each message `readings` make, in order.
    public func encode<E: Error>(_ readings: ArraySlice<SimReading>, _ emit: (String, [UInt8], Int) throws(E) -> Void) throws(E) {
        var buf: [UInt8] = []
        buf.reserveCapacity(256)
        switch form {
        case .object:
            for r in readings {
                buf.removeAll(keepingCapacity: true)
                buf.append(contentsOf: #"{"ts":"#.utf8)
                appendInteger(r.ts, to: &buf)
                buf.append(contentsOf: #","value":"#.utf8)
                appendNumber(r.value, to: &buf)
                buf.append(contentsOf: unitSuffixes[r.machine][r.sensor])
                try emit(topics[r.machine][r.sensor], buf, 1)
            }
        case .plain:
            for r in readings {
                buf.removeAll(keepingCapacity: true)
                appendNumber(r.value, to: &buf)
                try emit(topics[r.machine][r.sensor], buf, 1)
            }
        case .batch:
            // One message per machine and instant: the physics emits those readings together.
            var i = readings.startIndex
            while i < readings.endIndex {
                let first = readings[i]
                buf.removeAll(keepingCapacity: true)
                buf.append(contentsOf: #"{"ts":"#.utf8)
                appendInteger(first.ts, to: &buf)
                buf.append(contentsOf: #","values":{"#.utf8)
                var n = 0
                while i < readings.endIndex, readings[i].machine == first.machine, readings[i].ts == first.ts {
                    if n > 0 { buf.append(UInt8(ascii: ",")) }
                    buf.append(contentsOf: sensorNames[first.machine][readings[i].sensor])
                    appendNumber(readings[i].value, to: &buf)
                    n += 1
                    i += 1
                }
                buf.append(contentsOf: "}}".utf8)
                try emit(batchTopics[first.machine], buf, n)
            }
        }
    }

    /// The topic a reading goes to (for tests and logs).
    public func topic(for r: SimReading) -> String { form == .batch ? batchTopics[r.machine] : topics[r.machine][r.sensor] }

    private func appendInteger(_ v: Int64, to buf: inout [UInt8]) {
        var x = v.magnitude
        if v < 0 { buf.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
                n += 1
            } while x > 0
            for k in stride(from: n - 1, through: 0, by: -1) { buf.append(d[k]) }
        }
    }

    /// Integral values without a fraction, as ForewarnCore's JSONWriter writes them.
    private func appendNumber(_ v: Double, to buf: inout [UInt8]) {
        if v == v.rounded(), abs(v) < 1e15 { appendInteger(Int64(v), to: &buf) } else { buf.append(contentsOf: v.description.utf8) }
    }
}

/// Runs a fleet against an MQTT broker: `duration` of simulated time at `speed` times real time.
public final class SimulationRunner {
    private var fleet: FleetSimulator
    private let encoder: PayloadEncoder
    private let options: MQTTOptions
    private let logger: Logger
    public var connectTimeout: Duration = .seconds(10)
    public var acknowledgementTimeout: Duration = .seconds(30)
    public var progressInterval: Double = 5

    public init(fleet: FleetSimulator, payload: PayloadForm, mqtt: MQTTOptions, logger: Logger) {
        self.fleet = fleet
        self.encoder = PayloadEncoder(fleet: fleet, form: payload)
        self.options = mqtt
        self.logger = logger
    }

    /// Publishes until `duration` of simulated time is done (nil: until stopped), or `stop` is set.
    /// Throws only when the broker cannot be reached at the start.
    public func run(duration: Int64?, speed: Double, stop: StopFlag) throws(SimulationError) -> RunSummary {
        precondition(speed > 0, "speed must be positive")
        let client: MQTTClient
        do { client = try MQTTClient(options: options, logger: logger) } catch { throw SimulationError(error.description) }
        let loopEnded = DispatchSemaphore(value: 0)
        let thread = Thread { client.run(); loopEnded.signal() }
        thread.name = "mqtt-simulate"
        thread.start()
        defer {
            client.stop()
            if loopEnded.wait(timeout: .now() + 5) == .timedOut { logger.warning("MQTT loop did not end within 5 s") }
        }

        let connectDeadline = ContinuousClock.now + connectTimeout
        while !client.isConnected && ContinuousClock.now < connectDeadline && !stop.isStopped { Thread.sleep(forTimeInterval: 0.02) }
        guard client.isConnected else {
            throw SimulationError("cannot connect to MQTT broker \(options.host):\(options.port): \(client.lastError ?? "timed out")")
        }

        let start = fleet.start
        let end = duration.map { start + $0 } ?? SimTime.max
        // Small steps keep stop requests and progress prompt, and the batch buffer small.
        let step: Int64 = 5_000
        var summary = RunSummary(readings: 0, messages: 0, simulated: 0, wallSeconds: 0, acknowledged: false, stoppedEarly: false)
        var buffer: [SimReading] = []
        buffer.reserveCapacity(8192)
        let clock = ContinuousClock()
        let t0 = clock.now
        var lastProgress = 0.0
        var lastProgressReadings = 0
        func elapsed() -> Double {
            let d = clock.now - t0
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        logger.info("simulating \(fleet.machines.count) machines from ts \(start) for \(duration.map(formatSimDuration) ?? "ever") at speed \(speed)x")

        var sim = start
        loop: while sim < end {
            if stop.isStopped { summary.stoppedEarly = true; break }
            let now = elapsed()
            // Everything stamped up to the paced simulated instant is due.
            let paced = speed.isInfinite ? end : start &+ Int64(min(now * speed * 1000, 9e15)) &+ 1
            let target = min(end, paced, sim + step)
            if target <= sim {
                let nextDue = fleet.machines.map(\.nextDue).min() ?? end
                let wait = Double(nextDue - start) / (speed * 1000) - now
                Thread.sleep(forTimeInterval: min(max(wait, 0.0005), 0.1))
                continue
            }
            buffer.removeAll(keepingCapacity: true)
            fleet.advance(until: target, into: &buffer)
            do {
                try encoder.encode(buffer[...]) { (topic, payload, n) throws(MQTTError) in
                    if stop.isStopped { return }
                    try client.publish(topic: topic, payload: payload, qos: 1, timeout: .seconds(30))
                    summary.readings += n
                    summary.messages += 1
                }
            } catch {
                summary.error = error.description
                logger.error("publishing failed, stopping: \(error)")
                break loop
            }
            sim = target
            summary.simulated = sim - start
            if now - lastProgress >= progressInterval {
                let rate = Double(summary.readings - lastProgressReadings) / max(now - lastProgress, 1e-9)
                logger.info("simulated \(formatSimDuration(summary.simulated)), published \(summary.readings) readings (\(Int(rate)) readings/s)")
                lastProgress = now
                lastProgressReadings = summary.readings
            }
        }
        if stop.isStopped { summary.stoppedEarly = true }
        summary.acknowledged = client.waitForAcknowledgements(timeout: acknowledgementTimeout)
        if !summary.acknowledged { logger.error("not every publish was acknowledged within \(acknowledgementTimeout)") }
        summary.wallSeconds = elapsed()
        return summary
    }
}
