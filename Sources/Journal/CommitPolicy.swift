// CommitPolicy decides WHEN the journal's open group-commit transaction is committed. It is
// pure: the caller says what it knows (entries appended and not yet committed, how long the
// transaction has been open, whether more input is already waiting) and gets commit-now or wait.
//
// The rule, whichever comes first:
//   - `maxEntries` appended entries are pending (`journal.commit-every`);
//   - the transaction has been open `maxDelay` (`journal.commit-interval`), which also covers a
//     transaction that holds only the forwarder's deletes;
//   - with `whenIdle` (`journal.commit-when-idle`), entries are pending, no more input is
//     queued (nothing would join the group by waiting, so waiting only adds latency), and the
//     previous commit is at least `minGap` (`journal.commit-min-gap`) ago.
// Under load the input queue is rarely empty and groups still fill up to `maxEntries`. When
// input trickles in, a reading is committed as soon as it is in; when it comes steadily but
// faster than one per `minGap`, the gap caps the commit rate (each commit costs CPU and a
// sync) and the group collects what arrives meanwhile.

public struct CommitPolicy: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case commitNow
        case wait
    }

    /// Commit once this many appended entries are pending (`journal.commit-every`).
    public var maxEntries: Int
    /// Commit once the transaction has been open this long (`journal.commit-interval`).
    public var maxDelay: Duration
    /// Commit pending entries as soon as no more input is queued (`journal.commit-when-idle`).
    public var whenIdle: Bool
    /// An idle commit waits until the previous commit is this long ago (`journal.commit-min-gap`).
    public var minGap: Duration

    public init(maxEntries: Int, maxDelay: Duration, whenIdle: Bool, minGap: Duration = .zero) {
        self.maxEntries = maxEntries
        self.maxDelay = maxDelay
        self.whenIdle = whenIdle
        self.minGap = minGap
    }

    /// - Parameters:
    ///   - inTransaction: a transaction is open (appends or deletes not yet committed).
    ///   - pendingEntries: entries appended in it.
    ///   - openFor: how long it has been open.
    ///   - inputQueued: more input is already waiting to be read (pass true when unknown).
    ///   - sinceLastCommit: how long ago the previous commit was.
    public func decide(inTransaction: Bool, pendingEntries: Int, openFor: Duration, inputQueued: Bool,
                       sinceLastCommit: Duration) -> Decision {
        guard inTransaction else { return .wait }
        if pendingEntries >= maxEntries || openFor >= maxDelay { return .commitNow }
        if whenIdle, pendingEntries > 0, !inputQueued, sinceLastCommit >= minGap { return .commitNow }
        return .wait
    }
}
