// Issue 9: fatal errors end the process (non-zero, within a bound, cause in stderr) instead of
// hanging; configuration errors exit 78; the systemd notify protocol; watchdog liveness.
import Foundation
import ServiceSupport
import Testing
import TestSupport

@Suite struct LivenessTests {
    @Test func aWorkerSilentLongerThanMaxSilenceIsStaleUntilItBeatsAgain() {
        let t0 = ContinuousClock.now
        var m = LivenessMonitor(maxSilence: .seconds(2))
        m.register("a", at: t0)
        m.register("b", at: t0)
        m.beat("a", at: t0 + .seconds(2))
        #expect(m.staleWorkers(at: t0 + .seconds(2)).isEmpty)
        #expect(m.staleWorkers(at: t0 + .milliseconds(2001)) == ["b"])
        m.beat("b", at: t0 + .seconds(3))
        #expect(m.staleWorkers(at: t0 + .seconds(4)).isEmpty)
        m.suspend("a", at: t0 + .seconds(4))
        #expect(m.staleWorkers(at: t0 + .seconds(60)) == ["b"])
        m.retire("b")
        #expect(m.staleWorkers(at: t0 + .seconds(60)).isEmpty)
        m.beat("b", at: t0)  // a retired worker is not revived by a late beat
        #expect(m.workers["b"] == nil)
    }

    @Test func thePingerPingsEveryIntervalAndStaysSilentWhileAnyWorkerIsStale() {
        let t0 = ContinuousClock.now
        var p = WatchdogPinger(interval: .seconds(1))
        #expect(p.tick(now: t0, staleWorkers: []) == [.ping])
        #expect(p.tick(now: t0 + .milliseconds(500), staleWorkers: []) == [])
        #expect(p.tick(now: t0 + .seconds(1), staleWorkers: []) == [.ping])
        #expect(p.tick(now: t0 + .seconds(2), staleWorkers: ["http"]) == [.reportStale(["http"])])
        #expect(p.tick(now: t0 + .seconds(3), staleWorkers: ["http"]) == [])
        #expect(p.tick(now: t0 + .seconds(4), staleWorkers: ["http", "mqtt"]) == [.reportStale(["http", "mqtt"])])
        #expect(p.tick(now: t0 + .milliseconds(4100), staleWorkers: []) == [.reportRecovered, .ping])
    }
}

private func runForewarn(_ args: [String], env: [String: String] = [:], dir: String, name: String, timeout: TimeInterval = 20) throws -> (Int32?, String, TimeInterval) {
    let start = Date()
    let p = try ChildProcess(executable: TestEnvironment.forewarnBinary, arguments: args, directory: dir, name: name, environment: env)
    let status = p.waitForExit(timeout: timeout)
    let elapsed = Date().timeIntervalSince(start)
    if status == nil { p.signal(SIGKILL); p.waitForExit(timeout: 5) }
    return (status, p.stderr, elapsed)
}

@Suite(.serialized) struct LifecycleTests {
    @Test func configurationErrorsExit78WhereverTheyComeFrom() throws {
        let dir = TestEnvironment.temporaryDirectory("exit78")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = dir + "/bad.yaml"
        try "journal:\n  max-bytez: 1GiB\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let cases: [(args: [String], env: [String: String], mentions: String)] = [
            (["gateway", "--check-config", "--set", "journal.max-bytes=10000000000GB"], [:], "journal.max-bytes"),
            (["gateway", "--check-config", "--set", "journal.commit-interval=99999999999999d"], [:], "journal.commit-interval"),
            (["gateway", "--check-config", "--set", "mqtt.keepalive=soon"], [:], "mqtt.keepalive"),
            (["gateway", "--check-config", "--config", bad], [:], "journal.max-bytez"),
            (["gateway", "--check-config", "--config", dir + "/missing.yaml"], [:], "missing.yaml"),
            (["gateway", "--check-config"], ["FOREWARN_JOURNAL_MAX_BYTES": "lots"], "journal.max-bytes"),
            (["gateway", "--check-config", "--set", "mqtt.reconnect-min=10s", "--set", "mqtt.reconnect-max=1s"], [:], "mqtt.reconnect-max"),
            (["gateway", "--state-dir", dir + "/state", "--http", "off", "--set", "kafka.properties.no.such.property=1"], [:], "no.such.property"),
            (["detector", "--check-config", "--set", "checkpoint-interval=1ms"], [:], "checkpoint-interval"),
            (["detector", "--check-config", "--models", dir + "/nowhere"], [:], "models"),
            (["gateway", "--check-config", "--set", "novalue"], [:], "KEY=VALUE"),
        ]
        for (i, c) in cases.enumerated() {
            let (status, stderr, _) = try runForewarn(c.args, env: c.env, dir: dir, name: "case\(i)")
            #expect(status == 78, "\(c.args) \(c.env): exit \(String(describing: status)), stderr \(stderr)")
            #expect(stderr.contains(c.mentions), "\(c.args): \(stderr)")
        }
    }

    @Test func aFailedSubscribeInTheDetectorExitsInsteadOfHanging() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-fatal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let (status, stderr, elapsed) = try runForewarn(["detector", "--kafka", kafka.bootstrap, "--state-dir", dir + "/state",
                                                          "--http", "127.0.0.1:\(freePort())", "--set", "kafka.readings-topic=^[bad"],
                                                         dir: dir, name: "detector", timeout: 20)
        #expect(status == 78, "exit \(String(describing: status)) after \(elapsed) s: \(stderr)")
        #expect(stderr.contains("kafka.readings-topic") && stderr.contains("^[bad"), "\(stderr)")
        #expect(elapsed < 20)
        print("detector with a bad topic regex exited \(String(describing: status)) after \(String(format: "%.2f", elapsed)) s")
    }

    @Test func aFatalKafkaErrorInTheForwarderExitsNonZeroAndNotifiesSystemd() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-fatal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let notify = try NotifySocket(directory: dir)
        let start = Date()
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state",
                                    environment: ["FOREWARN_TEST_INJECT_FATAL_KAFKA_ERROR": "injected by the test",
                                                  "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"])
        defer { gw.child.stop() }
        let status = gw.child.waitForExit(timeout: 20)
        let elapsed = Date().timeIntervalSince(start)
        #expect(status == 1, "exit \(String(describing: status)): \(gw.child.stderr)")
        #expect(gw.child.stderr.contains("fatal Kafka error") && gw.child.stderr.contains("injected by the test"), "\(gw.child.stderr)")
        let messages = notify.drain(quiet: 0.5, timeout: 5)
        #expect(messages.first == "READY=1", "\(messages)")
        #expect(messages.last == "STOPPING=1", "\(messages)")
        print("gateway with a fatal Kafka error exited \(String(describing: status)) after \(String(format: "%.2f", elapsed)) s; notify: \(messages)")
    }

    @Test func theGatewayTellsSystemdReadyWatchdogAndStopping() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-notify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let notify = try NotifySocket(directory: dir)
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state",
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        defer { gw.child.stop() }
        #expect(notify.waitFor("READY=1", timeout: 10))
        #expect(notify.waitFor("WATCHDOG=1", timeout: 5))
        #expect(notify.waitFor("WATCHDOG=1", timeout: 5))
        gw.child.signal(SIGTERM)
        #expect(notify.waitFor("STOPPING=1", timeout: 10), "\(notify.all)")
        #expect(gw.child.waitForExit(timeout: 20) == 0, "\(gw.child.stderr)")
    }
}
