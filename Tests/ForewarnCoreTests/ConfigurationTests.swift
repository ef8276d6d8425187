import Foundation
import ForewarnCore
import Testing

struct ConfigurationTests {
    func load(yaml: String? = nil, env: [String: String] = [:], flags: [(String, String)] = []) throws(ConfigError) -> GatewayConfiguration {
        var file: String?
        if let yaml {
            let path = NSTemporaryDirectory() + "forewarn-config-\(UUID().uuidString).yaml"
            try? yaml.write(toFile: path, atomically: true, encoding: .utf8)
            file = path
        }
        return try GatewayConfiguration.load(file: file, environment: env, overrides: flags.map { ($0.0, $0.1, "--\($0.0)") })
    }

    func error(yaml: String? = nil, env: [String: String] = [:], flags: [(String, String)] = []) -> ConfigError? {
        do { _ = try load(yaml: yaml, env: env, flags: flags); return nil } catch { return error }
    }

    @Test func defaultsSuitALocalDemo() throws {
        let c = try load(env: ["HOME": "/home/op"])
        #expect(c.mqtt.url == MQTTURL(host: "127.0.0.1", port: 1883, tls: false))
        #expect(c.kafka.bootstrap == "127.0.0.1:9092")
        #expect(c.kafka.readingsTopic == "forewarn.readings")
        #expect(c.kafka.deadletterTopic == "forewarn.deadletter")
        #expect(c.stateDirectory == "/home/op/.local/state/forewarn")
        #expect(c.http == HostPort(host: "127.0.0.1", port: 9464))
        #expect(c.journal.fullPolicy == .backpressure)
        #expect(c.journal.commitInterval == .milliseconds(20))
        #expect(c.journal.minFreeBytes == 64 << 20)
        #expect(c.journal.commitWhenIdle == true)
        #expect(c.journal.commitMinGap == .milliseconds(2))
        #expect(c.mqtt.cleanSession == false)
    }

    @Test func diskReserveIsASizeOfAtLeast64KiB() throws {
        #expect(try load(flags: [("journal.min-free-bytes", "512KiB")]).journal.minFreeBytes == 512 << 10)
        let small = error(flags: [("journal.min-free-bytes", "1000")])
        #expect(small?.key == "journal.min-free-bytes")
        #expect(small?.description.contains("below the minimum of 65536 bytes") == true)
        let word = error(yaml: "journal:\n  min-free-bytes: plenty\n")
        #expect(word?.key == "journal.min-free-bytes")
        #expect(word?.description.contains("is not a size") == true)
    }

    @Test("journal.ballast-bytes is 0 (off) or at least 256KiB; a smaller one is refused, naming the key and the minimum")
    func ballastIsOffOrAtLeast256KiB() throws {
        #expect(try load().journal.ballastBytes == 32 << 20)  // half of the 64MiB reserve
        #expect(try load(flags: [("journal.min-free-bytes", "64KiB")]).journal.ballastBytes == 256 << 10)
        #expect(try load(flags: [("journal.ballast-bytes", "0")]).journal.ballastBytes == 0)
        #expect(try load(flags: [("journal.ballast-bytes", "256KiB")]).journal.ballastBytes == 256 << 10)
        let small = error(flags: [("journal.min-free-bytes", "64KiB"), ("journal.ballast-bytes", "32KiB")])
        #expect(small?.key == "journal.ballast-bytes")
        #expect(small?.description.contains("32768 bytes is below the minimum of 262144 bytes (256KiB)") == true, "\(String(describing: small))")
        #expect(small?.description.contains("allowed: 0 (off) or at least 256KiB") == true)
        #expect(error(env: ["FOREWARN_JOURNAL_BALLAST_BYTES": "255KiB"])?.key == "journal.ballast-bytes")
    }

    @Test func commitWhenIdleIsABooleanNamedInItsError() throws {
        #expect(try load(flags: [("journal.commit-when-idle", "false")]).journal.commitWhenIdle == false)
        #expect(try load(env: ["FOREWARN_JOURNAL_COMMIT_WHEN_IDLE": "off"]).journal.commitWhenIdle == false)
        let e = error(yaml: "journal:\n  commit-when-idle: sometimes\n")
        #expect(e?.key == "journal.commit-when-idle")
        #expect(e?.description.contains("'sometimes' is not a boolean (allowed: true, false)") == true)
    }

