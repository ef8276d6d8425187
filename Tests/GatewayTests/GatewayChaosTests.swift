// The short fault rehearsal: runs scripts/chaos (real mosquitto with persistence, `forewarn
// dev-kafka` with 3 brokers and its control FIFO, the gateway binary, a QoS 1 publisher, kcat as
// the reading client) for about two minutes with every kind of fault (a full 2 MiB tmpfs and a
// journal damaged between runs among them), and asserts the gateway's
// promises from the script's per-phase reconciliation: nothing lost and nothing out of order
// outside SIGKILL, SIGKILL loss within the group-commit window, every duplicate identified by
// its (gateway, seq), the journal's integrity_check ok after every stop, and no process left behind.
import Foundation
import Kafka
import Testing
import TestSupport

/// The line protocol of `forewarn dev-kafka --control FIFO` (pure parsing).
struct MockControlTests {
    @Test func parsesEveryCommand() throws {
        #expect(try MockControlCommand.parse("down") == .allBrokers(up: false))
        #expect(try MockControlCommand.parse("  up ") == .allBrokers(up: true))
        #expect(try MockControlCommand.parse("broker-down 2") == .broker(2, up: false))
        #expect(try MockControlCommand.parse("broker-up\t3") == .broker(3, up: true))
        #expect(try MockControlCommand.parse("leader forewarn.readings 1 3") == .leader(topic: "forewarn.readings", partition: 1, broker: 3))
        #expect(try MockControlCommand.parse("produce-errors timed-out 5") == .produceErrors(.requestTimedOut, count: 5))
        #expect(try MockControlCommand.parse("produce-errors not-enough-replicas 1") == .produceErrors(.notEnoughReplicas, count: 1))
    }

    @Test func badLinesNameTheProblem() {
        func problem(_ line: String) -> String? {
            do { _ = try MockControlCommand.parse(line); return nil } catch { return error.problem }
        }
        #expect(problem("") == "empty command")
        #expect(problem("reboot") == "unknown command 'reboot'")
        #expect(problem("broker-down") == "expected 1 argument(s), got 0")
        #expect(problem("broker-down zero") == "broker must be a whole number in 1...1048576, got 'zero'")
        #expect(problem("broker-up 0") == "broker must be a whole number in 1...1048576, got '0'")
        #expect(problem("leader t -1 1") == "partition must be a whole number in 0...1048576, got '-1'")
        #expect(problem("produce-errors busy 3") == "unknown error kind 'busy'")
        #expect(problem("produce-errors timed-out 0") == "count must be a whole number in 1...10000, got '0'")
        #expect(MockControlCommand.usage.hasPrefix("down | up | broker-down N"))
    }

    @Test func anUnknownBrokerIsRefusedByTheCluster() throws {
        let cluster = try MockCluster(brokers: 3)
        #expect(throws: KafkaError.self) { try MockControlCommand.broker(4, up: false).apply(to: cluster) }
        try MockControlCommand.broker(2, up: false).apply(to: cluster)
        try MockControlCommand.broker(2, up: true).apply(to: cluster)
        try MockControlCommand.leader(topic: "t", partition: 0, broker: 3).apply(to: cluster)
    }
}

struct ChaosSummary: Decodable {
    struct Phase: Decodable {
        var phase: String
        var kind: String
        var published: Int
        var to_publish: Int
        var publisher_exit: Int
        var delivered: Int
        var duplicates: Int
        var duplicates_with_new_seq: Int
        var lost: Int
        var window: Int
        var trimmed: Int
        var out_of_order: Int
        var integrity: [String]
        /// disk-full: intake paused for the disk; damaged-journal: refused as documented.
        var check_ok: Bool?
        var check: String?
        /// Why a phase did not run (disk-full where mount is not permitted).
        var skipped: String?
    }
    struct Stop: Decodable { var phase: String; var how: String; var integrity: String }
    var phases: [Phase]
    var stops: [Stop]
    var unparsable: Int
    var faults: [String: Int]
}

@Suite(.serialized) struct GatewayChaosTests {
    static let kinds = ["kafka-outages", "request-errors", "leader-moves", "broker-down", "sigterm", "sigkill",
                        "mosquitto-restart", "mosquitto-backpressure", "disk-full", "damaged-journal"]

