// deploy/prometheus (issue 9): the alerting rules pass `promtool check rules`, every rule has a
// case in `promtool test rules`, and every forewarn metric a rule uses exists in the sources.
import Foundation
import Testing
import TestSupport

@Suite struct MonitoringRulesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let rules = repository + "/deploy/prometheus/forewarn-rules.yaml"
    static let ruleTests = repository + "/deploy/prometheus/forewarn-rules.test.yaml"

    func promtool(_ arguments: [String]) throws -> (status: Int32, output: String)? {
        guard let tool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        let dir = TestEnvironment.temporaryDirectory("promtool-rules")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = try ChildProcess(executable: tool, arguments: arguments, directory: dir, name: "promtool")
        guard let status = child.waitForExit(timeout: 60) else { child.stop(); throw TestFailure("promtool did not finish in 60 s") }
        return (status, child.stdout + child.stderr)
    }

    @Test func theRulesPassPromtoolCheckAndTheirTests() throws {
        guard let check = try promtool(["check", "rules", Self.rules]) else {
            print("promtool not installed (apt-get install prometheus): skipped")
            return
        }
        #expect(check.status == 0 && check.output.contains("SUCCESS: 8 rules found"), "\(check.output)")
        let test = try #require(try promtool(["test", "rules", Self.ruleTests]))
        #expect(test.status == 0 && test.output.contains("SUCCESS"), "\(test.output)")
    }

    @Test func everyRuleHasATestCaseAndUsesMetricsThatExist() throws {
        let rules = try String(contentsOfFile: Self.rules, encoding: .utf8)
        let tests = try String(contentsOfFile: Self.ruleTests, encoding: .utf8)
        let alerts = rules.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("- alert: ") ? String(t.dropFirst(9)) : nil
        }
        #expect(Set(alerts) == ["ForewarnServiceDown", "ForewarnJournalGrowing", "ForewarnReadingsDropped", "ForewarnKafkaUnreachable",
                                "ForewarnMQTTDisconnected", "ForewarnDetectorLag", "ForewarnMachineSilent", "ForewarnIntakePausedForDisk"])
        for a in alerts { #expect(tests.contains("alertname: \(a)\n        exp_alerts:\n          - exp_labels"), "no firing case for \(a)") }
        let used = Set(rules.components(separatedBy: "forewarn_").dropFirst().map { "forewarn_" + $0.prefix { $0.isLetter || $0 == "_" } })
        let existing = metricNamesInSources(Self.repository + "/Sources")
        #expect(!used.isEmpty && used.isSubset(of: existing), "rules use metrics that no source emits: \(used.subtracting(existing).sorted())")
    }
}
