// CheckpointPolicy decides, after each commit, who checkpoints the WAL: nobody yet, the
// journal's checkpointer thread (its own SQLite connection, outside the journal lock), or the
// committing connection itself, inside its commit and under the journal lock. WALFrameCount
// keeps what it decides on. Both are pure values; `WALFrames` (SQLite.swift) holds them for the threads.
//
// SQLite restarts the WAL from its start only at a write transaction that begins when every
// frame has been copied; the journal's writer begins its next transaction right after a commit,
// so a checkpoint on another thread, racing the commits, rarely lets the WAL restart. Hence, on
// the frames in the WAL (`walFrames`, since it last restarted) and those still to copy (`pending`):
//   - the WAL holds `inCommitFrames` or more: checkpoint in the commit (the fallback: the
//     checkpointer is behind or not running; the WAL must stay inside its budget);
//   - the WAL holds `wakeFrames` or more and at most `tailFrames` are still to copy (the
//     checkpointer has copied the rest): checkpoint that tail in the commit, so the WAL restarts;
//   - `wakeFrames` or more are still to copy: wake the checkpointer;
//   - else nothing.
// The fallback is at the WAL's budget (`Journal.walBudgetBytes`, a quarter of
// `journal.min-free-bytes`, in pages). The checkpointer is woken where the commit used to
// checkpoint (at most 1,000 pages), or at half the budget where that is the whole budget
// (small reserves). In steady traffic the tail rule restarts the WAL at ~1,000 pages; in a
// drain, whose delete commits add hundreds of frames each, the fallback does, at the budget.

public struct CheckpointPolicy: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case none
        case wakeCheckpointer
        case checkpointInCommit
    }

    /// Wake the checkpointer once this many frames are still to copy.
    public var wakeFrames: Int32
    /// A tail this short (or shorter) the commit copies itself, so that the WAL restarts.
    public var tailFrames: Int32
    /// Checkpoint inside the commit once the WAL holds this many frames.
    public var inCommitFrames: Int32

    public init(wakeFrames: Int32, tailFrames: Int32, inCommitFrames: Int32) {
        self.wakeFrames = wakeFrames
        self.tailFrames = tailFrames
        self.inCommitFrames = inCommitFrames
    }

    /// With a checkpointer: woken at `autocheckpointFrames` (at most half the budget), the
    /// commit's fallback at `budgetFrames`.
    public init(budgetFrames: Int32, autocheckpointFrames: Int32) {
        let inCommit = max(2, budgetFrames)
        let wake = max(1, min(autocheckpointFrames, inCommit / 2))
        self.init(wakeFrames: wake, tailFrames: wake / 16, inCommitFrames: inCommit)
    }

    /// Without a checkpointer: the commit checkpoints at `frames`, as SQLite's automatic checkpoint does.
    public static func inCommitOnly(frames: Int32) -> CheckpointPolicy {
        CheckpointPolicy(wakeFrames: .max, tailFrames: 0, inCommitFrames: max(1, frames))
    }

    /// After a commit.
    public func decide(walFrames: Int32, pendingFrames: Int32) -> Decision {
        if walFrames >= inCommitFrames { return .checkpointInCommit }
        if walFrames >= wakeFrames, pendingFrames <= tailFrames { return .checkpointInCommit }
        if pendingFrames >= wakeFrames { return .wakeCheckpointer }
        return .none
    }
}

/// The WAL's frames, and those no checkpoint has copied into the database file yet, from what the
/// committing connection's WAL hook and the checkpoints (of either connection) report.
public struct WALFrameCount: Sendable, Equatable {
    /// Frames in the WAL since it last restarted (the hook's count after the last commit).
    public private(set) var inLog: Int32 = 0
    /// Of those, the frames the last checkpoint had copied.
    private var copied: Int32 = 0
    /// The last checkpoint copied every frame, so a commit since may have restarted the WAL from
    /// its start (then `inLog` counts only new frames) or appended to it; the hook cannot tell.
    private var mayHaveRestarted = false
    private var committedSinceCheckpoint = false

    public init() {}

    /// Frames a checkpoint has yet to copy: exact, except after a complete checkpoint in a
    /// commit and the next commit, when all `inLog` are counted (an overestimate by at most what
    /// was copied); while the checkpointer's report races a commit (off by that commit's
    /// frames); and after a complete checkpoint of the checkpointer's, a restart of the WAL and
    /// one commit longer than the WAL was (counted as appended: short by what was copied).
    public var pending: Int32 {
        committedSinceCheckpoint && mayHaveRestarted ? inLog : Swift.max(0, inLog - copied)
    }

    /// The WAL hook: the WAL holds `frames` frames after a commit.
    public mutating func committed(inLog frames: Int32) {
        if frames < inLog { copied = 0; mayHaveRestarted = false }   // the WAL restarted
        inLog = frames
        committedSinceCheckpoint = true
    }

    /// A checkpoint saw `frames` frames in the WAL and had copied `done` of them. `concurrently`:
    /// it ran on the checkpointer's connection, while commits may have gone on.
    public mutating func checkpointed(inLog frames: Int32, copied done: Int32, concurrently: Bool = false) {
        guard frames >= 0, done >= 0 else { return }   // -1: not in WAL mode
        if concurrently, frames < inLog {
            // It saw the WAL before commits whose hooks have run since: what it copied is of
            // the same WAL, the later frames are still to copy.
            copied = max(copied, done)
            mayHaveRestarted = false
            return
        }
        inLog = frames
        copied = done
        // After a complete checkpoint in a commit the writer's next transaction restarts the WAL.
        // After the checkpointer's it rarely can (that transaction has usually begun already):
        // the next commit's frames count as appended, or every commit until the WAL restarted
        // would count the whole WAL and wake the checkpointer for one commit's frames.
        mayHaveRestarted = !concurrently && frames > 0 && done == frames
        committedSinceCheckpoint = false
    }
}
