// Property tests: no value of any configuration key may crash the process. Every key of the
// gateway configuration, the detector settings and the model files gets random strings and
// extreme numbers (seeded, bounded count), in process against the parsing functions; each
// value must be accepted or rejected with a ConfigError that names a key. Before the fix,
// `journal.max-bytes=10000000000GB` and `journal.commit-interval=99999999999999d` trapped
// (Double → Int64 overflow in ConfigReader) and took the test process down.
import Detection
@testable import Detector
import ForewarnCore
import Foundation
import Testing

/// Random configuration values: extreme numbers with and without units, and random strings.
struct ConfigValueGenerator {
    var rng: SplitMix64
    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    static let extremes = [
        "", " ", "0", "-0", "-1", "1", "0.5", "1e308", "-1e308", "1e309", "4.9e-324", "1.7976931348623157e308",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616",
        "2147483647", "2147483648", "65535", "65536", "10000000000", "99999999999999", "nan", "NaN", "inf", "-inf",
        "infinity", "0x1p63", "1_000", "1,5", "+5", ".", "e", "1e", "--1", "00000000000000000000000001",
        "10000000000GB", "99999999999999d", "1e300ms", "1e16d", "-5s", "1e19B", "9223372036854775807TiB",
        "true", "false", "yes", "off", "none", "null", "~", "host:", ":1", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:99999999999999999999", "[::1]:9092", "mqtt://", "mqtts://h:-1", "mqtt://h:18446744073709551616",
        "{machine}", "{", "}", "a/{machine}/{machine}", "#", "+/+/+", "\u{0}", "é", "🙂", "a\nb", "'", "\"",
    ]
    static let units = ["", "ms", "s", "m", "h", "d", "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "%", " s", "x"]
    static let alphabet: [Character] = Array("abcxyz019 .:-_/{}[]#+*?,;=~!@$%^&()<>|\\'\"\t\né€🙂") + ["\u{0}", "\u{7f}"]

    mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    mutating func next() -> String {
        switch int(6) {
        case 0: return Self.extremes[int(Self.extremes.count)]
        case 1:  // many digits, maybe a fraction or exponent, maybe negative, with a unit
            var s = int(4) == 0 ? "-" : ""
            s += String((0..<(1 + int(30))).map { _ in Character(String(int(10))) })
            if int(3) == 0 { s += "." + String(int(1000)) }
            if int(4) == 0 { s += "e" + String(int(700) - 350) }
            return s + Self.units[int(Self.units.count)]
        case 2:  // a double anywhere in its range, with a unit
            let d = Double(bitPattern: rng.next())
            return "\(d)" + Self.units[int(Self.units.count)]
        case 3:  // a host:port or URL with a random port
            let port = [String(int(70_000)), String(rng.next()), "-\(int(100))", "x"][int(4)]
            return ["", "mqtt://", "mqtts://"][int(3)] + ["127.0.0.1", "h", "", "[::1]"][int(4)] + ":" + port
        default:  // random characters
            return String((0..<int(40)).map { _ in Self.alphabet[int(Self.alphabet.count)] })
        }
    }
}

private let casesPerKey = 150

@Suite struct ConfigPropertyTests {
    @Test func everyGatewayKeyRejectsOrAcceptsAnyValueWithoutCrashing() {
        var gen = ConfigValueGenerator(seed: 9)
        let keys = GatewayConfiguration.knownKeys + ["kafka.properties.linger.ms", "unknown.key"]
        var accepted = 0, rejected = 0
        for key in keys {
            for i in 0..<casesPerKey {
                let value = gen.next()
                // Through the YAML file as well as through flags.
                let file = i % 10 == 0 ? try? yamlFile(key: key, value: value) : nil
                defer { if let file { try? FileManager.default.removeItem(atPath: file) } }
                do {
                    let c: GatewayConfiguration
                    if let file {
                        c = try GatewayConfiguration.load(file: file, environment: ["HOME": "/tmp"], overrides: [])
                    } else {
                        c = try GatewayConfiguration.load(file: nil, environment: ["HOME": "/tmp"], overrides: [(key, value, "--set \(key)")])
                    }
                    accepted += 1
                    for d in [c.mqtt.keepalive, c.mqtt.reconnectMin, c.mqtt.reconnectMax, c.kafka.flushTimeout, c.journal.commitInterval,
                              c.journal.maxAge, c.health.grace] {
                        #expect(d >= .zero && d <= ConfigReader.maximumDuration, "\(key)=\(value.debugDescription) gave \(d)")
                    }
                    #expect(c.mqtt.keepalive <= .seconds(65_535))
                    #expect((4096...ConfigReader.maximumSize).contains(c.journal.maxBytes), "\(key)=\(value.debugDescription)")
                    #expect((65_536...ConfigReader.maximumSize).contains(c.journal.minFreeBytes), "\(key)=\(value.debugDescription)")
                } catch let e {
                    rejected += 1
                    // A file that is not YAML at all is named by its path instead of a key.
                    #expect(!e.key.isEmpty || file.map { e.message.contains($0) } == true, "\(key)=\(value.debugDescription): \(e) names no key")
                }
            }
        }
        #expect(accepted > 0 && rejected > 0)
    }