    @Test func commitMinGapMayNotExceedTheInterval() throws {
        #expect(try load(flags: [("journal.commit-min-gap", "0ms")]).journal.commitMinGap == .zero)
        let e = error(flags: [("journal.commit-interval", "5ms"), ("journal.commit-min-gap", "6ms")])
        #expect(e?.key == "journal.commit-min-gap")
        #expect(e?.description.contains("above journal.commit-interval") == true)
        #expect(error(flags: [("journal.commit-min-gap", "soon")])?.key == "journal.commit-min-gap")
    }

    @Test func fileThenEnvironmentThenFlags() throws {
        let yaml = """
            mqtt:
              url: mqtts://broker.plant:8883
              username: gw
            kafka:
              bootstrap: k1:9092,k2:9092
              properties:
                security.protocol: SASL_SSL
            journal:
              max-bytes: 64MiB
              full-policy: drop-oldest
              commit-interval: 5ms
            """
        let c = try load(yaml: yaml, env: ["FOREWARN_KAFKA_BOOTSTRAP": "env:9092", "FOREWARN_MQTT_PASSWORD": "s3cret"],
                         flags: [("kafka.bootstrap", "flag:9092")])
        #expect(c.mqtt.url == MQTTURL(host: "broker.plant", port: 8883, tls: true))
        #expect(c.mqtt.username == "gw")
        #expect(c.mqtt.password == "s3cret")
        #expect(c.kafka.bootstrap == "flag:9092")
        #expect(c.kafka.properties == ["security.protocol": "SASL_SSL"])
        #expect(c.journal.maxBytes == 64 << 20)
        #expect(c.journal.fullPolicy == .dropOldest)
        #expect(c.journal.commitInterval == .milliseconds(5))
    }

    @Test func unknownKeyIsNamedWithASuggestion() {
        let e = error(yaml: "mqtt:\n  urll: mqtt://x:1\n")
        #expect(e?.key == "mqtt.urll")
        #expect(e?.description.contains("did you mean 'mqtt.url'") == true)
    }

    @Test func wrongTypeNamesKeyAndAllowedValues() {
        let e = error(yaml: "journal:\n  commit-every: lots\n")
        #expect(e?.key == "journal.commit-every")
        #expect(e?.description.contains("not a whole number") == true)
        let p = error(yaml: "journal:\n  full-policy: panic\n")
        #expect(p?.key == "journal.full-policy")
        #expect(p?.description.contains("allowed: drop-oldest, backpressure") == true)
    }

    @Test func portOutOfRangeNamesTheKey() {
        #expect(error(flags: [("http", "127.0.0.1:70000")])?.key == "http")
        #expect(error(flags: [("mqtt.url", "mqtt://127.0.0.1:0")])?.key == "mqtt.url")
        #expect(error(env: ["FOREWARN_KAFKA_BOOTSTRAP": "k1:99999"])?.key == "kafka.bootstrap")
    }

    @Test func unknownEnvironmentVariableIsAnError() {
        #expect(error(env: ["FOREWARN_MQTT_URLL": "x"])?.key == "FOREWARN_MQTT_URLL")
    }

    @Test func kafkaPropertiesFromEnvironment() throws {
        let c = try load(env: ["FOREWARN_KAFKA_PROPERTY_SASL_MECHANISMS": "SCRAM-SHA-512"])
        #expect(c.kafka.properties["sasl.mechanisms"] == "SCRAM-SHA-512")
    }

    @Test func durationsAndSizes() {
        #expect(ConfigReader.parseDuration("250ms") == .milliseconds(250))
        #expect(ConfigReader.parseDuration("2m") == .seconds(120))
        #expect(ConfigReader.parseDuration("7d") == .seconds(604_800))
        #expect(ConfigReader.parseDuration("1.5s") == .milliseconds(1500))
        #expect(ConfigReader.parseDuration("soon") == nil)
        #expect(ConfigReader.parseSize("1GiB") == 1 << 30)
        #expect(ConfigReader.parseSize("100MB") == 100_000_000)
        #expect(ConfigReader.parseSize("4096") == 4096)
        #expect(ConfigReader.parseSize("big") == nil)
    }
}
