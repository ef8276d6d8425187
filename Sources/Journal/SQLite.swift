import CSQLite
import Synchronization

/// A minimal SQLite connection and prepared statements. Raw pointers stay in this file.
final class SQLiteConnection {
    let db: OpaquePointer
    let path: String

    /// Opens `path`; with `create: false` a missing file is an error rather than a new database.
    init(path: String, create: Bool = true) throws(JournalError) {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw JournalError(.unreadable, path: path, "cannot open: \(msg)")
        }
        db = handle
        self.path = path
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        sqlite3_wal_hook(db, nil, nil)
        sqlite3_close_v2(db)
    }

    /// The WAL's frames, as the WAL hook and the checkpoints count them (nil until `trackWAL`).
    private(set) var walFrames: WALFrames?

    /// Counts the WAL's frames after every commit, and acts on `frames.policy` (CheckpointPolicy):
    /// wakes the checkpointer, or checkpoints (PASSIVE) itself. A WAL hook replaces SQLite's
    /// automatic checkpoint. The hook runs inside the committing `sqlite3_step`, on the caller's
    /// thread, after the transaction has ended.
    func trackWAL(_ frames: WALFrames) {
        walFrames = frames
        sqlite3_wal_hook(db, { context, db, name, inLog in
            guard let context else { return SQLITE_OK }
            let frames = Unmanaged<WALFrames>.fromOpaque(context).takeUnretainedValue()
            switch frames.committed(inLog: inLog) {
            case .none: break
            case .wakeCheckpointer: frames.signal?.wake()
            case .checkpointInCommit:
                var log: Int32 = 0, copied: Int32 = 0
                // After the checkpointer's checkpoint, if one is running (the gate): SQLite would
                // refuse this one as busy, and the WAL would grow past its budget meanwhile.
                // Errors are not the commit's (it is durable): the journal's own checkpoints report them.
                let rc = frames.gate.withLock { _ in sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) }
                if rc == SQLITE_OK {
                    frames.checkpointed(inLog: log, copied: copied, concurrently: false)
                    frames.countInCommit()
                }
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(frames).toOpaque())
    }

    /// The checkpointer's PASSIVE checkpoint: (frames in the WAL, frames copied), nil when the
    /// database is not in WAL mode. SQLITE_BUSY (another checkpoint is running) copies nothing new.
    func checkpointPassive() throws(JournalError) -> (log: Int32, copied: Int32)? {
        var log: Int32 = 0, copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        if rc == SQLITE_BUSY { return nil }
        guard rc == SQLITE_OK else { throw JournalError(code: rc, path: path, "\(errorMessage) (in: wal_checkpoint, the checkpointer's)") }
        return log < 0 ? nil : (log, copied)
    }

    /// Checkpoints the WAL (`.truncate`: all of it, then truncates the file). A checkpoint that
    /// a reader keeps from finishing is not an error: what it copied is counted.
    /// Waits for a checkpoint of the checkpointer's (`WALFrames.gate`), which would make this one busy.
    func checkpoint(truncate: Bool) throws(JournalError) {
        var log: Int32 = 0, copied: Int32 = 0
        let mode = truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE
        let rc = walFrames?.gate.withLock { _ in sqlite3_wal_checkpoint_v2(db, nil, mode, &log, &copied) }
            ?? sqlite3_wal_checkpoint_v2(db, nil, mode, &log, &copied)
        if rc == SQLITE_OK || rc == SQLITE_BUSY {
            walFrames?.checkpointed(inLog: log, copied: copied, concurrently: false)
            return
        }
        throw JournalError(code: rc, path: path, "\(errorMessage) (in: wal_checkpoint\(truncate ? "(TRUNCATE)" : ""))")
    }

    func exec(_ sql: String) throws(JournalError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(err)
            throw JournalError(code: rc, path: path, "\(msg) (in: \(sql.prefix(60)))")
        }
    }

    func prepare(_ sql: String) throws(JournalError) -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw JournalError(code: rc, path: path, "\(String(cString: sqlite3_errmsg(db))) (in: \(sql.prefix(60)))")
        }
        return SQLiteStatement(stmt: stmt, connection: self)
    }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }
    /// SQLite's own view: a transaction is open (it may have rolled one back by itself after SQLITE_FULL).
    var isInTransaction: Bool { sqlite3_get_autocommit(db) == 0 }
    var errorMessage: String { String(cString: sqlite3_errmsg(db)) }
}

