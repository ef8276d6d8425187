// CommittedReader owns the journal's second SQLite connection: query-only, used by the
// forwarder to read committed entries while the writer connection commits and deletes.
import CSQLite

/// Reads committed entries in seq order on a connection of its own. In WAL mode a reader sees
/// the last commit before its statement started and never waits for the writer, so a drain's
/// reads no longer queue behind group commits and batches of deletes on the journal lock
/// (docs/benchmarks.md, session 16). It knows nothing of deletes not yet committed: `Journal`
/// sends a read here only when none can be above its start.
final class CommittedReader {
    let conn: SQLiteConnection
    private let selectAfter: SQLiteStatement
    /// Its own page cache, in KiB: reads move forward through the table, so a few interior pages
    /// and the leaves in use are all it keeps (the writer's cache is `Journal.pageCacheKiB`).
    static let pageCacheKiB = 256

    init(path: String) throws(JournalError) {
        conn = try SQLiteConnection(path: path, create: false)
        try conn.exec("PRAGMA query_only=1")
        try conn.exec("PRAGMA busy_timeout=5000")
        try conn.exec("PRAGMA cache_size=-\(Self.pageCacheKiB)")
        selectAfter = try conn.prepare(JournalBatch.selectAfter)
    }

    /// Appends the entries with `after < seq <= upTo`, at most `limit`, to `batch`. The statement
    /// is reset before returning: one left on a row would hold its snapshot and keep checkpoints
    /// from copying past it.
    func read(after: Int64, upTo: Int64, limit: Int, into batch: inout JournalBatch) throws(JournalError) {
        let q = selectAfter
        q.reset()
        defer { q.reset() }
        q.bind(1, after)
        q.bind(2, upTo)
        q.bind(3, Int64(limit))
        while try q.step() { batch.append(row: q) }
    }
}

/// Where a read of committed entries runs: the decision, apart from the I/O.
enum CommittedReadRoute: Equatable {
    /// On `CommittedReader`'s connection, without the journal lock.
    case reader
    /// On the writer's connection under the lock, skipping deletes kept in memory.
    case underLock

    /// `after`: the read's start; `highestDeleted`: the highest seq ever deleted or dropped;
    /// `walLength`: the WAL's frames since it last restarted, after the last commit.
    /// The reader cannot see deletes that are kept or not committed, so it may only read above
    /// all of them; and it stays away while the WAL is due to restart, since its snapshot would
    /// keep the WAL from restarting and let it grow past its budget.
    static func choose(after: Int64, highestDeleted: Int64, walLength: Int32, autocheckpointFrames: Int32) -> CommittedReadRoute {
        after >= highestDeleted && walLength < autocheckpointFrames ? .reader : .underLock
    }
}
