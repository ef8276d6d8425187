// Journal bounds, bad input, bad configuration, corrupt journals, TLS and passwords:
// each against the real binary, broker and dev-kafka.
import Foundation
import Kafka
import Testing
import TestSupport

@Suite("Gateway under stress and bad input", .serialized)
struct GatewayRobustnessTests {
    @Test("journal full under drop-oldest: drops are counted per machine and health reports them")
    func dropOldest() throws {
        // ~250 bytes per entry: a 32 KiB journal holds ~130 readings.
        let p = try Pipeline("drop-oldest", settings: ["journal.max-bytes=32KiB", "journal.full-policy=drop-oldest"])
        defer { p.stop() }
        let gateway = try p.startGateway()
        p.kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }
        let publisher = try TestPublisher(url: p.broker.url)
        let published = try publishReadings(publisher, count: 1000, machines: 4)
        #expect(publisher.finish())

        // The broker hands the gateway everything (drop-oldest never pauses intake).
        let deadline = Date().addingTimeInterval(20)
        while gateway.metric("forewarn_gateway_mqtt_messages_total") < 1000 && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(gateway.metric("forewarn_gateway_mqtt_messages_total") == 1000)
        let (status, body) = gateway.waitForHealth(timeout: 10) { s, b in s == 503 && b.contains("dropped") }
        #expect(status == 503)
        #expect(body.contains("journal dropped data"))
        let dropped = gateway.metric("forewarn_gateway_dropped_total")
        let perMachine = (0..<4).map { gateway.metric("forewarn_gateway_dropped_total{machine=\"m00\($0)\",reason=\"max-bytes\"}") }
        #expect(dropped > 700, "most of 1000 readings cannot fit")
        #expect(perMachine.allSatisfy { $0 > 0 })
        #expect(perMachine.reduce(0, +) == dropped)

