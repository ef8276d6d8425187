// Integration tests of the gateway with real parts: mosquitto on a free loopback port,
// `forewarn dev-kafka` (librdkafka's mock cluster over TCP) and the `forewarn gateway`
// binary, checked by consuming from Kafka with a real librdkafka consumer.
import Foundation
import Kafka
import Testing
import TestSupport

/// Everything one test starts; `stop()` stops all of it.
final class Pipeline: @unchecked Sendable {
    let dir: String
    let broker: MosquittoBroker
    let kafka: DevKafka
    var gateway: GatewayProcess?
    let stateDir: String
    let settings: [String]

    init(_ name: String, settings: [String] = []) throws {
        dir = TestEnvironment.temporaryDirectory(name)
        stateDir = dir + "/state"
        broker = try MosquittoBroker(directory: dir)
        kafka = try DevKafka(directory: dir)
        self.settings = settings
    }

    @discardableResult
    func startGateway(name: String = "gateway") throws -> GatewayProcess {
        let g = try GatewayProcess(directory: dir, name: name, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: stateDir, settings: settings)
        // Wait until the gateway holds its MQTT session, so nothing published next is missed.
        let (status, body) = g.waitForHealth(timeout: 15) { _, body in body.contains("\"subscribed\":true") }
        guard body.contains("\"subscribed\":true") else { throw TestFailure("gateway not connected (\(status)): \(body) \(g.child.stderr)") }
        gateway = g
        return g
    }

    func stop() {
        gateway?.child.stop()
        kafka.stop()
        broker.stop()
    }
}

/// How many published readings never arrived.
func missing(_ published: [PublishedReading], _ received: [ReceivedReading]) -> Int {
    Set(published).subtracting(received.map(\.reading)).count
}

