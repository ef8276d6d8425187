import CSQLite

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

    /// Counts the WAL's frames after every commit. A WAL hook replaces SQLite's automatic
    /// checkpoint, so the hook runs it too: PASSIVE, once the WAL holds `autocheckpointFrames`,
    /// as `PRAGMA wal_autocheckpoint` does. The hook runs inside the committing `sqlite3_step`,
    /// on the caller's thread, so it is guarded by whatever guards this connection.
    func trackWAL(autocheckpointFrames: Int32) {
        let frames = WALFrames(autocheckpointFrames: autocheckpointFrames)
        walFrames = frames
        sqlite3_wal_hook(db, { context, db, name, inLog in
            guard let context else { return SQLITE_OK }
            let frames = Unmanaged<WALFrames>.fromOpaque(context).takeUnretainedValue()
            frames.committed(inLog: inLog)
            if inLog >= frames.autocheckpointFrames {
                var log: Int32 = 0, copied: Int32 = 0
                // Errors are not the commit's (it is durable): the journal's own checkpoints report them.
                if sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK {
                    frames.checkpointed(inLog: log, copied: copied)
                }
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(frames).toOpaque())
    }

    /// Checkpoints the WAL (`.truncate`: all of it, then truncates the file). A checkpoint that
    /// a reader keeps from finishing is not an error: what it copied is counted.
    func checkpoint(truncate: Bool) throws(JournalError) {
        var log: Int32 = 0, copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        if rc == SQLITE_OK || rc == SQLITE_BUSY {
            walFrames?.checkpointed(inLog: log, copied: copied)
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

    /// SQLite's own view: a transaction is open (it may have rolled one back by itself after SQLITE_FULL).
    var isInTransaction: Bool { sqlite3_get_autocommit(db) == 0 }
    var errorMessage: String { String(cString: sqlite3_errmsg(db)) }
}

/// The WAL's frames that no checkpoint has copied into the database file yet. Updated by the
/// connection's WAL hook and its checkpoints, only while its owner holds the connection.
final class WALFrames {
    let autocheckpointFrames: Int32
    /// Frames in the WAL since it last restarted (the hook's count after the last commit).
    private var inLog: Int32 = 0
    /// Of those, the frames the last checkpoint had copied.
    private var copied: Int32 = 0
    /// The last checkpoint copied every frame, so a commit since may have restarted the WAL from
    /// its start (then `inLog` counts only new frames) or appended to it; the hook cannot tell.
    private var mayHaveRestarted = false
    private var committedSinceCheckpoint = false

    init(autocheckpointFrames: Int32) { self.autocheckpointFrames = autocheckpointFrames }

    /// Frames in the WAL since it last restarted from its start (its length, in pages).
    var length: Int32 { inLog }

    /// Frames a checkpoint has yet to copy: exact, except after a complete checkpoint and a
    /// commit, when all `inLog` are counted (an overestimate by at most what was copied).
    var pending: Int32 {
        committedSinceCheckpoint && mayHaveRestarted ? inLog : Swift.max(0, inLog - copied)
    }

    func committed(inLog frames: Int32) {
        if frames < inLog { copied = 0; mayHaveRestarted = false }   // the WAL restarted
        inLog = frames
        committedSinceCheckpoint = true
    }

    func checkpointed(inLog frames: Int32, copied done: Int32) {
        guard frames >= 0, done >= 0 else { return }   // -1: not in WAL mode
        inLog = frames
        copied = done
        mayHaveRestarted = frames > 0 && done == frames
        committedSinceCheckpoint = false
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
