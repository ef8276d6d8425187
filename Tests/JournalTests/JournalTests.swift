import ForewarnCore
import Foundation
import Journal
import Logging
import Synchronization
import Testing

struct JournalTests {
    let logger = Logger(label: "test")

    func path() -> String { NSTemporaryDirectory() + "forewarn-journal-\(UUID().uuidString).sqlite" }

    func entry(_ machine: String, _ i: Int, bytes: Int = 20) -> NewJournalEntry {
        NewJournalEntry(kind: .reading, machine: machine, mqttTopic: "factory/s1/\(machine)/v", receivedAt: Int64(1_000 + i),
                        payload: Array(String(repeating: "x", count: bytes).utf8))
    }

    @Test func onlyCommittedEntriesAreReadAndInOrder() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
        try j.append((0..<5).map { entry("m1", $0) })
        #expect(try j.readCommitted(after: 0, limit: 100).isEmpty, "not yet committed: the forwarder must not see it")
        try j.commit()
        let read = try j.readCommitted(after: 0, limit: 100)
        #expect(read.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(try j.readCommitted(after: 3, limit: 100).map(\.seq) == [4, 5])
    }

    @Test func groupCommitEveryNEntries() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 3, commitInterval: .seconds(60)), logger: logger)
        try j.append([entry("m1", 0), entry("m1", 1)])
        #expect(j.stats.uncommitted == 2)
        try j.append([entry("m1", 2)])
        #expect(j.stats.uncommitted == 0)
        #expect(j.stats.committedSeq == 3)
    }

    @Test func deliveredEntriesAreDeletedAndSurviveRestart() throws {
        let p = path()
        do {
            let j = try Journal(options: JournalOptions(path: p, commitEvery: 1), logger: logger)
            try j.append((0..<10).map { entry("m\($0 % 2)", $0) })
            try j.markDelivered([1, 2, 3])
            try j.commit()
            #expect(j.stats.entries == 7)
        }
        let reopened = try Journal(options: JournalOptions(path: p), logger: logger)
        #expect(reopened.stats.entries == 7)
        #expect(try reopened.readCommitted(after: 0, limit: 100).map(\.seq) == Array(4...10))
        // Sequence numbers are never reused, even after deletes and a restart.
        try reopened.append([entry("m1", 99)])
        try reopened.commit()
        #expect(try reopened.readCommitted(after: 10, limit: 10).map(\.seq) == [11])
    }

    @Test("a run of delivered seqs is deleted as a range: counts, bytes, reads and a restart agree with one-by-one deletes")
    func deliveredRunsAreDeletedAsRanges() throws {
        let p = path()
        let perEntry: Int64
        do {
            let j = try Journal(options: JournalOptions(path: p, commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
            try j.append((0..<100).map { entry("m\($0 % 3)", $0) })
            try j.commit()
            perEntry = j.stats.bytes / 100
            #expect(j.stats.bytes == perEntry * 100)
            try j.markDelivered([50])                       // a hole inside the next run
            // 1...40 and 45...60 are runs (with 50 already gone); 42 is alone; unsorted, with a repeat.
            try j.markDelivered(Array((1...40).reversed()) + [42] + Array(45...60) + [7])
            #expect(j.stats.entries == 100 - 40 - 1 - 16)
            #expect(j.stats.bytes == perEntry * Int64(100 - 40 - 1 - 16))
            let left = try j.readCommitted(after: 0, limit: 1000).map(\.seq)
            #expect(left == [41, 43, 44] + Array(61...100))
            try j.commit()
        }
        let reopened = try Journal(options: JournalOptions(path: p), logger: logger)
        #expect(reopened.stats.entries == 43)
        #expect(reopened.stats.bytes == perEntry * 43)
        #expect(try reopened.readCommitted(after: 0, limit: 1000).map(\.seq) == [41, 43, 44] + Array(61...100))
    }

    @Test("a reused batch holds exactly what readCommitted returns, fields intact")
    func batchReadMatchesEntries() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
        try j.append((0..<6).map { entry("m\($0 % 2)", $0, bytes: $0 * 7) })   // the first payload is empty
        try j.append([NewJournalEntry(kind: .deadLetter, machine: "", mqttTopic: "factory/s1/bad", receivedAt: 77,
                                      payload: Array("not json".utf8), reason: "parse: no value")])
        try j.commit()
        var batch = JournalBatch()
        try j.readCommitted(after: 0, limit: 100, into: &batch)
        #expect(batch.rows.count == 7)
        try j.readCommitted(after: 4, limit: 2, into: &batch)   // emptied first, then filled again
        #expect(batch.rows.map(\.seq) == [5, 6])
        let entries = try j.readCommitted(after: 0, limit: 100)
        #expect(entries.map(\.payload.count) == [0, 7, 14, 21, 28, 35, 8])
        #expect(entries[6].kind == .deadLetter && entries[6].reason == "parse: no value" && entries[6].machine == "" && entries[6].receivedAt == 77)
        #expect(entries[1].machine == "m1" && entries[1].mqttTopic == "factory/s1/m1/v" && entries[1].reason == nil)
        var seen: [Int64] = []
        batch.forEach { row in
            seen.append(row.seq)
            return false   // stops after the first
        }
        #expect(seen == [5])
    }

    @Test("delivered ranges are skipped by reads before the commit, and counted once committed")
    func rangeDeletesBeforeCommit() throws {
        let p = path()
        do {
            let j = try Journal(options: JournalOptions(path: p, commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
            try j.append((0..<40).map { entry("m1", $0) })
            try j.commit()
            try j.markDelivered(Array(1...20) + [30])
            #expect(try j.readCommitted(after: 0, limit: 100).map(\.seq) == Array(21...29) + Array(31...40))
            #expect(j.stats.entries == 19)
            try j.commit()
        }
        let reopened = try Journal(options: JournalOptions(path: p), logger: logger)
        #expect(try reopened.readCommitted(after: 0, limit: 100).map(\.seq) == Array(21...29) + Array(31...40))
    }

    @Test("reads after the forwarder's cursor see committed entries only, while deletes and appends wait in the open transaction")
    func readsAfterTheCursorBesideAnOpenTransaction() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
        try j.append((0..<10).map { entry("m1", $0) })
        try j.commit()
        try j.markDelivered(Array(1...5))                  // deletes in the open transaction
        try j.append((10..<15).map { entry("m1", $0) })    // appends in the same transaction
        #expect(try j.readCommitted(after: 5, limit: 100).map(\.seq) == Array(6...10))
        #expect(try j.readCommitted(after: 0, limit: 100).map(\.seq) == Array(6...10), "a rewind skips the deletes not committed yet")
        #expect(try j.readCommitted(after: 7, limit: 2).map(\.seq) == [8, 9])
        try j.commit()
        #expect(try j.readCommitted(after: 5, limit: 100).map(\.seq) == Array(6...15))
        #expect(try j.readCommitted(after: 0, limit: 100).map(\.seq) == Array(6...15))
    }

    @Test("entries dropped ahead of the cursor are not read while their deletes are uncommitted")
    func dropsAheadOfTheCursorAreNotRead() throws {
        // Each entry accounts 84 bytes; 10 fit in 850. Commits only when asked.
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1000, commitInterval: .seconds(60), maxBytes: 850,
                                                    fullPolicy: .dropOldest), logger: logger)
        try j.append((0..<10).map { entry("m0", $0) })
        try j.commit()
        try j.markDelivered([1, 2])
        try j.commit()
        #expect(try j.readCommitted(after: 2, limit: 100).map(\.seq) == Array(3...10))
        // Four new entries need room for two more than the two deleted: seqs 3 and 4 go, above the cursor.
        let dropped = try j.append((10..<14).map { entry("m0", $0) })
        #expect(dropped.count == 2)
        #expect(try j.readCommitted(after: 2, limit: 100).map(\.seq) == Array(5...10), "3 and 4 were dropped; 11-14 are not committed")
        try j.commit()
        #expect(try j.readCommitted(after: 2, limit: 100).map(\.seq) == Array(5...14))
    }

    @Test("a read after the cursor does not wait while a commit holds the journal lock")
    func readsDoNotWaitForTheJournalLock() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1000, commitInterval: .seconds(60)), logger: logger)
        try j.append((0..<10).map { entry("m1", $0) })
        try j.commit()
        let seen = Mutex<[Int64]?>(nil)
        let holding = Mutex(true)
        // The observer runs under the journal lock: it waits (bounded) for a read on another thread.
        j.onCommit {
            guard holding.withLock({ $0 }) else { return }
            holding.withLock { $0 = false }
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                let read = (try? j.readCommitted(after: 10, limit: 100))?.map(\.seq)
                seen.withLock { $0 = read }
                done.signal()
            }
            _ = done.wait(timeout: .now() + 5)
            #expect(seen.withLock { $0 } == [11, 12], "the read finished while the commit held the lock")
        }
        try j.append([entry("m1", 10), entry("m1", 11)])
        try j.commit()
        #expect(seen.withLock { $0 } == [11, 12])
    }

    @Test func deliveredRunsSplitSortAndCap() {
        #expect(DeliveredRuns([], maxRun: 4).runs.isEmpty)
        #expect(DeliveredRuns([5, 3, 4, 9, 4, 1], maxRun: 100).runs == [1...1, 3...5, 9...9])
        #expect(DeliveredRuns(Array(1...10), maxRun: 4).runs == [1...4, 5...8, 9...10])
        #expect(DeliveredRuns([1, 1, 2, 2, 3], maxRun: 2).runs == [1...2, 3...3])
    }

    @Test("expiry finds nothing to drop in a journal of fresh entries, and still drops the old ones")
    func expiryLooksOnlyAtTheOldest() throws {
        let j = try Journal(options: JournalOptions(path: path(), maxAge: .seconds(10)), logger: logger)
        try j.append((0..<50).map { entry("m1", $0) })   // received at 1,000...1,049 ms
        try j.commit()
        #expect(try j.expire(nowMillis: 1_000 + 9_000).isEmpty)
        #expect(j.stats.entries == 50)
        let dropped = try j.expire(nowMillis: 1_010 + 10_000)   // cutoff 1,010: the first 10 are older
        #expect(dropped.count == 10)
        #expect(try j.readCommitted(after: 0, limit: 100).first?.seq == 11)
    }

    @Test func dropOldestCountsPerMachine() throws {
        // Each entry accounts 20 + 2 + 14 + 48 = 84 bytes; 10 fit in 850.
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1, maxBytes: 850, fullPolicy: .dropOldest), logger: logger)
        for i in 0..<10 { try j.append([entry(i % 2 == 0 ? "m0" : "m1", i)]) }
        #expect(j.stats.entries == 10)
        let dropped = try j.append([entry("m2", 10), entry("m2", 11)])
        #expect(dropped == [JournalDrop(machine: "m0", reason: "max-bytes"), JournalDrop(machine: "m1", reason: "max-bytes")])
        #expect(j.stats.entries == 10)
        #expect(j.stats.bytes <= 850)
        #expect(try j.readCommitted(after: 0, limit: 1).first?.seq == 3, "the two oldest went")
        #expect(j.drops == [JournalDrop(machine: "m0", reason: "max-bytes"): 1, JournalDrop(machine: "m1", reason: "max-bytes"): 1])
    }

    @Test func backpressurePolicyNeverDrops() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1, maxBytes: 850, fullPolicy: .backpressure), logger: logger)
        for i in 0..<12 { try j.append([entry("m0", i)]) }
        #expect(j.stats.entries == 12)
        #expect(j.isFull)
        #expect(j.drops.isEmpty)
    }

    @Test func expiryDropsByAge() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 1, maxAge: .seconds(1)), logger: logger)
        try j.append([entry("m0", 0), entry("m1", 5000)])
        let dropped = try j.expire(nowMillis: 1_000 + 2_500)
        #expect(dropped == [JournalDrop(machine: "m0", reason: "max-age")])
        #expect(j.stats.entries == 1)
    }

    @Test func redeliveredStampedMessageIsSkippedAcrossRestart() throws {
        let p = path()
        do {
            let j = try Journal(options: JournalOptions(path: p, commitEvery: 1), logger: logger)
            #expect(try j.append([entry("m0", 1)], messageDigest: 42) == .appended(dropped: []))
            #expect(try j.append([entry("m0", 1)], messageDigest: 42) == .duplicate)
        }
        let reopened = try Journal(options: JournalOptions(path: p), logger: logger)
        #expect(try reopened.append([entry("m0", 1)], messageDigest: 42) == .duplicate)
        #expect(try reopened.append([entry("m0", 2)], messageDigest: 43) == .appended(dropped: []))
    }

    @Test func corruptFileIsAClearErrorAndIsNotTouched() throws {
        let p = path()
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        try garbage.write(to: URL(fileURLWithPath: p))
        do {
            _ = try Journal(options: JournalOptions(path: p), logger: logger)
            Issue.record("a corrupt journal must not open")
        } catch {
            #expect(error.kind == .corrupt)
            #expect(error.description.contains(p))
            #expect(error.description.contains("never truncates"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: p)) == garbage, "the file is left as it was")
    }

    @Test("a new journal numbers from firstSeq; reopened, it continues from its own last seq whatever firstSeq says")
    func firstSeqSeedsOnlyANewJournal() throws {
        let p = path()
        let seed = JournalOptions.clockSeq(nowMs: 1_700_000_000_000)
        do {
            let j = try Journal(options: JournalOptions(path: p, firstSeq: seed), logger: logger)
            try j.append((0..<3).map { entry("m1", $0) })
            try j.commit()
            #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [seed, seed + 1, seed + 2])
        }
        let reopened = try Journal(options: JournalOptions(path: p, firstSeq: 1), logger: logger)
        try reopened.append([entry("m1", 3)])
        try reopened.commit()
        #expect(try reopened.readCommitted(after: 0, limit: 10).map(\.seq) == [seed, seed + 1, seed + 2, seed + 3])
    }
}