@Suite("Gateway delivery, with mosquitto and dev-kafka", .serialized)
struct GatewayDeliveryTests {
    @Test("every accepted reading arrives exactly once, keyed by machine, with canonical value and headers")
    func normalDelivery() throws {
        let p = try Pipeline("normal")
        defer { p.stop() }
        try p.startGateway()
        let publisher = try TestPublisher(url: p.broker.url)
        let published = try publishReadings(publisher, count: 2000, machines: 20)
        #expect(publisher.finish())

        let messages = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 2000, timeout: 60)
        let received = parseReceived(messages)
        #expect(messages.count == 2000)
        #expect(received.count == 2000)
        #expect(missing(published, received) == 0)
        #expect(Set(received.map(\.seq)).count == 2000, "each record has its own journal seq")
        #expect(received.allSatisfy { $0.key == $0.reading.machine })
        #expect(received.allSatisfy { $0.gateway == "gw-test" })
        #expect(received.allSatisfy { $0.mqttTopic == "factory/s1/\($0.reading.machine)/vib_rms" })
        let sample = try #require(received.first(where: { $0.reading.ts == 1_700_000_000_005 }))
        #expect(sample.value == #"{"site":"s1","machine":"m005","sensor":"vib_rms","ts":1700000000005,"value":0.5,"unit":"mm/s"}"#)
        #expect(perMachineOrderViolations(received).isEmpty)
        // Every reading was delivered, so the journal is empty and the counters agree.
        let health = p.gateway!.waitForHealth(timeout: 5) { _, b in b.contains("\"entries\":0,") }
        #expect(health.0 == 200)
        #expect(p.gateway!.metric("forewarn_gateway_readings_out_total") == 2000)
        #expect(p.gateway!.metric("forewarn_gateway_readings_in_total") == 2000)
    }

    @Test("Kafka down for seconds while publishing continues: nothing lost, per-machine order kept")
    func kafkaOutage() throws {
        try outage(settings: [], checkOrder: true)
    }

    @Test("with a finite message.timeout.ms, records that expire go back to the journal: nothing lost")
    func kafkaOutageWithTimeouts() throws {
        // librdkafka expires records during the outage, which exercises the journal re-queue
        // path. Order is not asserted: a record that expires in flight can land after later ones.
        try outage(settings: ["kafka.properties.message.timeout.ms=1500"], checkOrder: false)
    }

    func outage(settings: [String], checkOrder: Bool) throws {
        let p = try Pipeline("outage", settings: settings)
        defer { p.stop() }
        let gateway = try p.startGateway()
        let publisher = try TestPublisher(url: p.broker.url)
        var published: [PublishedReading] = []
        published += try publishReadings(publisher, count: 1000, machines: 10, startTs: 1_700_000_000_000)
        p.kafka.brokersDown()
        let downAt = Date()
        published += try publishReadings(publisher, count: 2000, machines: 10, startTs: 1_700_000_100_000) { _ in
            Thread.sleep(forTimeInterval: 0.002)  // keep publishing through the whole outage
        }
        // Health turns 503 once Kafka has been unreachable for longer than the 2 s grace.
        let unhealthy = gateway.waitForHealth(timeout: 15) { s, _ in s == 503 }
        #expect(unhealthy.0 == 503)
        #expect(unhealthy.1.contains("kafka unreachable"))
        while Date().timeIntervalSince(downAt) < 6 { Thread.sleep(forTimeInterval: 0.1) }
        p.kafka.brokersUp()
        published += try publishReadings(publisher, count: 1000, machines: 10, startTs: 1_700_000_200_000)
        #expect(publisher.finish())

        let raw = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 4000, timeout: 90, settle: 2)
        let received = parseReceived(raw)
        if let dump = ProcessInfo.processInfo.environment["TEST_DUMP"] {
            let lines = raw.map { "p\($0.partition) o\($0.offset) seq \($0.header("seq") ?? "") \(String(decoding: $0.value, as: UTF8.self))" }
            try lines.joined(separator: "\n").write(toFile: dump, atomically: true, encoding: .utf8)
            try? FileManager.default.copyItem(atPath: gateway.child.stderrPath, toPath: dump + ".gateway.err")
        }
        #expect(missing(published, received) == 0)
        if checkOrder { #expect(perMachineOrderViolations(received).isEmpty) }
        // Any duplicate is a re-send of the same journal entry: same (gateway, seq) and content.
        var bySeq: [Int64: PublishedReading] = [:]
        for r in received {
            if let prior = bySeq[r.seq] { #expect(prior == r.reading) }
            bySeq[r.seq] = r.reading
        }
        #expect(bySeq.count == 4000)
        let healthy = gateway.waitForHealth(timeout: 20) { s, _ in s == 200 }
        #expect(healthy.0 == 200)
    }

    @Test("SIGTERM mid-stream, then restart: nothing lost, nothing duplicated")
    func sigtermRestart() throws {
        let p = try Pipeline("sigterm")
        defer { p.stop() }
        let first = try p.startGateway(name: "gateway-1")
        let publisher = try TestPublisher(url: p.broker.url)
        var published = try publishReadings(publisher, count: 1500, machines: 15)
        first.child.signal(SIGTERM)
        // Publishing goes on while the gateway is away: the broker queues for its persistent session.
        published += try publishReadings(publisher, count: 1500, machines: 15, startTs: 1_700_000_100_000)
        #expect(first.child.waitForExit(timeout: 20) == 0, "graceful exit: \(first.child.stderr.suffix(500))")
        try p.startGateway(name: "gateway-2")
        published += try publishReadings(publisher, count: 1000, machines: 15, startTs: 1_700_000_200_000)
        #expect(publisher.finish())

        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 4000, timeout: 60, settle: 2))
        #expect(received.count == 4000, "exactly once across a graceful restart")
        #expect(missing(published, received) == 0)
        #expect(Set(received.map(\.seq)).count == received.count)
        #expect(perMachineOrderViolations(received).isEmpty)
    }

    @Test("SIGKILL mid-stream, then restart: duplicates share (gateway, seq); loss is at most the uncommitted batch")
    func sigkillRestart() throws {
        let commitEvery = 200
        let p = try Pipeline("sigkill", settings: ["journal.commit-every=\(commitEvery)", "journal.commit-interval=20ms"])
        defer { p.stop() }
        let first = try p.startGateway(name: "gateway-1")
        let publisher = try TestPublisher(url: p.broker.url)
        var published = try publishReadings(publisher, count: 2000, machines: 20) { i in
            if i == 1500 { first.child.signal(SIGKILL) }
        }
        #expect(first.child.waitForExit(timeout: 10) != nil)
        try p.startGateway(name: "gateway-2")
        published += try publishReadings(publisher, count: 1000, machines: 20, startTs: 1_700_000_100_000)
        #expect(publisher.finish())

        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 3000, timeout: 60, settle: 2))
        let unique = Set(received.map(\.reading))
        let lost = Set(published).subtracting(unique).count
        var seqOf: [PublishedReading: Int64] = [:]
        var duplicates = 0
        for r in received {
            if let s = seqOf[r.reading] {
                duplicates += 1
                #expect(s == r.seq, "a duplicate carries the same seq")
            }
            seqOf[r.reading] = r.seq
        }
        print("sigkill: published \(published.count), received \(received.count), duplicates \(duplicates), lost \(lost) (bound: \(commitEvery))")
        #expect(lost <= commitEvery)
        #expect(perMachineOrderViolations(received).isEmpty)
    }
}
