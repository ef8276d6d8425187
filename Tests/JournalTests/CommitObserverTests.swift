import ForewarnCore
import Foundation
import Logging
import Synchronization
import Testing
@testable import Journal

/// The commit observer is called on every commit, and must reach the same closure each time. A
/// closure kept directly in a `Mutex` came back from every `withLock { $0 }` inside two more
/// reabstraction thunks: every call walked one frame per earlier read, so the gateway slowed
/// down, its thread stacks and heap grew, and releasing the chain at exit overflowed the stack
/// (the SIGSEGV after "gateway stopped" in docs/durability.md). The stack depth inside the
/// observer shows the chain: it must not grow from call to call.
struct CommitObserverTests {
    /// Stack depth inside each call of the observer.
    final class Depths: Sendable {
        let values = Mutex<[Int]>([])
        func record() { values.withLock { $0.append(Thread.callStackReturnAddresses.count) } }
        var all: [Int] { values.withLock { $0 } }
    }

    @Test("10,000 notifications reach the observer at the same stack depth")
    func slotDoesNotWrap() {
        let slot = CommitObserverSlot()
        let depths = Depths()
        slot.set { depths.record() }
        for _ in 0..<10_000 { slot.notify() }
        let d = depths.all
        #expect(d.count == 10_000)
        #expect(Set(d).count == 1, "the stack depth grew from \(d.first ?? 0) to \(d.last ?? 0): each read wrapped the observer again")
    }

    @Test("2,000 journal commits call the observer 2,000 times, always at the same depth")
    func journalCommitsKeepTheObserver() throws {
        let path = NSTemporaryDirectory() + "forewarn-observer-\(UUID().uuidString).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1000, commitInterval: .seconds(60), synchronous: .normal),
                            logger: Logger(label: "test"))
        let depths = Depths()
        j.onCommit { depths.record() }
        for i in 0..<2_000 {
            try j.append([NewJournalEntry(kind: .reading, machine: "m1", mqttTopic: "factory/s1/m1/v", receivedAt: Int64(i),
                                          payload: Array("{}".utf8))])
            try j.commit()
        }
        let d = depths.all
        #expect(d.count == 2_000)
        #expect(Set(d).count == 1, "the stack depth grew from \(d.first ?? 0) to \(d.last ?? 0) over 2,000 commits")
    }
}
