// `--print-config` (issue 9): the effective configuration, each value with its source, secrets masked.
import Foundation
import ForewarnCore
import Testing
import TestSupport

@Suite struct EffectiveConfigurationTests {
    @Test func defaultsAreShownInTheUnitsAnOperatorWrites() {
        #expect(ConfigReader.formatDuration(.seconds(7 * 86_400)) == "7d")
        #expect(ConfigReader.formatDuration(.seconds(90)) == "90s")
        #expect(ConfigReader.formatDuration(.milliseconds(500)) == "500ms")
        #expect(ConfigReader.formatDuration(.zero) == "0ms")
        #expect(ConfigReader.formatSize(1 << 30) == "1GiB")
        #expect(ConfigReader.formatSize(1000) == "1000")
        // What is shown parses back to the same value.
        for d in [Duration.seconds(30), .milliseconds(20), .seconds(3600), .seconds(86_400 * 36_500)] {
            #expect(ConfigReader.parseDuration(ConfigReader.formatDuration(d)) == d)
        }
    }

    @Test func secretsAreRecognisedButPathsToThemAreNot() {
        for key in ["mqtt.password", "kafka.properties.sasl.password", "kafka.properties.ssl.key.password",
                    "kafka.properties.sasl.oauthbearer.client.secret", "kafka.properties.sasl.oauthbearer.config"] {
            #expect(EffectiveSetting.isSecret(key), "\(key)")
            #expect(EffectiveSetting(key: key, value: "hunter2", source: "default").shownValue == "********")
        }
        for key in ["mqtt.password-file", "mqtt.username", "kafka.properties.ssl.key.location", "mqtt.tls.key-file"] {
            #expect(!EffectiveSetting.isSecret(key), "\(key)")
        }
    }
}

@Suite struct ReloadPlanTests {
    func s(_ k: String, _ v: String, _ src: String = "default") -> EffectiveSetting { EffectiveSetting(key: k, value: v, source: src) }

    @Test func onlyReloadableKeysApplyTheRestWaitForARestart() {
        let running = [s("log-level", "info"), s("health.grace", "30s"), s("mqtt.keepalive", "30s"), s("mqtt.password", "old")]
        let new = [s("log-level", "debug", "f.yaml:1"), s("health.grace", "30s", "f.yaml:2"), s("mqtt.keepalive", "45s"), s("mqtt.password", "new")]
        let plan = ReloadPlan.compare(running: running, new: new, reloadable: ["log-level", "health.grace"])
        #expect(plan.apply == [s("log-level", "debug", "f.yaml:1")], "same value from another source is no change")
        #expect(plan.needsRestart == ["mqtt.keepalive", "mqtt.password"])
        #expect(plan.summary == "log-level info → debug; changed but only applied by a restart: mqtt.keepalive, mqtt.password")
        #expect(!plan.summary.contains("old") && !plan.summary.contains("new"), "secrets never in the log line")
        // The running configuration keeps what was not applied, so the next reload reports it again.
        let after = plan.applied(to: running)
        #expect(after.first { $0.key == "log-level" }?.value == "debug")
        #expect(after.first { $0.key == "mqtt.keepalive" }?.value == "30s")
        #expect(ReloadPlan.compare(running: after, new: new, reloadable: ["log-level"]).needsRestart == ["mqtt.keepalive", "mqtt.password"])
        #expect(ReloadPlan.compare(running: running, new: running, reloadable: []).summary == "nothing changed")
    }
}

