import Foundation
import Journal
import Logging
import Synchronization
import Testing

/// The group-commit trigger: the pure decision, then the journal acting on it.
struct CommitPolicyTests {
    let policy = CommitPolicy(maxEntries: 200, maxDelay: .milliseconds(20), whenIdle: true)

    @Test func nothingOpenNeverCommits() {
        #expect(policy.decide(inTransaction: false, pendingEntries: 0, openFor: .seconds(10), inputQueued: false, sinceLastCommit: .seconds(1)) == .wait)
    }

    @Test func idleInputCommitsAtOnce() {
        #expect(policy.decide(inTransaction: true, pendingEntries: 1, openFor: .zero, inputQueued: false, sinceLastCommit: .seconds(1)) == .commitNow)
    }

    @Test func queuedInputWaitsForTheGroupToFill() {
        #expect(policy.decide(inTransaction: true, pendingEntries: 199, openFor: .milliseconds(19), inputQueued: true, sinceLastCommit: .seconds(1)) == .wait)
        #expect(policy.decide(inTransaction: true, pendingEntries: 200, openFor: .zero, inputQueued: true, sinceLastCommit: .seconds(1)) == .commitNow)
    }

    @Test func theIntervalBoundsTheWaitEvenUnderLoad() {
        #expect(policy.decide(inTransaction: true, pendingEntries: 5, openFor: .milliseconds(20), inputQueued: true, sinceLastCommit: .seconds(1)) == .commitNow)
    }

    @Test func deletesOnlyWaitForTheInterval() {
        // A transaction holding only the forwarder's deletes has nothing a crash could lose.
        #expect(policy.decide(inTransaction: true, pendingEntries: 0, openFor: .milliseconds(19), inputQueued: false, sinceLastCommit: .seconds(1)) == .wait)
        #expect(policy.decide(inTransaction: true, pendingEntries: 0, openFor: .milliseconds(20), inputQueued: false, sinceLastCommit: .seconds(1)) == .commitNow)
    }

    @Test func theMinimumGapHoldsBackAnIdleCommitOnly() {
        let gapped = CommitPolicy(maxEntries: 200, maxDelay: .milliseconds(20), whenIdle: true, minGap: .milliseconds(2))
        #expect(gapped.decide(inTransaction: true, pendingEntries: 3, openFor: .zero, inputQueued: false, sinceLastCommit: .microseconds(1999)) == .wait)
        #expect(gapped.decide(inTransaction: true, pendingEntries: 3, openFor: .zero, inputQueued: false, sinceLastCommit: .milliseconds(2)) == .commitNow)
        // The count and the interval do not wait for the gap.
        #expect(gapped.decide(inTransaction: true, pendingEntries: 200, openFor: .zero, inputQueued: true, sinceLastCommit: .zero) == .commitNow)
        #expect(gapped.decide(inTransaction: true, pendingEntries: 1, openFor: .milliseconds(20), inputQueued: true, sinceLastCommit: .zero) == .commitNow)
    }

    @Test func withoutWhenIdleOnlyCountAndTimeCommit() {
        let timed = CommitPolicy(maxEntries: 200, maxDelay: .milliseconds(20), whenIdle: false)
        #expect(timed.decide(inTransaction: true, pendingEntries: 1, openFor: .zero, inputQueued: false, sinceLastCommit: .seconds(1)) == .wait)
        #expect(timed.decide(inTransaction: true, pendingEntries: 200, openFor: .zero, inputQueued: false, sinceLastCommit: .seconds(1)) == .commitNow)
        #expect(timed.decide(inTransaction: true, pendingEntries: 1, openFor: .milliseconds(20), inputQueued: false, sinceLastCommit: .seconds(1)) == .commitNow)
    }

    // MARK: - the journal acting on it

    let logger = Logger(label: "test")
    func path() -> String { NSTemporaryDirectory() + "forewarn-commitpolicy-\(UUID().uuidString).sqlite" }
    func entry(_ i: Int) -> NewJournalEntry {
        NewJournalEntry(kind: .reading, machine: "m1", mqttTopic: "factory/s1/m1/v", receivedAt: Int64(1_000 + i), payload: Array("{}".utf8))
    }

    @Test func journalCommitsWhenNoMoreInputIsQueued() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 200, commitInterval: .seconds(60), commitMinGap: .zero), logger: logger)
        try j.append([entry(0), entry(1)])
        #expect(try j.commitIfDue(inputQueued: true), "entries still pending")
        #expect(j.stats.uncommitted == 2, "more input is queued: the group stays open")
        #expect(try j.readCommitted(after: 0, limit: 10).isEmpty)
        #expect(try j.commitIfDue(inputQueued: false) == false)
        #expect(j.stats.uncommitted == 0)
        #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [1, 2])
    }

    @Test func journalHoldsAnIdleCommitForTheMinimumGap() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 200, commitInterval: .seconds(60), commitMinGap: .seconds(30)), logger: logger)
        try j.append([entry(0)])
        try j.commit()
        try j.append([entry(1)])
        #expect(try j.commitIfDue(inputQueued: false), "the previous commit was just now: held back")
        #expect(j.stats.uncommitted == 1)
    }

    @Test func journalWithoutWhenIdleKeepsTheGroupOpen() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 200, commitInterval: .seconds(60), commitWhenIdle: false), logger: logger)
        try j.append([entry(0)])
        try j.commitIfDue(inputQueued: false)
        #expect(j.stats.uncommitted == 1)
    }

    @Test func everyCommitIsObserved() throws {
        let j = try Journal(options: JournalOptions(path: path(), commitEvery: 3, commitInterval: .seconds(60), commitMinGap: .zero), logger: logger)
        let calls = Mutex(0)
        j.onCommit { calls.withLock { $0 += 1 } }
        try j.append([entry(0), entry(1), entry(2)])   // commit-every
        #expect(calls.withLock { $0 } == 1)
        #expect(try j.readCommitted(after: 0, limit: 10).count == 3, "observed only once readable")
        try j.append([entry(3)])
        try j.commitIfDue(inputQueued: true)           // not due: no commit, no call
        #expect(calls.withLock { $0 } == 1)
        try j.commitIfDue(inputQueued: false)          // idle
        #expect(calls.withLock { $0 } == 2)
        #expect(try j.readCommitted(after: 3, limit: 10).map(\.seq) == [4])
    }
}