    @Test func everyDetectorKeyRejectsOrAcceptsAnyValueWithoutCrashing() {
        var gen = ConfigValueGenerator(seed: 10)
        var rejected = 0
        for key in DetectorSettings.knownKeys + ["kafka.properties.fetch.min.bytes"] {
            for _ in 0..<casesPerKey {
                let value = gen.next()
                do {
                    let s = try DetectorSettings.load(file: nil, environment: ["HOME": "/tmp"], overrides: [(key, value, "--set \(key)")])
                    #expect(s.checkpointInterval >= .milliseconds(100) && s.checkpointInterval <= ConfigReader.maximumDuration)
                } catch {
                    rejected += 1
                    #expect(!error.key.isEmpty, "\(key)=\(value.debugDescription): \(error) names no key")
                }
            }
        }
        #expect(rejected > 0)
    }

    /// Every model-file key, as a YAML scalar (quoted, and sometimes raw). An accepted file must
    /// also run: a detector built from it observes readings without trapping.
    @Test func everyModelFileKeyRejectsOrAcceptsAnyValueWithoutCrashing() {
        var gen = ConfigValueGenerator(seed: 11)
        var accepted = 0, rejected = 0
        for key in ModelFile.keys {
            for i in 0..<casesPerKey {
                let value = gen.next()
                let yaml = ModelFile.yaml(setting: key, to: value, raw: i % 4 == 0)
                do {
                    let type = try MachineModels.parse(text: yaml, path: "/models/pump.yaml")
                    accepted += 1
                    var c = type.template
                    c.machine = "p1"
                    var detector = MachineDetector(config: c)
                    for step in 0..<60 {
                        let ts = 1_767_225_600_000 + Int64(step) * 1000
                        for sensor in ["vib_rms", "temp_c"] {
                            _ = detector.observe(ts: ts, sensor: sensor, value: sensor == "vib_rms" ? 2 + Double(step % 7) / 10 : 55 + Double(step % 5))
                        }
                    }
                } catch {
                    rejected += 1
                    #expect(error.key.hasPrefix("pump") || error.key == "models", "\(key)=\(value.debugDescription): \(error)")
                }
            }
        }
        #expect(accepted > 0 && rejected > 0)
    }

