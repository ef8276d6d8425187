// The inputs Forewarn takes from outside, as fuzz targets: each takes arbitrary bytes and must
// return without crashing, hanging or tripping a sanitizer, and where an input is accepted, what
// comes out must hold (a parsed reading survives its canonical encoding unchanged).
// The libFuzzer binaries in Fuzz/ call these, and the suite replays the kept corpus
// (Tests/FuzzCorpus/<target>/) through them, so a crash found once stays found.
import Detector
import Evaluation
import ForewarnCore
import Foundation
import ServiceSupport

public enum FuzzTarget: String, CaseIterable, Sendable {
    /// MQTT topic + payload through the topic template and the payload parser, then the
    /// canonical Kafka encoding and its decoder (what the detector reads).
    case payload
    /// Topic templates as an operator writes them in `mqtt.topic-template`.
    case topicTemplate = "topic-template"
    /// Configuration: YAML text, `FOREWARN_*` variables and `--set` overrides, for the gateway and the detector.
    case config
    /// A model file (`models/*.yaml`).
    case modelFile = "model-file"
    /// The SKAB/NAB CSV loader behind `forewarn detect --replay` and `evaluate`.
    case csv
    /// The request line of the /metrics and /healthz endpoint (it faces the network).
    case http

    /// Runs one input. Failures the input deserves (a rejection, a config error) are fine; a
    /// broken invariant traps, so the fuzzer and the corpus test both report it.
    public func run(_ data: [UInt8]) {
        switch self {
        case .payload: Self.payload(data)
        case .topicTemplate: _ = try? TopicTemplate(String(decoding: data, as: UTF8.self))
        case .config: Self.config(data)
        case .modelFile: _ = try? MachineModels.parse(text: String(decoding: data, as: UTF8.self), path: "fuzz.yaml")
        case .csv: _ = try? CSVLoader.parse(String(decoding: data, as: UTF8.self), name: "fuzz.csv")
        case .http:
            if let line = HTTPRequestLine(data) {
                precondition(!line.method.isEmpty && !line.path.contains("?"), "request line \(line)")
            }
        }
    }

    static let templates = ["factory/{site}/{machine}/{sensor}", "{machine}/{sensor}", "plant/{machine}", "a/+/{machine}/#"]

    /// First byte: which template; then the topic up to the first newline; the rest is the payload.
    static func payload(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let rest = data.dropFirst()
        let cut = rest.firstIndex(of: 0x0A) ?? rest.endIndex
        let topic = String(decoding: rest[rest.startIndex..<cut], as: UTF8.self)
        let body = Array(cut < rest.endIndex ? rest[(cut + 1)...] : [])
        guard let template = try? TopicTemplate(templates[Int(selector) % templates.count]) else { return }
        let parser = PayloadParser(template: template)
        comparePaths(parser, topic: topic, payload: body)
        guard let readings = try? parser.parse(topic: topic, payload: body, receivedAt: 1_700_000_000_000) else { return }
        for r in readings {
            precondition(r.value.isFinite, "accepted a non-finite value: \(r)")
            precondition(r.ts >= 0 && r.ts <= PayloadParser.maxTimestamp, "accepted a timestamp out of range: \(r)")
            let back = try? Reading.decodeCanonical(r.canonicalJSON())
            precondition(back == r, "canonical round trip changed \(r) into \(String(describing: back))")
        }
    }

    /// The parse with `PayloadScanner` (from an array and from borrowed bytes) gives what the
    /// general path alone gives: the same readings and stamp, or the same rejection.
    static func comparePaths(_ parser: PayloadParser, topic: String, payload: [UInt8]) {
        func outcome(_ parse: () throws(PayloadRejection) -> PayloadParser.ParsedMessage) -> Result<PayloadParser.ParsedMessage, PayloadRejection> {
            do { return .success(try parse()) } catch { return .failure(error) }
        }
        let t: Int64 = 1_700_000_000_000
        let general = outcome { () throws(PayloadRejection) in try parser.parseMessageWithoutScanner(topic: topic, payload: payload, receivedAt: t) }
        let array = outcome { () throws(PayloadRejection) in try parser.parseMessage(topic: topic, payload: payload, receivedAt: t) }
        let borrowed = payload.withUnsafeBytes { bytes in
            outcome { () throws(PayloadRejection) in try parser.parseMessage(topic: topic, payload: bytes, receivedAt: t) }
        }
        precondition(array == general && borrowed == general, "the scanner's parse \(array) differs from the general path's \(general)")
    }

    /// Lines `key=value`: the first byte says where they go (flags, environment, YAML text).
    static func config(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let text = String(decoding: data.dropFirst(), as: UTF8.self)
        switch selector % 3 {
        case 0:
            var source = ConfigSource()
            try? source.loadYAML(text: text, origin: "fuzz.yaml")
        default:
            var overrides: [(key: String, value: String, flag: String)] = []
            var env: [String: String] = [:]
            for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(64) {
                let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(parts[0]), value = parts.count > 1 ? String(parts[1]) : ""
                if selector % 3 == 1 { overrides.append((key, value, "--set")) } else { env["FOREWARN_" + key] = value }
            }
            _ = try? GatewayConfiguration.load(file: nil, environment: env, overrides: overrides)
            _ = try? DetectorSettings.load(file: nil, environment: env, overrides: overrides)
        }
    }
}