        p.kafka.brokersUp()
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings",
                                                    expect: 1000 - Int(dropped), timeout: 60, settle: 2))
        // Everything not counted as dropped arrives: no silent loss.
        #expect(Set(received.map(\.reading)).count == 1000 - Int(dropped))
        #expect(missing(published, received) == Int(dropped))
        #expect(perMachineOrderViolations(received).isEmpty)
    }

    @Test("journal full under backpressure: intake stops, resumes after Kafka returns, nothing lost")
    func backpressure() throws {
        let p = try Pipeline("backpressure", settings: ["journal.max-bytes=32KiB", "journal.full-policy=backpressure"])
        defer { p.stop() }
        let gateway = try p.startGateway()
        p.kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }
        let publisher = try TestPublisher(url: p.broker.url)
        let published = try publishReadings(publisher, count: 1500, machines: 5)
        #expect(publisher.finish(), "the broker takes everything for the gateway's persistent session")

        let (_, body) = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"backpressure\":true") }
        #expect(body.contains("\"backpressure\":true"))
        #expect(gateway.metric("forewarn_gateway_backpressure") == 1)
        #expect(gateway.metric("forewarn_gateway_readings_in_total") < 1500, "intake paused before taking everything")
        #expect(gateway.metric("forewarn_gateway_dropped_total") == 0)

        p.kafka.brokersUp()
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1500, timeout: 90, settle: 2))
        #expect(missing(published, received) == 0)
        #expect(perMachineOrderViolations(received).isEmpty)
        let healthy = gateway.waitForHealth(timeout: 15) { s, b in s == 200 && b.contains("\"backpressure\":false") }
        #expect(healthy.0 == 200)
    }

    @Test("malformed payloads go to the dead-letter topic with a reason; the gateway keeps going")
    func deadLetters() throws {
        let p = try Pipeline("deadletter")
        defer { p.stop() }
        let gateway = try p.startGateway()
        let publisher = try TestPublisher(url: p.broker.url)
        let bad: [(topic: String, payload: [UInt8], reason: String)] = [
            ("factory/s1/m1/vib_rms", Array("not json".utf8), "not-json"),
            ("factory/s1/m1/vib_rms", Array(#"{"value": "high"}"#.utf8), "wrong-type"),
            ("factory/s1/m1/vib_rms", Array("NaN".utf8), "non-finite-value"),
            ("factory/s1/m1/vib_rms", Array(#"{"ts": 1700000000000, "value": NaN}"#.utf8), "non-finite-value"),
            ("factory/s1/m1/vib_rms", [UInt8](repeating: 0x31, count: 200_000), "payload-too-large"),
            ("factory/s1/m1/vib_rms", [], "empty-payload"),
            ("factory/s1/m1/extra/level", Array("1".utf8), "topic-mismatch"),
            ("factory/s1/m1/vib_rms", Array(#"{"ts": "noon", "value": 1}"#.utf8), "invalid-timestamp"),
        ]
        // mosquitto only forwards topics that match the gateway's subscription, so the
        // mismatching topic is published under a filter the gateway does see.
        for b in bad where b.reason != "topic-mismatch" { try publisher.publish(b.topic, bytes: b.payload) }
        try publisher.publish("factory/s1/m1/vib_rms", #"{"ts": 1700000000001, "value": 2.5}"#)
        #expect(publisher.finish())

        let dead = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.deadletter", expect: bad.count - 1, timeout: 30)
        #expect(dead.count == bad.count - 1)
        let reasons = dead.compactMap { $0.header("reason")?.split(separator: ":").first.map(String.init) }
        #expect(reasons.sorted() == bad.map(\.reason).filter { $0 != "topic-mismatch" }.sorted())
        #expect(dead.allSatisfy { $0.keyString == "m1" && $0.header("gateway") == "gw-test" && $0.header("seq") != nil })
        let huge = try #require(dead.first { $0.header("reason")?.hasPrefix("payload-too-large") == true })
        #expect(huge.value.count == 65_536, "dead letter is kept, truncated to mqtt.max-payload-bytes")
        #expect(huge.header("reason")?.contains("truncated") == true)
        let good = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1, timeout: 30)
        #expect(good.count == 1)
        #expect(gateway.child.isRunning)
        #expect(gateway.metric("forewarn_gateway_rejected_total") == Double(bad.count - 1))
        #expect(gateway.metric("forewarn_gateway_deadletters_out_total") == Double(bad.count - 1))
    }

    @Test("the MQTT broker restarts: the gateway reconnects, subscribes again, and loses nothing published to it")
    func brokerRestart() throws {
        let p = try Pipeline("broker-restart")
        defer { p.stop() }
        let gateway = try p.startGateway()
        let publisher = try TestPublisher(url: p.broker.url)
        var published = try publishReadings(publisher, count: 500, machines: 5)
        #expect(publisher.finish())
        // Let the gateway take everything before the broker (with no persistence) goes away.
        let deadline = Date().addingTimeInterval(20)
        while gateway.metric("forewarn_gateway_readings_in_total") < 500 && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        p.broker.stop()
        let down = gateway.waitForHealth(timeout: 15) { s, b in s == 503 && b.contains("mqtt unreachable") }
        #expect(down.0 == 503, "health reports MQTT down after the grace period")
        try p.broker.restart()
        let up = gateway.waitForHealth(timeout: 40) { s, b in s == 200 && b.contains("\"subscribed\":true") }
        #expect(up.0 == 200, "reconnected with backoff and subscribed again: \(up.1)")
        let again = try TestPublisher(url: p.broker.url)
        published += try publishReadings(again, count: 500, machines: 5, startTs: 1_700_000_100_000)
        #expect(again.finish())
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1000, timeout: 60))
        #expect(missing(published, received) == 0)
        #expect(received.count == 1000)
    }

    @Test("the MQTT broker (persistence true) restarts with messages queued for the gateway in backpressure: all arrive exactly once, in order")
    func brokerRestartWithPending() throws {
        let p = try Pipeline("broker-restart-pending", settings: ["journal.max-bytes=32KiB", "journal.full-policy=backpressure"],
                             brokerPersistence: true)
        defer { p.stop() }
        let gateway = try p.startGateway()
        p.kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }
        let publisher = try TestPublisher(url: p.broker.url)
        let published = try publishReadings(publisher, count: 1500, machines: 5)
        #expect(publisher.finish(), "the broker takes everything for the gateway's persistent session")
        // The journal fills and the gateway stops reading: the rest waits in the broker.
        let (_, body) = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"backpressure\":true") }
        #expect(body.contains("\"backpressure\":true"))
        let taken = gateway.metric("forewarn_gateway_mqtt_messages_total")
        #expect(taken < 1500, "messages are pending in the broker at the restart (gateway took \(taken))")

        try p.broker.restart()
        #expect(FileManager.default.fileExists(atPath: p.dir + "/mosquitto-data/mosquitto.db"), "mosquitto saved its sessions: \(p.broker.log.suffix(600))")
        p.kafka.brokersUp()
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1500, timeout: 90, settle: 2))
        print("broker restart with pending: published 1500, taken before the restart \(Int(taken)), received \(received.count), missing \(missing(published, received))")
        #expect(missing(published, received) == 0)
        #expect(received.count == 1500, "exactly once")
        #expect(Set(received.map(\.seq)).count == received.count)
        #expect(perMachineOrderViolations(received).isEmpty)
        let healthy = gateway.waitForHealth(timeout: 20) { s, b in s == 200 && b.contains("\"backpressure\":false") && b.contains("\"subscribed\":true") }
        #expect(healthy.0 == 200, "\(healthy.1)")
    }

    @Test("MQTT 5 with a persistent session (session expiry) delivers like 3.1.1")
    func mqtt5() throws {
        let p = try Pipeline("mqtt5", settings: ["mqtt.protocol=5"])
        defer { p.stop() }
        let gateway = try p.startGateway()
        // mosquitto logs each connection with its protocol: "New client connected ... as <id> (p5, c0, k60)"
        // for MQTT 5, "(p2, ..." for 3.1.1. The gateway must have negotiated 5.
        #expect(p.broker.waitForLog("as forewarn-gw-test (p5,"), "gateway did not connect with MQTT 5: \(p.broker.log.suffix(800))")
        #expect(!p.broker.log.contains("as forewarn-gw-test (p2,"))
        let publisher = try TestPublisher(url: p.broker.url)
        // The test publisher speaks 3.1.1: the same log line with p2 shows the check tells the versions apart.
        #expect(p.broker.waitForLog(" (p2,"), "\(p.broker.log.suffix(800))")
        var published = try publishReadings(publisher, count: 300, machines: 3)
        // Away and back: with MQTT 5 the session survives only with a session expiry interval.
        gateway.child.stop()
        published += try publishReadings(publisher, count: 300, machines: 3, startTs: 1_700_000_100_000)
        #expect(publisher.finish())
        try p.startGateway(name: "gateway-2")
        // The second connection resumes the session (c0: no clean start) over MQTT 5 again.
        let connects = p.broker.log.components(separatedBy: "as forewarn-gw-test (p5, c0,").count - 1
        #expect(connects == 2, "two MQTT 5 connections without clean start: \(p.broker.log.suffix(800))")
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 600, timeout: 60))
        #expect(missing(published, received) == 0)
        #expect(received.count == 600)
    }

    @Test("a message on a subscribed topic that does not match the template is dead-lettered with topic-mismatch")
    func topicMismatch() throws {
        // The gateway subscribes to the filter of its own template, so the broker only hands it a
        // mismatching topic through a subscription it did not make in this run: its persistent session
        // keeps the subscription of the template it had before. That is the case a user meets after
        // changing mqtt.topic-template, and it must dead-letter, not crash or guess fields.
        let p = try Pipeline("mismatch")
        defer { p.stop() }
        let old = try p.startGateway(name: "gateway-old-template")  // factory/{site}/{machine}/{sensor} → factory/+/+/+
        old.child.signal(SIGTERM)
        #expect(old.child.waitForExit(timeout: 20) == 0)
        let gateway = try p.startGateway(name: "gateway-new-template", settings: ["mqtt.topic-template=factory/{site}/{machine}/{sensor}/value"])
        let publisher = try TestPublisher(url: p.broker.url)
        try publisher.publish("factory/s1/m1/vib", "1")           // old layout: four segments, no /value
        try publisher.publish("factory/s1/m1/vib/value", "2")     // new layout
        #expect(publisher.finish())
        let dead = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.deadletter", expect: 1, timeout: 30, settle: 1)
        #expect(dead.count == 1)
        let reason = dead.first?.header("reason") ?? ""
        #expect(reason.hasPrefix("topic-mismatch"), "reason header: \(reason)")
        #expect(reason.contains("factory/{site}/{machine}/{sensor}/value"), "the reason names the template: \(reason)")
        #expect(dead.first?.header("mqtt_topic") == "factory/s1/m1/vib")
        #expect(dead.first.map { String(decoding: $0.value, as: UTF8.self) } == "1", "the dead letter keeps the payload")
        let readings = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1, timeout: 30, settle: 1))
        #expect(readings.count == 1)
        #expect(readings.first?.mqttTopic == "factory/s1/m1/vib/value")
        #expect(gateway.metric("forewarn_gateway_rejected_total{reason=\"topic-mismatch\"}") == 1)
        #expect(gateway.metric("forewarn_gateway_rejected_total") == 1)
        #expect(gateway.child.isRunning)
    }
}

