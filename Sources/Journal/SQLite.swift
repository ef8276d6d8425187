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

    deinit { sqlite3_close_v2(db) }

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
    func blob(_ col: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, col))
        guard n > 0, let p = sqlite3_column_blob(stmt, col) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
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
