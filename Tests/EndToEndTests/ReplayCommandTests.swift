// `forewarn detect --replay`, as the outside check runs it: its CSV format is a contract, and
// `--events` writes the alert events behind each opening (model, sensors, evidence).
import Detection
import Foundation
import Testing
import TestSupport

@Suite("forewarn detect --replay")
struct ReplayCommandTests {
    /// 2,000 readings five minutes apart: Gaussian noise around 50 (σ 1), and from row 1,500 a step
    /// of +12 σ that stays.
    static func stepFile(in dir: String) throws -> (path: String, epochMs: [Int64]) {
        var rng = SplitMix64(seed: 42)
        var csv = "timestamp,value\n"
        var epochMs: [Int64] = []
        let start: Int64 = 1_420_070_400_000  // 2015-01-01 00:00:00 UTC
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        for i in 0..<2000 {
            let ts = start + Int64(i) * 300_000
            epochMs.append(ts)
            let value = 50 + rng.nextGaussian() + (i >= 1500 ? 12 : 0)
            csv += "\(formatter.string(from: Date(timeIntervalSince1970: Double(ts) / 1000))),\(value)\n"
        }
        let path = dir + "/step.csv"
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, epochMs)
    }

    /// Starts `forewarn detect --replay CSV --events EVENTS` with its output in `dir`.
    static func detect(replay csv: String, events: String, in dir: String) throws -> ChildProcess {
        try ChildProcess(executable: TestEnvironment.forewarnBinary,
                         arguments: ["detect", "--replay", csv, "--events", events], directory: dir, name: "detect")
    }

    @Test("prints timestamp,score,alert,active for every row, and --events writes one open event for each row whose alert is 1")
    func eventsMatchTheOpenings() throws {
        let dir = TestEnvironment.temporaryDirectory("replay")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (path, epochMs) = try Self.stepFile(in: dir)
        let eventsPath = dir + "/events.jsonl"
        let run = try Self.detect(replay: path, events: eventsPath, in: dir)
        #expect(run.waitForExit(timeout: 60) == 0, "detect: \(run.stderr.suffix(500))")

        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.first == "timestamp,score,alert,active")
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(rows.count == 2000)
        #expect(rows.allSatisfy { $0.count == 4 && Double($0[1]) != nil && ["0", "1"].contains($0[2]) && ["0", "1"].contains($0[3]) })
        let openedRows = rows.indices.filter { rows[$0][2] == "1" }
        // The step is the only thing in the file: one opening, within 20 readings of it.
        #expect(openedRows.count == 1)
        #expect(openedRows.allSatisfy { (1500..<1520).contains($0) }, "openings at rows \(openedRows)")

        let decoder = JSONDecoder()
        let events = try String(contentsOfFile: eventsPath, encoding: .utf8).split(separator: "\n")
            .map { try decoder.decode(AlertEvent.self, from: Data($0.utf8)) }
        let opens = events.filter { $0.kind == .machine && $0.state == .open }
        #expect(opens.map(\.ts) == openedRows.map { epochMs[$0] })
        #expect(opens.allSatisfy { !$0.model.isEmpty && $0.sensors == ["value"] && $0.score >= $0.threshold })
        #expect(events.allSatisfy { $0.machine == "step.csv" || $0.machine.hasSuffix("/step.csv") }, "machines: \(Set(events.map(\.machine)))")
    }

    @Test("--events into a directory that does not exist fails and names the path")
    func unwritableEventsPath() throws {
        let dir = TestEnvironment.temporaryDirectory("replay-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (path, _) = try Self.stepFile(in: dir)
        let bad = dir + "/missing/events.jsonl"
        let run = try Self.detect(replay: path, events: bad, in: dir)
        let status = run.waitForExit(timeout: 60)
        #expect(status != nil && status != 0)
        #expect(run.stderr.contains("cannot write \(bad)"), "stderr: \(run.stderr.suffix(500))")
        #expect(run.stdout.isEmpty)
    }
}