@Suite struct PrintConfigTests {
    func run(_ args: [String], env: [String: String] = [:], dir: String) throws -> (Int32?, String, String) {
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary, arguments: args, directory: dir, name: "print", environment: env)
        let status = child.waitForExit(timeout: 20)
        child.stop()
        return (status, child.stdout, child.stderr)
    }

    /// The `# source` of `key` in `--print-config` output, and its value.
    func line(_ output: String, _ key: String) -> (value: String, source: String)? {
        for l in output.split(separator: "\n") where l.hasPrefix(key + ":") {
            let rest = l.dropFirst(key.count + 1)
            guard let hash = rest.range(of: "  # ") else { return nil }
            return (rest[..<hash.lowerBound].trimmingCharacters(in: .whitespaces), String(rest[hash.upperBound...]))
        }
        return nil
    }

    @Test func theGatewayShowsEachValueWithItsSourceAndMasksThePassword() throws {
        let dir = TestEnvironment.temporaryDirectory("print-config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/gateway.yaml"
        try "# a comment\nmqtt:\n  username: gw\n  keepalive: 45s\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (status, out, err) = try run(["gateway", "--print-config", "--config", file, "--http", "127.0.0.1:9999", "--set", "journal.max-age=2d"],
                                         env: ["FOREWARN_MQTT_PASSWORD": "hunter2-secret", "FOREWARN_KAFKA_PROPERTY_SASL_PASSWORD": "sasl-secret-42",
                                               "FOREWARN_JOURNAL_MAX_BYTES": "2GiB"], dir: dir)
        #expect(status == 0, "\(err)")
        #expect(!out.contains("hunter2-secret") && !err.contains("hunter2-secret"), "the MQTT password is never printed")
        #expect(!out.contains("sasl-secret-42") && !err.contains("sasl-secret-42"), "the SASL password is never printed")
        #expect(line(out, "mqtt.password")! == ("********", "environment FOREWARN_MQTT_PASSWORD"))
        #expect(line(out, "kafka.properties.sasl.password")! == ("********", "environment FOREWARN_KAFKA_PROPERTY_SASL_PASSWORD"))
        #expect(line(out, "mqtt.username")! == ("gw", "\(file):3"))
        #expect(line(out, "mqtt.keepalive")! == ("45s", "\(file):4"))
        #expect(line(out, "journal.max-bytes")! == ("2GiB", "environment FOREWARN_JOURNAL_MAX_BYTES"))
        #expect(line(out, "http")! == ("127.0.0.1:9999", "flag --http"))
        #expect(line(out, "journal.max-age")! == ("2d", "flag --set journal.max-age"))
        #expect(line(out, "journal.commit-interval")! == ("20ms", "default"))
        #expect(line(out, "mqtt.tls.ca-file")! == ("none", "default"))
        // Every key the gateway knows is listed (the two open/derived ones aside).
        for key in GatewayConfiguration.knownKeys where key != "kafka.properties" {
            #expect(line(out, key) != nil, "\(key) missing from --print-config")
        }
    }

    @Test func withoutAPasswordNothingIsMaskedAndAnInvalidConfigurationExits78() throws {
        let dir = TestEnvironment.temporaryDirectory("print-config-2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try run(["gateway", "--print-config"], dir: dir)
        #expect(status == 0)
        #expect(line(out, "mqtt.password")! == ("none", "default"))
        let (bad, _, err) = try run(["gateway", "--print-config", "--set", "mqtt.keepalive=soon"], dir: dir)
        #expect(bad == 78)
        #expect(err.contains("config key 'mqtt.keepalive'"))
    }

    @Test func theDetectorShowsEachValueWithItsSource() throws {
        let dir = TestEnvironment.temporaryDirectory("print-config-detector")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, err) = try run(["detector", "--print-config", "--group", "g2", "--models", dir],
                                         env: ["FOREWARN_CHECKPOINT_INTERVAL": "2s"], dir: dir)
        #expect(status == 0, "\(err)")
        #expect(line(out, "kafka.group")! == ("g2", "flag --group"))
        #expect(line(out, "models")! == (dir, "flag --models"))
        #expect(line(out, "checkpoint-interval")! == ("2s", "environment FOREWARN_CHECKPOINT_INTERVAL"))
        #expect(line(out, "http")! == ("127.0.0.1:9465", "default"))
    }
}
