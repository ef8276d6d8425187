@testable import Journal
import Testing

struct CommittedReadRouteTests {
    @Test("a read skips the lock only above every delete and while the WAL is short of its checkpoint size")
    func route() {
        #expect(CommittedReadRoute.choose(after: 100, highestDeleted: 100, walLength: 15, autocheckpointFrames: 16) == .reader)
        #expect(CommittedReadRoute.choose(after: 100, highestDeleted: 0, walLength: 0, autocheckpointFrames: 16) == .reader)
        #expect(CommittedReadRoute.choose(after: 99, highestDeleted: 100, walLength: 0, autocheckpointFrames: 16) == .underLock,
                "a delete above the start may not be committed yet")
        #expect(CommittedReadRoute.choose(after: 0, highestDeleted: 1, walLength: 0, autocheckpointFrames: 16) == .underLock, "a rewind")
        #expect(CommittedReadRoute.choose(after: 100, highestDeleted: 100, walLength: 16, autocheckpointFrames: 16) == .underLock,
                "the WAL is due to restart")
    }
}
