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
            // The HTTP endpoint listens on IPv4: an IPv6 address or a host name is refused at validation.
            (["gateway", "--check-config", "--http", "[::1]:9464"], [:], "config key 'http': '::1' is not an IPv4 address"),
            (["detector", "--check-config", "--http", "metrics.example:9465"], [:], "config key 'http': 'metrics.example' is not an IPv4 address"),
        ]
        for (i, c) in cases.enumerated() {
            let (status, stderr, _) = try runForewarn(c.args, env: c.env, dir: dir, name: "case\(i)")
            #expect(status == 78, "\(c.args) \(c.env): exit \(String(describing: status)), stderr \(stderr)")
            #expect(stderr.contains(c.mentions), "\(c.args): \(stderr)")
        }
    }

    /// One configuration mistake of each kind, set through each source.
    struct ConfigMistake: Sendable, CustomTestStringConvertible {
        var command: String
        var key: String
        var value: String
        var kind: String
        var testDescription: String { "\(command) \(kind): \(key)=\(value)" }
    }

    static let mistakes: [ConfigMistake] = [
        ConfigMistake(command: "gateway", key: "mqtt.keepalivee", value: "30s", kind: "unknown key"),
        ConfigMistake(command: "gateway", key: "mqtt.keepalive", value: "soon", kind: "wrong type"),
        ConfigMistake(command: "gateway", key: "mqtt.keepalive", value: "1s", kind: "out of range"),
        ConfigMistake(command: "gateway", key: "journal.full-policy", value: "shrug", kind: "not a choice"),
        ConfigMistake(command: "detector", key: "checkpoint-intervall", value: "5s", kind: "unknown key"),
        ConfigMistake(command: "detector", key: "http", value: "nowhere", kind: "wrong type"),
        ConfigMistake(command: "detector", key: "checkpoint-interval", value: "1ms", kind: "out of range"),
    ]

    @Test(arguments: mistakes)
    func everyConfigurationMistakeExits78NamingTheKeyAndWhereItWasSet(_ m: ConfigMistake) throws {
        let dir = TestEnvironment.temporaryDirectory("exit78-sources")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A file: nested YAML with a comment first, so the reported line is not the first.
        let parts = m.key.split(separator: ".")
        var yaml = "# written by the test\n"
        for (depth, part) in parts.enumerated() {
            yaml += String(repeating: "  ", count: depth) + part + (depth == parts.count - 1 ? ": \(m.value)\n" : ":\n")
        }
        let file = dir + "/\(m.command).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        let envName = "FOREWARN_" + m.key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
        let sources: [(what: String, args: [String], env: [String: String], origin: String)] = [
            ("file", ["--config", file], [:], "\(file):\(parts.count + 1)"),
            ("environment", [], [envName: m.value], "environment \(envName)"),
            ("flag", ["--set", "\(m.key)=\(m.value)"], [:], "flag --set \(m.key)"),
        ]
        for s in sources {
            let (status, stderr, _) = try runForewarn([m.command, "--check-config"] + s.args, env: s.env, dir: dir, name: s.what)
            #expect(status == 78, "\(m.testDescription) from \(s.what): exit \(String(describing: status)), \(stderr)")
            // An unknown environment variable is named as such; everything else names the key.
            let named = m.kind == "unknown key" && s.what == "environment" ? envName : m.key
            #expect(stderr.contains("config key '\(named)'"), "\(m.testDescription) from \(s.what): \(stderr)")
            if !(m.kind == "unknown key" && s.what == "environment") {
                #expect(stderr.contains(s.origin), "\(m.testDescription) from \(s.what) should say where: \(stderr)")
            }
            #expect(stderr.split(separator: "\n").count == 1, "one line: \(stderr)")
        }
    }

    @Test(arguments: ["gateway", "detector"])
    func anUnreadableConfigFileExits78SayingWhy(_ command: String) throws {
        let dir = TestEnvironment.temporaryDirectory("exit78-files")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/a-directory.yaml", withIntermediateDirectories: true)
        try Data([0xFF, 0xFE, 0x00]).write(to: URL(fileURLWithPath: dir + "/binary.yaml"))
        try "mqtt: [unclosed\n".write(toFile: dir + "/broken.yaml", atomically: true, encoding: .utf8)
        let cases: [(args: [String], env: [String: String], reason: String)] = [
            (["--config", dir + "/missing.yaml"], [:], "missing.yaml: No such file or directory"),
            ([], ["FOREWARN_CONFIG": dir + "/missing.yaml"], "missing.yaml: No such file or directory"),
            (["--config", dir + "/a-directory.yaml"], [:], "a-directory.yaml: it is a directory"),
            (["--config", dir + "/binary.yaml"], [:], "binary.yaml: it is not UTF-8 text"),
            (["--config", dir + "/broken.yaml"], [:], "broken.yaml is not valid YAML"),
        ]
        for (i, c) in cases.enumerated() {
            let (status, stderr, _) = try runForewarn([command, "--check-config"] + c.args, env: c.env, dir: dir, name: "case\(i)")
            #expect(status == 78, "\(c): exit \(String(describing: status)), \(stderr)")
            #expect(stderr.contains(c.reason), "\(c): \(stderr)")
        }
    }

    @Test func aStalledWorkerStopsTheWatchdogPingsUntilItBeatsAgain() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-stall")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let notify = try NotifySocket(directory: dir)
        // WATCHDOG_USEC=1s: pings every 0.5 s, a worker is stale after 0.5 s of silence.
        // The HTTP loop's thread is wedged 2 s after start, for 4 s.
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state",
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
                                                  "FOREWARN_TEST_STALL_WORKER": "http:2:4"])
        defer { gw.child.stop() }
        #expect(notify.waitFor("READY=1", timeout: 10))
        #expect(notify.waitFor("WATCHDOG=1", timeout: 5), "pings before the stall")
        let stalled = waitUntil(timeout: 10, every: 0.02) { gw.child.stderr.contains("worker loop stalled, no heartbeat from http") }
        try #require(stalled, "the stall is reported: \(gw.child.stderr)")
        // What was sent before the report is already queued on the socket: take it away.
        _ = notify.drain(quiet: 0, timeout: 0.1)
        let stallSeen = Date()
        // The recovery is logged before the first ping after it: a datagram received before a
        // check that found no recovery line in stderr was sent during the stall.
        var received: [String] = []
        var duringStall = 0
        let recovered = waitUntil(timeout: 15, every: 0.02) {
            if gw.child.stderr.contains("every worker loop beats again") { return true }
            duringStall = received.count
            if let m = notify.receive(timeout: 0.05) { received.append(m) }
            return false
        }
        let silence = Date().timeIntervalSince(stallSeen)
        #expect(recovered, "the worker beats again after its 4 s stall: \(gw.child.stderr)")
        #expect(!received.prefix(duringStall).contains("WATCHDOG=1"), "no WATCHDOG=1 while the http worker is stalled: \(received.prefix(duringStall))")
        // At a 0.5 s interval, a silence this long would otherwise have held several pings.
        #expect(silence > 2, "silence lasted \(silence) s")
        #expect(notify.waitFor("WATCHDOG=1", timeout: 5), "pings resume after the stall")
        print("stalled http worker: no WATCHDOG=1 for \(String(format: "%.2f", silence)) s after the stall was reported, then pings resumed")
    }

    @Test func sighupReloadsTheLogLevelKeepsTheGatewayRunningAndRefusesAnInvalidFile() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-sighup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let file = dir + "/gateway.yaml"
        try "log-level: info\n".write(toFile: file, atomically: true, encoding: .utf8)
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state",
                                    extraArguments: ["--config", file])
        defer { gw.child.stop() }
        let publisher = try TestPublisher(url: broker.url)
        let rejectedLine = "rejected MQTT message"  // logged at debug level
        func rejectOne(expectTotal n: Double) throws {
            try publisher.publish("factory/s1/m1/vib_rms", "not json")
            #expect(waitUntil(timeout: 15, every: 0.02) { gw.metric("forewarn_gateway_rejected_total") >= n }, "rejection \(n) counted")
        }
        func hangUp(until line: String) -> Bool {
            gw.child.signal(SIGHUP)
            return waitUntil(timeout: 10, every: 0.02) { gw.child.stderr.contains(line) }
        }
        func rejectedLines() -> Int { gw.child.stderr.components(separatedBy: rejectedLine).count - 1 }
        #expect(waitUntil(timeout: 15, every: 0.02) { gw.get("/healthz").0 == 200 }, "\(gw.child.stderr)")

        // At info, a rejection is counted but not logged.
        try rejectOne(expectTotal: 1)
        #expect(rejectedLines() == 0)
        #expect(hangUp(until: "SIGHUP: configuration reloaded: nothing changed"), "\(gw.child.stderr)")
        #expect(gw.child.isRunning, "SIGHUP must not end the gateway")

        // The new level applies at once; a key that needs a restart is named as such.
        try "log-level: debug\nmqtt:\n  max-payload-bytes: 1000\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(hangUp(until: "SIGHUP: configuration reloaded: log-level info → debug; changed but only applied by a restart: mqtt.max-payload-bytes"),
                "\(gw.child.stderr)")
        try rejectOne(expectTotal: 2)
        #expect(waitUntil(timeout: 5, every: 0.02) { rejectedLines() == 1 }, "at debug the rejection is logged: \(gw.child.stderr)")

        // An invalid file changes nothing: still running, still at debug.
        try "log-level: loud\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(hangUp(until: "SIGHUP: the configuration is invalid, keeping the running one: config key 'log-level'"), "\(gw.child.stderr)")
        #expect(gw.child.isRunning)
        try rejectOne(expectTotal: 3)
        #expect(waitUntil(timeout: 5, every: 0.02) { rejectedLines() == 2 }, "the running level (debug) is kept: \(gw.child.stderr)")

        #expect(publisher.finish())
        gw.child.signal(SIGTERM)
        #expect(gw.child.waitForExit(timeout: 20) == 0, "\(gw.child.stderr.suffix(500))")
    }

    @Test func sighupAppliesANewHealthGraceToARunningGateway() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-sighup-grace")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Nothing listens on port 1: MQTT and Kafka stay unreachable, within a grace of an hour.
        let file = dir + "/gateway.yaml"
        try "health:\n  grace: 1h\n".write(toFile: file, atomically: true, encoding: .utf8)
        let port = freePort()
        let gw = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                  arguments: ["gateway", "--config", file, "--mqtt", "mqtt://127.0.0.1:1", "--kafka", "127.0.0.1:1",
                                              "--state-dir", dir + "/state", "--http", "127.0.0.1:\(port)"],
                                  directory: dir, name: "gateway")
        defer { gw.stop() }
        try #require(waitForPort(port), "\(gw.stderr)")
        #expect(httpGet(port: port, path: "/healthz").0 == 200, "within the 1 h grace")
        try "health:\n  grace: 1s\n".write(toFile: file, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        #expect(waitUntil(timeout: 10, every: 0.02) { gw.stderr.contains("SIGHUP: configuration reloaded: health.grace 1h → 1s") }, "\(gw.stderr)")
        // Unreachable since start-up: 503 as soon as that is longer than the new 1 s grace.
        var last = (0, "")
        #expect(waitUntil(timeout: 5, every: 0.02) { last = httpGet(port: port, path: "/healthz"); return last.0 == 503 && last.1.contains("kafka unreachable for") },
                "the new grace applies: \(last)")
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
        // A reload is bracketed by RELOADING=1 and READY=1.
        gw.child.signal(SIGHUP)
        #expect(notify.waitFor("RELOADING=1", timeout: 10), "\(notify.all)")
        #expect(notify.waitFor("READY=1", timeout: 10), "\(notify.all)")
        gw.child.signal(SIGTERM)
        #expect(notify.waitFor("STOPPING=1", timeout: 10), "\(notify.all)")
        #expect(gw.child.waitForExit(timeout: 20) == 0, "\(gw.child.stderr)")
    }
}

@Suite struct SystemdUnitTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A bad configuration exits 78 (a damaged journal 65); the units must not restart them in a loop, but restart everything else.
    @Test(arguments: ["forewarn-gateway.service", "forewarn-detector.service"])
    func theUnitsRestartOnFailureButNotOnAConfigurationError(_ unit: String) throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("systemd/\(unit)"), encoding: .utf8)
        let settings = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
        func value(_ name: String) -> [String] { settings.filter { $0.count == 2 && $0[0] == name }.map { $0[1] } }
        #expect(value("Restart") == ["always"])
        #expect(value("RestartPreventExitStatus").flatMap { $0.split(separator: " ").map(String.init) }.contains("78"))
        if unit == "forewarn-gateway.service" {
            #expect(value("RestartPreventExitStatus").flatMap { $0.split(separator: " ").map(String.init) }.contains("65"),
                    "a damaged journal (exit 65) is not restarted in a loop either")
        }
        #expect(value("Type") == ["notify"])
        #expect(!value("WatchdogSec").isEmpty)
    }
}