@Suite("Gateway configuration and start-up errors")
struct GatewayStartupTests {
    func run(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String) {
        let dir = TestEnvironment.temporaryDirectory("cli")
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary, arguments: args, directory: dir, name: "cli", environment: env)
        let status = child.waitForExit(timeout: 20)
        child.stop()
        return (status ?? -1, child.stderr + child.stdout)
    }

    @Test("a bad config names the key", arguments: [
        ("mqtt:\n  urll: mqtt://127.0.0.1:1883\n", "mqtt.urll"),
        ("journal:\n  commit-every: many\n", "journal.commit-every"),
        ("http: 127.0.0.1:99999\n", "http"),
        ("journal:\n  full-policy: shrug\n", "journal.full-policy"),
    ])
    func badConfig(yaml: String, key: String) throws {
        let path = TestEnvironment.temporaryDirectory("cfg") + "/gateway.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let (status, output) = try run(["gateway", "--config", path, "--check-config"])
        #expect(status == 78, "configuration errors exit 78 (EX_CONFIG)")
        #expect(output.contains("config key '\(key)'"), "\(output)")
    }

    @Test func badFlagNamesTheKey() throws {
        let (status, output) = try run(["gateway", "--mqtt", "tcp://127.0.0.1:1883", "--check-config"])
        #expect(status == 78)
        #expect(output.contains("config key 'mqtt.url'"))
        #expect(output.contains("mqtt:// or mqtts://"))
    }

    @Test func checkConfigHidesThePassword() throws {
        let (status, output) = try run(["gateway", "--check-config", "--set", "mqtt.username=gw"], env: ["FOREWARN_MQTT_PASSWORD": "hunter2-secret"])
        #expect(status == 0)
        #expect(output.contains("configuration OK"))
        #expect(output.contains("mqtt.password=set (hidden)"))
        #expect(!output.contains("hunter2-secret"))
    }

    @Test("a corrupt journal stops start-up with a clear error and is never truncated")
    func corruptJournal() throws {
        let state = TestEnvironment.temporaryDirectory("corrupt")
        let garbage = Data((0..<16384).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: state + "/journal.sqlite"))
        let (status, output) = try run(["gateway", "--state-dir", state, "--http", "off", "--mqtt", "mqtt://127.0.0.1:1", "--kafka", "127.0.0.1:1"])
        #expect(status == 65, "EX_DATAERR: systemd does not restart it")
        #expect(output.contains("journal \(state)/journal.sqlite is corrupt"))
        #expect(output.contains("never truncates"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: state + "/journal.sqlite")) == garbage)
    }
}