    @Test func theReportedValuesAreConfigErrorsNamingTheKey() throws {
        for (key, value) in [("journal.max-bytes", "10000000000GB"), ("journal.commit-interval", "99999999999999d"),
                             ("journal.max-age", "1e300ms"), ("mqtt.keepalive", "70000s")] {
            do {
                _ = try GatewayConfiguration.load(file: nil, environment: [:], overrides: [(key, value, "--set \(key)")])
                Issue.record("\(key)=\(value) was accepted")
            } catch {
                #expect(error.key == key)
            }
        }
        #expect(ConfigReader.parseDuration("36500d") == .seconds(36_500 * 86_400))
        #expect(ConfigReader.parseDuration("36501d") == nil)
        #expect(ConfigReader.parseSize("1000000TB") == 1_000_000_000_000_000_000)
        #expect(ConfigReader.parseSize("1000001TB") == nil)
    }
}

/// A YAML file that sets one dotted key.
private func yamlFile(key: String, value: String) throws -> String {
    let path = NSTemporaryDirectory() + "forewarn-config-prop-\(UUID().uuidString.prefix(8)).yaml"
    var yaml = ""
    let parts = key.split(separator: ".")
    for (depth, part) in parts.enumerated() {
        yaml += String(repeating: "  ", count: depth) + part + ":"
        yaml += depth == parts.count - 1 ? " " + quoted(value) + "\n" : "\n"
    }
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// A YAML single-quoted scalar.
private func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

/// A complete model file in which one key can be set to any value.
enum ModelFile {
    static let keys = [
        "machines", "warmup-readings", "bucket", "impulse-filter", "fast-stream-filter", "trend-horizon", "trend-persistence", "drift-memory",
        "operating-changes.min-rate", "operating-changes.dominance", "operating-changes.max-duration", "operating-changes.slow-change-memory",
        "novelty.vigilance", "novelty.width", "novelty.memory", "novelty.rest", "novelty.min-levels",
        "models", "sensors.unit", "sensors.physical-min", "sensors.physical-max", "sensors.failure-threshold",
        "sensors.limits.min", "sensors.limits.max", "sensors.limits.severity",
        "lifecycle.open-threshold", "lifecycle.open-count", "lifecycle.open-hold", "lifecycle.close-threshold", "lifecycle.close-count",
        "lifecycle.close-hold", "lifecycle.update-score-delta", "lifecycle.min-update-interval", "lifecycle.cooldown", "lifecycle.critical-score",
        "lifecycle.recurrence-period", "lifecycle.recurrence-periods", "lifecycle.recurrence-tolerance", "lifecycle.recurrence-max-hold",
    ]

    static func yaml(setting key: String, to value: String, raw: Bool) -> String {
        let v = raw ? value : quoted(value)
        func val(_ k: String, _ normal: String) -> String { k == key ? v : normal }
        return """
            machines: [\(val("machines", "'p*'"))]
            warmup-readings: \(val("warmup-readings", "20"))
            bucket: \(val("bucket", "1s"))
            impulse-filter: \(val("impulse-filter", "true"))
            fast-stream-filter: \(val("fast-stream-filter", "true"))
            trend-horizon: \(val("trend-horizon", "2h"))
            trend-persistence: \(val("trend-persistence", "30s"))
            drift-memory: \(val("drift-memory", "5m"))
            operating-changes:
              min-rate: \(val("operating-changes.min-rate", "0.6"))
              dominance: \(val("operating-changes.dominance", "0.85"))
              max-duration: \(val("operating-changes.max-duration", "30m"))
              slow-change-memory: \(val("operating-changes.slow-change-memory", "100s"))
            novelty:
              vigilance: \(val("novelty.vigilance", "0.5"))
              width: \(val("novelty.width", "4"))
              memory: \(val("novelty.memory", "200"))
              rest: \(val("novelty.rest", "0.2"))
              min-levels: \(val("novelty.min-levels", "20"))
            models: [\(val("models", "robust_z")), trend, limit, pca]
            sensors:
              - name: vib_rms
                unit: \(val("sensors.unit", "mm/s"))
                physical-min: \(val("sensors.physical-min", "0"))
                physical-max: \(val("sensors.physical-max", "50"))
                failure-threshold: \(val("sensors.failure-threshold", "11"))
                limits:
                  - {min: \(val("sensors.limits.min", "0")), max: \(val("sensors.limits.max", "7.1")), severity: \(val("sensors.limits.severity", "warning"))}
              - name: temp_c
                physical-max: 150
            lifecycle:
              open-threshold: \(val("lifecycle.open-threshold", "0.5"))
              open-count: \(val("lifecycle.open-count", "3"))
              open-hold: \(val("lifecycle.open-hold", "10s"))
              close-threshold: \(val("lifecycle.close-threshold", "0.4"))
              close-count: \(val("lifecycle.close-count", "3"))
              close-hold: \(val("lifecycle.close-hold", "10s"))
              update-score-delta: \(val("lifecycle.update-score-delta", "0.1"))
              min-update-interval: \(val("lifecycle.min-update-interval", "1m"))
              cooldown: \(val("lifecycle.cooldown", "5m"))
              critical-score: \(val("lifecycle.critical-score", "0.8"))
              recurrence-period: \(val("lifecycle.recurrence-period", "1d"))
              recurrence-periods: \(val("lifecycle.recurrence-periods", "2"))
              recurrence-tolerance: \(val("lifecycle.recurrence-tolerance", "15m"))
              recurrence-max-hold: \(val("lifecycle.recurrence-max-hold", "1h"))

            """
    }
}

struct NoveltyModelFileTests {
    @Test("A model file's novelty mapping sets the test's parameters; a bad value is refused naming its key")
    func noveltyKeys() throws {
        let type = try MachineModels.parse(text: "novelty: {vigilance: 0.3, width: 2, memory: 50, rest: 0.5, min-levels: 8}\n", path: "/models/pump.yaml")
        let u = type.template.univariate
        #expect(u.noveltyVigilance == 0.3 && u.noveltyWidth == 2 && u.noveltyMemory == 50 && u.noveltyRestFraction == 0.5 && u.noveltyMinLevels == 8)
        #expect(type.template.enabledModels.contains(.novelty), "without a models list the default set includes novelty")
        for (text, key, message) in [("novelty: {width: 0}", "pump.novelty.width", "must be 1...64 readings"),
                                     ("novelty: {memory: 5000}", "pump.novelty.memory", "must be 1...1000 shapes"),
                                     ("novelty: {vigilance: -1}", "pump.novelty.vigilance", "must be in (0, 100]"),
                                     ("novelty: {shape: 3}", "pump.novelty.shape", "unknown key"),
                                     ("novelty: 3", "pump.novelty", "must be a mapping")] {
            let e = #expect(throws: ConfigError.self) { try MachineModels.parse(text: text + "\n", path: "/models/pump.yaml") }
            #expect(e?.key == key, "\(text): \(String(describing: e))")
            #expect(e.map { "\($0)" }?.contains(message) == true, "\(text): \(String(describing: e))")
        }
    }
}

struct FastStreamFilterModelFileTests {
    @Test("A model file's fast-stream-filter turns the fast-stream outlier filter off or on; a bad value is refused naming its key")
    func fastStreamFilterKey() throws {
        #expect(try MachineModels.parse(text: "type: pump\n", path: "/models/pump.yaml").template.univariate.impulseFilterFastStreams)
        let off = try MachineModels.parse(text: "fast-stream-filter: false\n", path: "/models/pump.yaml")
        #expect(!off.template.univariate.impulseFilterFastStreams)
        let e = #expect(throws: ConfigError.self) { try MachineModels.parse(text: "fast-stream-filter: sometimes\n", path: "/models/pump.yaml") }
        #expect(e?.key == "pump.fast-stream-filter", "\(String(describing: e))")
        #expect(e.map { "\($0)" }?.contains("must be true or false") == true, "\(String(describing: e))")
    }
}

struct DepartureHoldModelFileTests {
    @Test("A model file's departure-hold sets the hold's standard deviations (default 2, 0 = off); a negative or non-number value is refused naming its key")
    func departureHoldKey() throws {
        #expect(try MachineModels.parse(text: "type: pump\n", path: "/models/pump.yaml").template.univariate.departureHoldZ == 2)
        #expect(try MachineModels.parse(text: "departure-hold: 0\n", path: "/models/pump.yaml").template.univariate.departureHoldZ == 0)
        #expect(try MachineModels.parse(text: "departure-hold: 3.5\n", path: "/models/pump.yaml").template.univariate.departureHoldZ == 3.5)
        for bad in ["-1", "often"] {
            let e = #expect(throws: ConfigError.self) { try MachineModels.parse(text: "departure-hold: \(bad)\n", path: "/models/pump.yaml") }
            #expect(e?.key == "pump.departure-hold", "\(String(describing: e))")
        }
    }
}
