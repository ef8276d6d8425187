import Foundation
@testable import Journal
import Logging
import Testing
import TestSupport

/// Who checkpoints the WAL: the pure decision, the frame count it decides on, then the journal
/// with its checkpointer thread.
struct CheckpointPolicyTests {
    /// The default reserve (64 MiB): a 16 MiB budget, 4,096 pages; woken at 1,000 as SQLite's automatic checkpoint.
    let policy = CheckpointPolicy(budgetFrames: 4096, autocheckpointFrames: 1000)

    @Test func theDefaultsWakeTheCheckpointerWhereTheCommitUsedToCheckpoint() {
        #expect(policy == CheckpointPolicy(wakeFrames: 1000, tailFrames: 62, inCommitFrames: 4096))
    }

    @Test func aSmallReserveKeepsTheFallbackInsideTheBudget() {
        // 256 KiB reserve: a 64 KiB budget, 16 pages, which is also where SQLite would checkpoint.
        let small = CheckpointPolicy(budgetFrames: 16, autocheckpointFrames: 16)
        #expect(small.inCommitFrames == 16 && small.wakeFrames == 8)
        #expect(small.decide(walFrames: 16, pendingFrames: 16) == .checkpointInCommit)
    }

    @Test func belowTheWakeUpNothingHappens() {
        #expect(policy.decide(walFrames: 999, pendingFrames: 999) == .none)
        #expect(policy.decide(walFrames: 0, pendingFrames: 0) == .none)
    }

    @Test func framesToCopyWakeTheCheckpointer() {
        #expect(policy.decide(walFrames: 1000, pendingFrames: 1000) == .wakeCheckpointer)
        #expect(policy.decide(walFrames: 4095, pendingFrames: 1500) == .wakeCheckpointer)
    }

    @Test func theCommitCopiesAShortTailSoThatTheWALRestarts() {
        #expect(policy.decide(walFrames: 1200, pendingFrames: 62) == .checkpointInCommit)
        #expect(policy.decide(walFrames: 1200, pendingFrames: 63) == .none)
        // A short WAL is left to grow: nothing to restart yet.
        #expect(policy.decide(walFrames: 999, pendingFrames: 10) == .none)
    }

    @Test func aCheckpointerThatFallsBehindLeavesItToTheCommit() {
        #expect(policy.decide(walFrames: 4096, pendingFrames: 4096) == .checkpointInCommit)
        #expect(policy.decide(walFrames: 5000, pendingFrames: 1500) == .checkpointInCommit)
        #expect(policy.decide(walFrames: 4096, pendingFrames: 100) == .checkpointInCommit)
    }

    @Test func withoutACheckpointerTheCommitCheckpointsAsSQLiteWould() {
        let alone = CheckpointPolicy.inCommitOnly(frames: 1000)
        #expect(alone.decide(walFrames: 999, pendingFrames: 999) == .none)
        #expect(alone.decide(walFrames: 1000, pendingFrames: 1000) == .checkpointInCommit)
        #expect(alone.decide(walFrames: 1000, pendingFrames: 0) == .checkpointInCommit)
    }
}

struct WALFrameCountTests {
    @Test func commitsAddFramesAndACheckpointCopiesThem() {
        var c = WALFrameCount()
        c.committed(inLog: 10)
        c.committed(inLog: 25)
        #expect(c.pending == 25 && c.inLog == 25)
        c.checkpointed(inLog: 25, copied: 20)
        #expect(c.pending == 5)
    }

    @Test func afterACompleteCheckpointACommitCountsTheWholeWALUntilItIsKnownToHaveRestarted() {
        var c = WALFrameCount()
        c.committed(inLog: 30)
        c.checkpointed(inLog: 30, copied: 30)
        #expect(c.pending == 0)
        c.committed(inLog: 34)   // appended, or restarted and grew past 30: the hook cannot tell
        #expect(c.pending == 34)
        c.committed(inLog: 3)    // restarted
        #expect(c.pending == 3 && c.inLog == 3)
    }

