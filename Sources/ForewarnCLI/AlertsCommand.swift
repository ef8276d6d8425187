import ArgumentParser
import Detection
import ForewarnCore
import Foundation
import Kafka
import Logging

struct AlertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Show maintenance alerts from the alerts topic, one readable line per event.",
        discussion: """
        An example consumer of forewarn.alerts: it follows the alert schema (docs/alert.schema.json) \
        and de-duplicates by (alert_id, state), so at-least-once delivery shows each event once.
        """)

    @Option(help: "Kafka bootstrap servers.") var kafka = "127.0.0.1:9092"
    @Option(help: "Alerts topic.") var topic = "forewarn.alerts"
    @Flag(help: "Keep waiting for new alerts.") var follow = false
    @Flag(help: "Print the raw JSON records.") var json = false
    @Option(help: "Only alerts published within this duration, e.g. 30m, 2h.") var since: String?
    @Option(help: "Only this machine.") var machine: String?
    @Option(help: "Colour: auto, always, never.") var color = "auto"
    @Option(help: "Stop after this long (with --follow), e.g. 60s.") var duration: String?

    func run() throws {
        var logger = Logger(label: "forewarn.alerts")
        logger.logLevel = .error
        let sinceMs: Int64? = try since.map { s in
            guard let d = ConfigReader.parseDuration(s) else { throw ValidationError("--since '\(s)' is not a duration (e.g. 30m, 2h)") }
            return Int64(Date().timeIntervalSince1970 * 1000) - d.components.seconds * 1000
        }
        let stopAfter: Date? = try duration.map { s in
            guard let d = ConfigReader.parseDuration(s) else { throw ValidationError("--duration '\(s)' is not a duration") }
            return Date().addingTimeInterval(Double(d.components.seconds))
        }
        let useColor = color == "always" || (color == "auto" && isatty(1) == 1)
        let consumer = try KafkaConsumer(bootstrap: kafka, groupID: "forewarn-alerts-cli-\(getpid())", logger: logger)
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic, timeout: .seconds(10))
        try consumer.assignAll(topic: topic, timeout: .seconds(10))
        // Without --follow, read up to the end as it is now: the high watermarks at start.
        let tps = (0..<Int32(partitions)).map { TopicPartition(topic: topic, partition: $0) }
        var remaining = consumer.highWatermarks(tps, timeout: .seconds(10)).filter { $0.value > 0 }
        var seen = Set<String>()
        let decoder = JSONDecoder()
        var shown = 0
        while true {
            for event in consumer.poll(timeout: .milliseconds(200)) {
                switch event {
                case let .message(m):
                    if let high = remaining[TopicPartition(topic: m.topic, partition: m.partition)], m.offset + 1 >= high {
                        remaining.removeValue(forKey: TopicPartition(topic: m.topic, partition: m.partition))
                    }
                    if let sinceMs, let ts = m.timestamp, ts < sinceMs { continue }
                    guard let alert = try? decoder.decode(AlertEvent.self, from: Data(m.value)) else {
                        FileHandle.standardError.write(Data("alerts: skipping a record that is not a valid alert at \(m.topic)[\(m.partition)]@\(m.offset)\n".utf8))
                        continue
                    }
                    if let machine, alert.machine != machine { continue }
                    let key = alert.state == .update ? "\(alert.alertId)|update|\(alert.ts)" : "\(alert.alertId)|\(alert.state.rawValue)"
                    guard seen.insert(key).inserted else { continue }
                    shown += 1
                    // Written straight to the file descriptor: a pipe must see each alert as it happens.
                    let text = json ? String(decoding: m.value, as: UTF8.self) : Self.line(alert, color: useColor)
                    FileHandle.standardOutput.write(Data((text + "\n").utf8))
                case let .error(e):
                    FileHandle.standardError.write(Data("alerts: \(e)\n".utf8))
                default:
                    break
                }
            }
            if let stopAfter, Date() >= stopAfter { break }
            if !follow && remaining.isEmpty { break }
        }
        if !json && !follow { FileHandle.standardError.write(Data("\(shown) alert events\n".utf8)) }
    }

    /// `2026-01-01 04:13:20  m-002  CRITICAL  open      pca  vib_rms,temp_c  score 0.93 ≥ 0.50  fails in ~1h12m  …`
    static func line(_ a: AlertEvent, color: Bool) -> String {
        let date = Date(timeIntervalSince1970: Double(a.ts) / 1000)
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        let sevColor = a.severity == .critical ? "\u{1B}[1;31m" : a.severity == .warning ? "\u{1B}[33m" : "\u{1B}[36m"
        let stateColor = a.state == .resolved ? "\u{1B}[32m" : a.state == .open ? "\u{1B}[1m" : ""
        func paint(_ s: String, _ c: String) -> String { color && !c.isEmpty ? c + s + "\u{1B}[0m" : s }
        var parts = [f.string(from: date), pad(a.machine, 10), paint(pad(a.severity.rawValue.uppercased(), 8), sevColor),
                     paint(pad(a.state.rawValue, 8), stateColor), pad(a.kind == .sensor ? "sensor:\(a.model)" : a.model, 18),
                     pad(a.sensors.joined(separator: ","), 16), String(format: "score %.2f", a.score)]
        if let t = a.timeToThresholdS { parts.append("fails in ~\(human(t))") }
        let top = a.evidence.filter { !$0.key.hasPrefix("pca.") && $0.key != "score" }.sorted { abs($0.value) > abs($1.value) }.prefix(2)
        if !top.isEmpty { parts.append(top.map { "\($0.key)=\(String(format: "%.2f", $0.value))" }.joined(separator: " ")) }
        parts.append("[\(a.alertId)]")
        return parts.joined(separator: "  ")
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    static func human(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86_400 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        return "\(s / 86_400)d\((s % 86_400) / 3600)h"
    }
}
