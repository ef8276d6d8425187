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

    @Test("the fragmented top of a flush waits one flush, then joins a range; nothing is held twice or lost")
    func deleteTailHeldOnce() {
        // Four partitions' reports: 1...20 complete, above it only one partition's seqs (every 4th).
        let fresh: [Int64] = Array(1...20) + [24, 28, 32]
        let first = DeleteTail.split(fresh: fresh.shuffled(), held: [])
        #expect(first.now.sorted() == Array(1...20))
        #expect(first.hold.sorted() == [24, 28, 32])
        // The next flush fills the gaps: the held seqs go, inside a run now.
        let next: [Int64] = (21...40).filter { ![24, 28, 32].contains($0) }
        let second = DeleteTail.split(fresh: next, held: first.hold)
        #expect(second.now.sorted() == Array(21...40) && second.hold.isEmpty)
        // A held seq goes with the next flush even if it is still alone; fresh ones above wait.
        let third = DeleteTail.split(fresh: [60, 70], held: [50])
        #expect(third.now == [50] && third.hold.sorted() == [60, 70])
        // Short runs below the last long run are deleted now (they have nothing to wait for).
        let fourth = DeleteTail.split(fresh: [3, 5] + Array(10...17), held: [])
        #expect(fourth.now.sorted() == [3, 5] + Array(10...17) && fourth.hold.isEmpty)
        let empty = DeleteTail.split(fresh: [], held: [])
        #expect(empty.now.isEmpty && empty.hold.isEmpty)
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
