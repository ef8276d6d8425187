@testable import Gateway
import Journal
import Synchronization
import Testing

struct ForwarderHeaderTests {
    @Test("the seq header holds the decimal digits String(seq) would give")
    func decimalDigitsMatchString() {
        for n: Int64 in [0, 1, 9, 10, 42, 1_000_000, 123_456_789_012, .max, -1, -907, .min] {
            #expect(withDecimalDigits(n) { Array($0) } == Array(String(n).utf8), "\(n)")
        }
    }

    @Test("in flight: a count, with the dead letters told apart")
    func inFlightCounts() {
        var f = InFlight()
        #expect(f.isEmpty)
        f.handed(1, kind: .reading)
        f.handed(2, kind: .deadLetter)
        f.handed(3, kind: .reading)
        #expect(f.count == 3)
        let kinds = [f.reported(3), f.reported(2), f.reported(2)]
        #expect(kinds == [.reading, .deadLetter, .reading], "a dead letter is told apart once")
        #expect(f.isEmpty)
        let extra = f.reported(9)
        #expect(extra == .reading && f.count == 0, "never below zero")
    }
}

struct ForwarderDeleteQueueTests {
    @Test("reads wait while too many delivered seqs wait for their deletes, as for a full in-flight window")
    func readGate() {
        #expect(ReadGate.mayRead(inFlight: 0, maxInFlight: 10, deletesWaiting: 0, maxDeletesWaiting: 5))
        #expect(!ReadGate.mayRead(inFlight: 10, maxInFlight: 10, deletesWaiting: 0, maxDeletesWaiting: 5))
        #expect(!ReadGate.mayRead(inFlight: 3, maxInFlight: 10, deletesWaiting: 5, maxDeletesWaiting: 5))
        #expect(ReadGate.mayRead(inFlight: 9, maxInFlight: 10, deletesWaiting: 4, maxDeletesWaiting: 5))
    }

    @Test("every queued seq is deleted once, in queue order, before waitUntilDone returns and before the thread ends")
    func queueDeletesEverything() async {
        let q = DeleteQueue()
        let done = Mutex<[Int64]>([])
        let thread = Task.detached { q.run { seqs in done.withLock { $0.append(contentsOf: seqs) } } }
        var batch: [Int64] = [1, 2, 3]
        q.enqueue(&batch)
        #expect(batch.isEmpty, "handed over")
        batch = [4, 5]
        q.enqueue(&batch)
        q.waitUntilDone()
        #expect(done.withLock { $0 } == [1, 2, 3, 4, 5])
        #expect(q.waiting == 0)
        batch = [6]
        q.enqueue(&batch)
        q.finish()
        await thread.value
        #expect(done.withLock { $0 } == [1, 2, 3, 4, 5, 6], "what was queued before finish is deleted")
    }
}