    @Test func theCheckpointersReportOfAnEarlierWALStateKeepsTheLaterFramesPending() {
        var c = WALFrameCount()
        c.committed(inLog: 1000)
        c.committed(inLog: 1010)   // committed while the checkpointer copied the first 1,000
        c.checkpointed(inLog: 1000, copied: 1000, concurrently: true)
        #expect(c.pending == 10 && c.inLog == 1010)
    }

    @Test func afterTheCheckpointersCompleteCheckpointTheNextCommitCountsOnlyItsFrames() {
        var c = WALFrameCount()
        c.committed(inLog: 1000)
        c.checkpointed(inLog: 1000, copied: 1000, concurrently: true)
        c.committed(inLog: 1512)   // the writer's transaction had begun: the WAL did not restart
        #expect(c.pending == 512, "not the whole WAL, which would wake the checkpointer for every commit")
        c.committed(inLog: 40)     // restarted later
        #expect(c.pending == 40)
    }

    @Test func aTruncateCheckpointEmptiesTheWAL() {
        var c = WALFrameCount()
        c.committed(inLog: 500)
        c.checkpointed(inLog: 0, copied: 0)
        #expect(c.pending == 0 && c.inLog == 0)
    }

    @Test func notInWALModeIsIgnored() {
        var c = WALFrameCount()
        c.committed(inLog: 7)
        c.checkpointed(inLog: -1, copied: -1)
        #expect(c.pending == 7)
    }
}

struct WALCheckpointerTests {
    let logger = Logger(label: "test")

    func entry(_ i: Int) -> NewJournalEntry {
        NewJournalEntry(kind: .reading, machine: "m\(i % 4)", mqttTopic: "factory/s1/m/v", receivedAt: Int64(1_000 + i),
                        payload: Array(String(repeating: "x", count: 400).utf8))
    }

    func walBytes(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    @Test("the checkpointer copies the WAL while the commits go on, and the WAL stays inside its budget")
    func theCheckpointerKeepsTheWALBounded() throws {
        let dir = TestEnvironment.temporaryDirectory("checkpointer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 16 MiB reserve: a 4 MiB budget (1,024 pages); woken at 512 pages, the commit's fallback at 1,024.
        let path = dir + "/journal.sqlite"
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1, minFreeBytes: 16 << 20), logger: logger)
        var largest: Int64 = 0
        for i in 0..<8_000 {
            _ = try j.append([entry(i)])
            if i % 100 == 0 { largest = max(largest, walBytes(path)) }
        }
        let counts = j.walCheckpoints
        #expect(counts.checkpointer > 0, "the checkpointer ran: \(counts)")
        #expect(largest <= j.walBudgetBytes + 64 * 4120, "the WAL file stayed within its budget and a few commits: \(largest) bytes")
        #expect(j.probeStorage().pendingCheckpointBytes < j.walBudgetBytes)
        #expect(j.checkpoint(), "a TRUNCATE checkpoint waits for the checkpointer's instead of failing busy")
        #expect(j.probeStorage().pendingCheckpointBytes == 0)
        #expect(try j.readCommitted(after: 0, limit: 10_000).count == 8_000)
    }

    @Test("a journal closed while its checkpointer works reopens with every entry")
    func closingStopsTheCheckpointer() throws {
        let dir = TestEnvironment.temporaryDirectory("checkpointer-close")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/journal.sqlite"
        for round in 0..<3 {
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 10, minFreeBytes: 1 << 20), logger: logger)
            for i in 0..<3000 { _ = try j.append([entry(round * 3000 + i)]) }
            try j.commit()
        }
        let j = try Journal(options: JournalOptions(path: path), logger: logger)
        #expect(j.stats.entries == 9000)
        #expect(try j.integrityProblems().isEmpty)
    }
}