/// The WAL's frame count (`WALFrameCount`) and the policy acting on it, shared by the committing
/// connection's WAL hook (under the journal lock) and the checkpointer's thread (without it).
final class WALFrames: Sendable {
    let policy: CheckpointPolicy
    /// Wakes the checkpointer (nil without one).
    let signal: CheckpointSignal?
    /// Held by the checkpointer's checkpoints and the journal's TRUNCATE checkpoints, so that
    /// those wait for the other instead of failing busy. Lock order: the journal lock, then this.
    let gate = SleepingLock(())
    private let count = Mutex(WALFrameCount())
    private let inCommitCheckpoints = Atomic<Int>(0)
    private let checkpointerCheckpoints = Atomic<Int>(0)

    init(policy: CheckpointPolicy, signal: CheckpointSignal?) {
        self.policy = policy
        self.signal = signal
    }

    /// Frames a checkpoint has yet to copy (`WALFrameCount.pending`).
    var pending: Int32 { count.withLock { $0.pending } }

    /// The WAL hook, after a commit: what the policy says to do.
    func committed(inLog frames: Int32) -> CheckpointPolicy.Decision {
        count.withLock { c in
            c.committed(inLog: frames)
            return policy.decide(walFrames: c.inLog, pendingFrames: c.pending)
        }
    }

    func checkpointed(inLog frames: Int32, copied: Int32, concurrently: Bool) {
        count.withLock { $0.checkpointed(inLog: frames, copied: copied, concurrently: concurrently) }
        if concurrently { checkpointerCheckpoints.add(1, ordering: .relaxed) }
    }

    func countInCommit() { inCommitCheckpoints.add(1, ordering: .relaxed) }

    /// Checkpoints run so far: inside commits, and by the checkpointer.
    var checkpoints: (inCommit: Int, checkpointer: Int) {
        (inCommitCheckpoints.load(ordering: .relaxed), checkpointerCheckpoints.load(ordering: .relaxed))
    }
}

final class SQLiteStatement {
    let stmt: OpaquePointer
    unowned let connection: SQLiteConnection

    init(stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(stmt, index, value) }
    func bind(_ index: Int32, _ value: String?) {
        guard let value else { sqlite3_bind_null(stmt, index); return }
        // SQLITE_TRANSIENT: SQLite copies the text before this returns. withCString: passing the
        // String itself made a heap copy of it first (twice per journaled reading).
        _ = value.withCString { sqlite3_bind_text(stmt, index, $0, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self)) }
    }
    func bind(_ index: Int32, _ value: [UInt8]) {
        value.withUnsafeBytes { buf in
            _ = sqlite3_bind_blob(stmt, index, buf.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buf.count),
                                  unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }

    /// Steps once: true if a row is ready, false when done.
    func step() throws(JournalError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw JournalError(code: rc, path: connection.path, connection.errorMessage)
    }

    func int64(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    func isNull(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_NULL }
    func string(_ col: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, col) else { return nil }
        return String(cString: p)
    }
    /// The column's bytes (text without its terminator, or blob) in SQLite's buffer: valid until
    /// the next step, reset or column call of another type on this column.
    func bytes(_ col: Int32) -> UnsafeRawBufferPointer {
        // sqlite3_column_blob first, then _bytes: the order SQLite documents for a stable pointer.
        let p = sqlite3_column_blob(stmt, col)
        let n = Int(sqlite3_column_bytes(stmt, col))
        return UnsafeRawBufferPointer(start: n > 0 ? p : nil, count: n > 0 ? n : 0)
    }
}

extension JournalError {
    init(code: Int32, path: String, _ detail: String) {
        let primary = code & 0xFF
        let kind: Kind
        switch primary {
        case SQLITE_FULL: kind = .diskFull
        case SQLITE_CORRUPT, SQLITE_NOTADB: kind = .corrupt
        case SQLITE_BUSY, SQLITE_LOCKED: kind = .busy
        case SQLITE_READONLY: kind = .readOnly
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_IOERR: kind = .unreadable
        default: kind = .other
        }
        self.init(kind, path: path, detail)
    }
}