    @Test(.timeLimit(.minutes(5))) func shortRehearsalKeepsEveryPromise() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let work = TestEnvironment.temporaryDirectory("chaos")
        var passed = false
        defer {
            if passed { try? FileManager.default.removeItem(atPath: work) } else { print("chaos: logs and data kept in \(work)") }
        }
        let env = ["FOREWARN_BIN": TestEnvironment.forewarnBinary, "SEED": "11", "DURATION": "90", "CHAOS_PHASE_S": "3",
                   "CHAOS_WORK": work + "/run"]
        let script = try ChildProcess(executable: root + "/scripts/chaos", arguments: [], directory: work, name: "chaos", environment: env)
        // The rehearsal bounds itself (phases for DURATION, then a bounded drain); this is a backstop.
        if script.waitForExit(timeout: 260) == nil {
            script.stop(grace: 30)
            Issue.record("scripts/chaos did not finish in 260 s; stderr tail: \(script.stderr.suffix(2000))")
        }
        let output = script.stdout
        print(output)
        assertNothingLeftRunning(pidsFile: work + "/run/pids")

        let data = try #require(FileManager.default.contents(atPath: work + "/run/summary.json"),
                                "no summary; stderr tail: \(script.stderr.suffix(2000))")
        let summary = try JSONDecoder().decode(ChaosSummary.self, from: data)
        let ran = summary.phases.filter { $0.skipped == nil }
        for p in summary.phases where p.skipped != nil {
            print("chaos: \(p.phase) skipped: \(p.skipped ?? "")")
            #expect(p.kind == "disk-full" && !SmallDisk.isAvailable, "only disk-full may be skipped, and only without mount")
        }
        #expect(Set(ran.map(\.kind)) == Set(Self.kinds).subtracting(SmallDisk.isAvailable ? [] : ["disk-full"]),
                "every kind of fault ran at least once")
        for p in ran {
            #expect(p.check_ok != false, "\(p.phase): \(p.check ?? "")")
            #expect(p.publisher_exit == 0 && p.published == p.to_publish, "\(p.phase): the broker acknowledged all \(p.to_publish)")
            #expect(p.duplicates_with_new_seq == 0, "\(p.phase): every duplicate carries the (gateway, seq) of its first copy")
            #expect(p.out_of_order == 0, "\(p.phase): each machine in publish order after de-duplication")
            if p.kind == "sigkill" {
                #expect(p.window > 0 && p.lost <= p.window, "\(p.phase): SIGKILL lost \(p.lost), window \(p.window)")
            } else {
                #expect(p.lost == 0 && p.delivered + p.trimmed == p.published, "\(p.phase): lost \(p.lost) of \(p.published)")
            }
        }
        #expect(summary.stops.contains { $0.how == "sigkill" } && summary.stops.contains { $0.how == "sigterm" && $0.phase != "final" })
        for s in summary.stops { #expect(s.integrity == "ok", "integrity_check after \(s.how) in \(s.phase): \(s.integrity)") }
        #expect(summary.unparsable == 0)
        #expect((summary.faults["Kafka outages"] ?? 0) >= 2 && (summary.faults["mosquitto restarts under backpressure"] ?? 0) >= 1,
                "faults applied: \(summary.faults)")
        #expect(script.process.terminationStatus == 0, "scripts/chaos exit status; stdout: \(output)")
        passed = script.process.terminationStatus == 0
    }

    /// Every process the rehearsal started (it writes their pids) has exited.
    private func assertNothingLeftRunning(pidsFile: String) {
        let pids = ((try? String(contentsOfFile: pidsFile, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
        #expect(pids.count >= 4, "the rehearsal recorded the processes it started")
        for pid in pids where kill(pid, 0) == 0 {
            // Only ours: a pid may have been reused by an unrelated process since.
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            guard ["forewarn", "mosquitto", "publisher"].contains(where: { cmdline.contains($0) }) else { continue }
            // A zombie is gone for every purpose but its entry; /proc says which it is.
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).map { $0.split(separator: " ").dropFirst(2).first.map(String.init) ?? "" } ?? ""
            #expect(state == "Z", "process \(pid) started by the rehearsal is still running (state \(state))")
        }
    }
}
