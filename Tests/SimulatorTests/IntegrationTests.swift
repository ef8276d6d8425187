import ForewarnCore
import Foundation
import Logging
import MQTT
import Synchronization
import Testing
import TestSupport
@testable import Simulator

/// A QoS 1 subscriber on `factory/#` that records what arrives, on its own loop thread.
final class RecordingSubscriber: @unchecked Sendable {
    struct Received {
        var messages = 0
        var values = 0
        var invalid: [String] = []
        var tsByTopic: [String: [Int64]] = [:]
    }
    let client: MQTTClient
    let received = Mutex(Received())
    private let loopEnded = DispatchSemaphore(value: 0)

    init(port: Int) throws {
        client = try MQTTClient(options: MQTTOptions(host: "127.0.0.1", port: port, clientID: "sim-sub-\(UUID().uuidString.prefix(8))",
                                                     cleanSession: true, reconnectMin: .milliseconds(50), reconnectMax: .milliseconds(500)),
                                logger: TestEnvironment.logger)
        client.subscribe("factory/#", qos: 1)
        client.onMessage = { [weak self] msg in
            guard let self else { return }
            // Parse outside the lock; the loop thread is the only writer.
            var values = 0
            var ts: Int64?
            var problem: String?
            if case let .object(members)? = try? JSONParser.parse(msg.payload) {
                let json = JSONValue.object(members)
                if case let .integer(t)? = json["ts"] { ts = t } else { problem = "no integer ts" }
                if let v = json["value"], v.doubleValue != nil, case .string? = json["unit"] { values = 1 }
                else if case let .object(vs)? = json["values"], vs.allSatisfy({ $0.1.doubleValue != nil }) { values = vs.count }
                else { problem = "neither value+unit nor values" }
            } else {
                problem = "not a JSON object"
            }
            self.received.withLock { r in
                r.messages += 1
                r.values += values
                if let problem { r.invalid.append("\(msg.topic): \(problem): \(String(decoding: msg.payload, as: UTF8.self))") }
                if let ts { r.tsByTopic[msg.topic, default: []].append(ts) }
            }
        }
        let c = client, done = loopEnded
        Thread { c.run(); done.signal() }.start()
        let deadline = Date().addingTimeInterval(10)
        while !client.isSubscribed && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        guard client.isSubscribed else { stop(); throw TestFailure("subscriber did not subscribe: \(client.lastError ?? "")") }
    }

    /// Waits (bounded) until `count` messages have arrived, then a little longer to catch extras.
    func waitFor(messages count: Int, timeout: TimeInterval) -> Received {
        let deadline = Date().addingTimeInterval(timeout)
        while received.withLock({ $0.messages }) < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.3)
        return received.withLock { $0 }
    }

    func stop() {
        client.stop()
        _ = loopEnded.wait(timeout: .now() + 5)
    }
}

@Suite(.serialized) struct IntegrationTests {
    static let logger: Logger = {
        var l = Logger(label: "forewarn.simulate.test")
        l.logLevel = .warning
        return l
    }()

    static func publisherOptions(_ broker: MosquittoBroker) -> MQTTOptions {
        MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "sim-pub-\(UUID().uuidString.prefix(8))", cleanSession: true,
                    reconnectMin: .milliseconds(50), reconnectMax: .milliseconds(500), maxInflight: 100)
    }

    @Test(.timeLimit(.minutes(2)))
    func everyPublishedReadingReachesASubscriber() throws {
        let broker = try MosquittoBroker(directory: TestEnvironment.temporaryDirectory("sim"))
        defer { broker.stop() }
        let subscriber = try RecordingSubscriber(port: broker.port)
        defer { subscriber.stop() }

        let fleet = try FleetSimulator(scenario: try shippedScenario("default.yaml"), seed: 42)
        let runner = SimulationRunner(fleet: fleet, payload: .object, mqtt: Self.publisherOptions(broker), logger: Self.logger)
        // 10 simulated minutes at 3000x: at least 0.2 s of wall time.
        let summary = try runner.run(duration: 10 * minute, speed: 3000, stop: StopFlag())
        #expect(summary.readings == 6 * 4 * 600)
        #expect(summary.messages == summary.readings)
        #expect(summary.acknowledged)
        #expect(!summary.stoppedEarly && summary.error == nil)
        #expect(summary.simulated == 10 * minute)
        #expect(summary.wallSeconds >= 0.19, "pacing: 10 simulated minutes at 3000x take 0.2 s")

        let got = subscriber.waitFor(messages: summary.messages, timeout: 30)
        #expect(got.messages == summary.messages)
        #expect(got.values == summary.readings)
        #expect(got.invalid.isEmpty, "\(got.invalid.prefix(3))")
        #expect(got.tsByTopic.count == 24)
        #expect(got.tsByTopic.keys.contains("factory/s1/p2/vib_rms"))
        for (topic, ts) in got.tsByTopic {
            #expect(ts.count == 600, "\(topic)")
            #expect(zip(ts, ts.dropFirst()).allSatisfy { $0 < $1 }, "ts not rising on \(topic)")
            #expect(ts.first == defaultSimulationStart && ts.last == defaultSimulationStart + 599_000)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func stoppingEarlyStillAccountsForEveryReading() throws {
        let broker = try MosquittoBroker(directory: TestEnvironment.temporaryDirectory("sim-stop"))
        defer { broker.stop() }
        let subscriber = try RecordingSubscriber(port: broker.port)
        defer { subscriber.stop() }

        let fleet = try FleetSimulator(scenario: try shippedScenario("default.yaml"), seed: 42)
        let runner = SimulationRunner(fleet: fleet, payload: .batch, mqtt: Self.publisherOptions(broker), logger: Self.logger)
        let stop = StopFlag()
        // Stop once readings are flowing (the subscriber has one), bounded to 20 s.
        let sub = subscriber
        Thread {
            let until = Date().addingTimeInterval(20)
            while sub.received.withLock({ $0.messages }) == 0 && Date() < until { Thread.sleep(forTimeInterval: 0.01) }
            stop.stop()
        }.start()
        // Unbounded duration: only the stop request ends it.
        let summary = try runner.run(duration: nil, speed: 600, stop: stop)
        #expect(summary.stoppedEarly)
        #expect(summary.acknowledged)
        #expect(summary.readings > 0)
        #expect(summary.readings == summary.messages * 4)

        let got = subscriber.waitFor(messages: summary.messages, timeout: 30)
        #expect(got.messages == summary.messages)
        #expect(got.values == summary.readings)
        #expect(got.invalid.isEmpty, "\(got.invalid.prefix(3))")
        #expect(Set(got.tsByTopic.keys) == Set((1...6).map { "factory/s1/p\($0)/batch" }))
        for (topic, ts) in got.tsByTopic {
            #expect(zip(ts, ts.dropFirst()).allSatisfy { $0 < $1 }, "ts not rising on \(topic)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func unreachableBrokerIsAnErrorNotAHang() throws {
        var options = MQTTOptions(host: "127.0.0.1", port: freePort(), clientID: "sim-nobody", cleanSession: true,
                                  reconnectMin: .milliseconds(50), reconnectMax: .milliseconds(200))
        options.maxInflight = 10
        let fleet = try FleetSimulator(scenario: try shippedScenario("default.yaml"), seed: 1)
        let runner = SimulationRunner(fleet: fleet, payload: .object, mqtt: options, logger: Self.logger)
        runner.connectTimeout = .seconds(1)
        #expect(throws: SimulationError.self) { try runner.run(duration: minute, speed: 1000, stop: StopFlag()) }
    }
}
