// Journal owns the gateway's store-and-forward: a SQLite database in WAL mode and the only
// module that imports CSQLite. Accepted readings and dead letters are appended inside a
// group-commit transaction, committed when `CommitPolicy` says so (N entries, T ms, or no more
// input queued); the forwarder reads committed entries
// in sequence order and deletes each one only when Kafka has acknowledged it. Sequence
// numbers never repeat, so (gateway, seq) identifies a record forever: the journal numbers each
// entry itself (one above the last it handed out) and every commit that handed out new ones also
// writes the highest into the one-row table `seq_high_water`, so a journal emptied by deliveries
// and reopened goes on above it (not AUTOINCREMENT, which read and rewrote `sqlite_sequence` on
// every insert: ~0.9 µs of each reading, docs/benchmarks.md, session 17).
// The journal is bounded by bytes and by age; what it drops it counts per machine and reason.
// Seq order is receive order, so both bounds drop from the lowest seq up; the table has no other
// index (schema version 3; a version-1 or -2 journal is migrated on open, `migrate`).
// A write that fails (disk full, read-only, I/O error) loses nothing: SQLite is rolled back to
// the last commit, what the transaction held stays in memory (`KeptWrites`) and is written
// again, in order, with backoff (`WriteRetry`) until the disk takes it.
import CSQLite
#if canImport(Glibc)
import Glibc
#endif
import ForewarnCore
import Logging
import Synchronization

public struct JournalError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case corrupt, unreadable, diskFull, readOnly, busy, schema, other
    }
    public var kind: Kind
    public var path: String
    public var detail: String
    /// What the operator should do, when it is not the kind's usual advice.
    public var remedy: String?

    public init(_ kind: Kind, path: String, _ detail: String, remedy: String? = nil) {
        self.kind = kind
        self.path = path
        self.detail = detail
        self.remedy = remedy
    }

    /// What kind of damage the start-up check found, when it found some.
    public var damage: JournalDamage.Kind?

    /// A damaged or foreign journal found at start-up.
    public init(_ damage: JournalDamage, path: String) {
        self.init(damage.kind == .foreign || damage.kind == .newerSchema ? .schema : .corrupt, path: path, damage.detail)
        self.damage = damage.kind
    }

    public var description: String {
        switch kind {
        case .schema:
            return "journal \(path) is not one this forewarn can use: \(detail). Forewarn never changes a file it does not recognise: point state-dir elsewhere or move the file aside."
        case .corrupt:
            return "journal \(path) is corrupt: \(detail). Forewarn never truncates a journal: move the file aside (it may hold undelivered readings; sqlite3's .recover can salvage them) and start again."
        case .diskFull:
            return "journal \(path): the disk is full (\(detail)). \(remedy ?? "Free space or lower journal.max-bytes.")"
        case .readOnly:
            return "journal \(path): the file system is read-only (\(detail)). The state directory must be writable."
        default:
            return "journal \(path): \(detail)"
        }
    }
}

public enum JournalEntryKind: Int64, Sendable {
    case reading = 0
    case deadLetter = 1
}

/// An entry to append.
public struct NewJournalEntry: Sendable {
    public var kind: JournalEntryKind
    /// Machine id (the Kafka key); for dead letters without one, the MQTT topic.
    public var machine: String
    public var mqttTopic: String
    public var receivedAt: Int64
    /// Canonical reading JSON, or the raw rejected payload.
    public var payload: [UInt8]
    /// For dead letters: `reason-code: detail`.
    public var reason: String?

    public init(kind: JournalEntryKind, machine: String, mqttTopic: String, receivedAt: Int64, payload: [UInt8], reason: String? = nil) {
        self.kind = kind
        self.machine = machine
        self.mqttTopic = mqttTopic
        self.receivedAt = receivedAt
        self.payload = payload
        self.reason = reason
    }

    /// Bytes this entry counts against `journal.max-bytes` (payload, strings and row overhead).
    var accountedSize: Int64 { Int64(payload.count + machine.utf8.count + mqttTopic.utf8.count + (reason?.utf8.count ?? 0) + 48) }
}

/// A journaled entry, as the forwarder reads it.
public struct JournalEntry: Sendable, Equatable {
    public var seq: Int64
    public var kind: JournalEntryKind
    public var machine: String
    public var mqttTopic: String
    public var receivedAt: Int64
    public var payload: [UInt8]
    public var reason: String?
}

/// Committed entries copied out of the journal into one byte buffer (`Journal.readCommitted(after:limit:into:)`).
/// Reused across reads, it keeps its capacity: no allocation per entry once it has grown.
public struct JournalBatch: Sendable {
    public struct Row: Sendable {
        public var seq: Int64
        public var kind: JournalEntryKind
        public var receivedAt: Int64
        var machine: Range<Int>
        var mqttTopic: Range<Int>
        var payload: Range<Int>
        var reason: Range<Int>?
    }

    /// One entry's fields; the buffers are valid only inside `withRow`.
    public struct RowView {
        public var seq: Int64
        public var kind: JournalEntryKind
        public var receivedAt: Int64
        public var machine: UnsafeRawBufferPointer
        public var mqttTopic: UnsafeRawBufferPointer
        public var payload: UnsafeRawBufferPointer
        public var reason: UnsafeRawBufferPointer?
    }

    public private(set) var rows: [Row] = []
    private var bytes: [UInt8] = []

    public init() {}

    mutating func removeAll() {
        rows.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
    }

    private mutating func copy(_ b: UnsafeRawBufferPointer) -> Range<Int> {
        let start = bytes.count
        bytes.append(contentsOf: b)
        return start..<bytes.count
    }

    mutating func append(seq: Int64, kind: JournalEntryKind, machine: UnsafeRawBufferPointer, mqttTopic: UnsafeRawBufferPointer,
                         receivedAt: Int64, payload: UnsafeRawBufferPointer, reason: UnsafeRawBufferPointer?) {
        rows.append(Row(seq: seq, kind: kind, receivedAt: receivedAt, machine: copy(machine), mqttTopic: copy(mqttTopic),
                        payload: copy(payload), reason: reason.map { copy($0) }))
    }

    /// Committed entries with `?1 < seq <= ?2`, at most `?3`, in order: the rows `append(row:)` copies.
    static let selectAfter = "SELECT seq, kind, machine, mqtt_topic, received_ms, payload, reason FROM entries WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"

    /// Copies the `selectAfter` row that `q` is on.
    mutating func append(row q: SQLiteStatement) {
        append(seq: q.int64(0), kind: JournalEntryKind(rawValue: q.int64(1)) ?? .reading, machine: q.bytes(2),
               mqttTopic: q.bytes(3), receivedAt: q.int64(4), payload: q.bytes(5), reason: q.isNull(6) ? nil : q.bytes(6))
    }

    /// Calls `body` with every row in order, until it returns false.
    public func forEach(_ body: (RowView) -> Bool) {
        bytes.withUnsafeBytes { all in
            for r in rows where !body(view(r, all)) { break }
        }
    }

    public func withRow<R>(_ i: Int, _ body: (RowView) -> R) -> R {
        bytes.withUnsafeBytes { body(view(rows[i], $0)) }
    }

    private func view(_ r: Row, _ all: UnsafeRawBufferPointer) -> RowView {
        RowView(seq: r.seq, kind: r.kind, receivedAt: r.receivedAt, machine: UnsafeRawBufferPointer(rebasing: all[r.machine]),
                mqttTopic: UnsafeRawBufferPointer(rebasing: all[r.mqttTopic]), payload: UnsafeRawBufferPointer(rebasing: all[r.payload]),
                reason: r.reason.map { UnsafeRawBufferPointer(rebasing: all[$0]) })
    }
}

public struct JournalDrop: Sendable, Hashable {
    public var machine: String
    public var reason: String   // "max-bytes" or "max-age"
    public init(machine: String, reason: String) {
        self.machine = machine
        self.reason = reason
    }
}

public struct JournalStats: Sendable {
    public var entries: Int
    public var bytes: Int64
    /// Receive time (epoch ms) of the oldest entry, nil when empty.
    public var oldestReceivedAt: Int64?
    public var committedSeq: Int64
    public var uncommitted: Int
}

public struct JournalOptions: Sendable {
    public var path: String
    public var commitEvery: Int
    public var commitInterval: Duration
    /// Commit pending entries as soon as the caller says no more input is queued ...
    public var commitWhenIdle: Bool
    /// ... and the previous commit is at least this long ago.
    public var commitMinGap: Duration
    public var maxBytes: Int64
    public var maxAge: Duration
    public var fullPolicy: JournalFullPolicy
    public var synchronous: JournalSynchronous
    /// The free-space reserve (`journal.min-free-bytes`). The WAL is kept within a quarter of it
    /// (at least 64 KiB): checkpointed at that size (at most every 1000 pages) and truncated back to it.
    public var minFreeBytes: Int64
    /// The seq of a new journal's first entry (default 1). An existing journal continues where
    /// it left off. The gateway passes `JournalOptions.clockSeq()`, so a journal recreated after
    /// loss never reuses an earlier (gateway, seq), by which consumers remove duplicates.
    public var firstSeq: Int64

    public init(path: String, commitEvery: Int = 200, commitInterval: Duration = .milliseconds(20), commitWhenIdle: Bool = true,
                commitMinGap: Duration = .milliseconds(2), maxBytes: Int64 = 1 << 30, maxAge: Duration = .seconds(7 * 86_400),
                fullPolicy: JournalFullPolicy = .backpressure, synchronous: JournalSynchronous = .full,
                minFreeBytes: Int64 = 64 << 20, firstSeq: Int64 = 1) {
        self.firstSeq = max(1, firstSeq)
        self.commitWhenIdle = commitWhenIdle
        self.commitMinGap = commitMinGap
        self.path = path
        self.commitEvery = commitEvery
        self.commitInterval = commitInterval
        self.maxBytes = maxBytes
        self.maxAge = maxAge
        self.fullPolicy = fullPolicy
        self.synchronous = synchronous
        self.minFreeBytes = minFreeBytes
    }

    /// Milliseconds since 1970 × 1000: above every seq an earlier journal of this gateway used,
    /// unless it averaged more than 1,000,000 readings a second over its whole life.
    public static func clockSeq(nowMs: Int64) -> Int64 { nowMs * 1000 }

    public var commitPolicy: CommitPolicy {
        CommitPolicy(maxEntries: commitEvery, maxDelay: commitInterval, whenIdle: commitWhenIdle, minGap: commitMinGap)
    }
}

public final class Journal: Sendable {
    public let options: JournalOptions
    private let policy: CommitPolicy
    private let logger: Logger
    private let inner: SleepingLock<Inner>
    /// Called after every successful commit (under the journal lock: keep it short and never
    /// call back into the journal). The forwarder uses it to wake up at once.
    private let commitObserver = CommitObserverSlot()
    /// `dropGeneration`: raised under the lock, after the drops.
    private let dropGenerations = Atomic<Int>(0)
    /// (device, inode) of the journal file when it was opened: a different or missing file at
    /// the path means the state directory was removed or unmounted under us.
    private let identity: FileIdentity?
    /// The forwarder's own connection for reading committed entries, so a read does not wait
    /// for the journal lock while a group commit or a batch of deletes holds it (WAL lets a reader
    /// run beside the writer). Nil after `deinit` has closed it, before the writer.
    private let reader: Mutex<CommittedReader?>
    /// The last committed seq: written under the lock by each commit, read without it by reads
    /// on the reader's connection.
    private let committedSeq = Atomic<Int64>(0)
    /// The highest seq ever deleted or dropped (kept deletes included), never lowered. A read
    /// after a seq at or above it cannot meet an entry whose delete is not committed yet, so it
    /// needs no look at `KeptWrites` and takes the reader's connection; any other read (after a
    /// rewind, after drops ahead of the forwarder) goes under the lock, as before.
    private let highestDeletedSeq = Atomic<Int64>(0)
    /// The WAL's length after the last commit or checkpoint, for `CommittedReadRoute`: at or past
    /// its checkpoint size, reads go under the lock until it restarts. A reader's snapshot keeps a
    /// checkpoint from finishing and the WAL from restarting, and a drain that read beside the
    /// writer all the time grew the WAL past the free-space reserve on a small disk (GatewayDiskFullTests).
    private let walLength = Atomic<Int32>(0)
    /// The WAL length at which the connection's hook checkpoints (`trackWAL`).
    private let autocheckpointFrames: Int32

    /// Everything behind the lock: the connection, its statements and the counters.
    final class Inner {
        let conn: SQLiteConnection
        let insert: SQLiteStatement
        let updateHighWater: SQLiteStatement
        /// `seq_high_water` as committed: a commit that handed out seqs above it writes the new one.
        var storedHighWater: Int64 = 0
        let deleteOne: SQLiteStatement
        let selectAfter: SQLiteStatement
        let selectOldest: SQLiteStatement
        let selectOldestReceived: SQLiteStatement
        let selectSize: SQLiteStatement
        let selectRangeSize: SQLiteStatement
        let deleteRange: SQLiteStatement
        let freelistCount: SQLiteStatement
        var pageSize: Int64 = 4096
        /// What the open (or failed) transaction holds, kept in memory until it is committed.
        var kept = KeptWrites()
        /// The last write error while SQLite holds less than `kept`; nil when the journal is writable.
        var failure: JournalError?
        var retry = WriteRetry()
        /// Deletes per transaction when kept deletes are written again; halved after one such
        /// transaction fails for a full disk, so the retries fit in the room there is (nil: `deletesPerCommit`).
        var keptDeleteChunk: Int?
        /// Tests: every commit fails with this error (after a real rollback), as SQLite's would.
        var injectedCommitFault: JournalError?
        var pruneDue = false
        /// The last checkpoint failed with SQLITE_FULL (cleared by one that succeeds).
        var checkpointFailedFull = false
        var inTransaction = false
        var transactionStarted = ContinuousClock.now
        var lastCommit = ContinuousClock.now
        var uncommitted = 0
        /// The last seq handed out, committed or in the open transaction; the next entry gets one more.
        var lastInsertedSeq: Int64 = 0
        var entries = 0
        var bytes: Int64 = 0
        var drops: [JournalDrop: Int] = [:]
        /// Fingerprints of the last stamped messages, to drop MQTT redeliveries after a crash.
        var recentDigests: Set<Int64> = []
        var recentOrder: [Int64] = []
        let insertDigest: SQLiteStatement
        let pruneDigests: SQLiteStatement

        init(conn: SQLiteConnection) throws(JournalError) {
            self.conn = conn
            // An explicit seq: an implicit rowid is MAX(seq) + 1, which repeats a delivered seq
            // whenever the table has been emptied (or its highest entries deleted).
            insert = try conn.prepare("INSERT INTO entries(seq, kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (?,?,?,?,?,?,?,?)")
            updateHighWater = try conn.prepare("UPDATE seq_high_water SET seq = ? WHERE id = 1")
            // No RETURNING: SQLite runs it through an ephemeral table opened and closed per
            // statement, which cost about half of the drain's delete time; `delete` reads the size first.
            deleteOne = try conn.prepare("DELETE FROM entries WHERE seq = ?")
            selectAfter = try conn.prepare(JournalBatch.selectAfter)
            selectOldest = try conn.prepare("SELECT seq, machine, received_ms FROM entries ORDER BY seq LIMIT ?")
            // The lowest seq's stamp: one rowid lookup (the first leaf of the table), which
            // `expire` asks twice a second before it reads any more.
            selectOldestReceived = try conn.prepare("SELECT received_ms FROM entries ORDER BY seq LIMIT 1")
            selectSize = try conn.prepare("SELECT size FROM entries WHERE seq = ?")
            selectRangeSize = try conn.prepare("SELECT COUNT(*), COALESCE(SUM(size),0) FROM entries WHERE seq BETWEEN ? AND ?")
            deleteRange = try conn.prepare("DELETE FROM entries WHERE seq BETWEEN ? AND ?")
            freelistCount = try conn.prepare("PRAGMA freelist_count")
            insertDigest = try conn.prepare("INSERT INTO recent_messages(digest) VALUES (?)")
            pruneDigests = try conn.prepare("DELETE FROM recent_messages WHERE id <= (SELECT MAX(id) FROM recent_messages) - ?")
            let load = try conn.prepare("SELECT digest FROM (SELECT id, digest FROM recent_messages ORDER BY id DESC LIMIT ?) ORDER BY id")
            load.bind(1, Int64(Journal.recentCapacity))
            while try load.step() {
                let d = load.int64(0)
                recentOrder.append(d)
                recentDigests.insert(d)
            }
        }
    }

    /// 3: `entries.seq` without AUTOINCREMENT, the highest seq handed out in `seq_high_water`.
    /// 2: no index on `received_ms` (1 had `entries_received`). `migrate` brings 1 and 2 to 3.
    /// One-way: an older binary refuses a newer file (docs/durability.md).
    static let schemaVersion: Int64 = 3
    /// SQLite's page cache for the one connection, in KiB (`PRAGMA cache_size`; SQLite's default is
    /// 2,000). The journal is read and deleted in seq order, so the cache holds the two b-trees'
    /// interior pages and the leaves in use; at the 1,000,000-entry drain's peak it is part of
    /// the gateway's RSS (docs/benchmarks.md, session 11).
    static let pageCacheKiB = 1024
    /// How many stamped-message fingerprints are remembered (covers the broker's in-flight window).
    static let recentCapacity = 4096
    /// Deletes per transaction while draining: about 256 WAL bytes each, so one transaction fits
    /// the WAL budget (a quarter of the reserve); 256 to 8192.
    let deletesPerCommit: Int
    /// The WAL's budget: a quarter of `minFreeBytes`, at least 64 KiB (checkpointed at that size).
    public let walBudgetBytes: Int64

    /// What `append` did.
    public enum AppendOutcome: Sendable, Equatable {
        case appended(dropped: [JournalDrop])
        /// The same stamped message was journaled before (a redelivery): nothing appended.
        case duplicate
        /// Accepted, but the disk write failed: the entries are kept in memory, in order, and
        /// written when the disk takes them again. Pause intake until `writeFailure` is nil.
        case held(JournalError)
    }

    /// Opens (or creates) the journal and checks it. A corrupt or foreign file is an error, never truncated.
    public init(options: JournalOptions, logger: Logger) throws(JournalError) {
        self.options = options
        policy = options.commitPolicy
        self.logger = logger
        let walBudget = max(options.minFreeBytes / 4, 64 << 10)
        walBudgetBytes = walBudget
        deletesPerCommit = Int(min(8192, max(256, walBudget / 256)))
        autocheckpointFrames = Int32(min(1000, max(16, walBudget / 4096)))
        let opened = ContinuousClock.now
        let conn: SQLiteConnection
        let version: Int64
        do {
            if Self.fileIdentity(options.path) == nil { try Self.create(options) }
            try Self.inspectFiles(options.path)
            conn = try SQLiteConnection(path: options.path, create: false)
            version = try Self.checkSchema(conn)
            try conn.exec("PRAGMA journal_mode=WAL")
            try conn.exec("PRAGMA synchronous=\(options.synchronous == .full ? "FULL" : "NORMAL")")
            try conn.exec("PRAGMA busy_timeout=5000")
            try conn.exec("PRAGMA cache_size=-\(Self.pageCacheKiB)")
            // Keep the WAL inside the free-space reserve, so deletes and checkpoints always have room.
            // The WAL hook runs the automatic checkpoint and counts the frames it has yet to copy.
            conn.trackWAL(autocheckpointFrames: autocheckpointFrames)
            try conn.exec("PRAGMA journal_size_limit=\(walBudget)")
        } catch let e where e.kind != .corrupt && e.kind != .schema && Self.isOnReadOnlyFileSystem(options.path) {
            throw JournalError(.readOnly, path: options.path, e.detail)
        } catch let e where e.kind == .other {
            // SQLite reports a foreign file lazily, on first use; say so plainly.
            throw JournalError(.corrupt, path: options.path, e.detail)
        }
        // Reads every page of the entries table: a damaged page fails here, before any migration
        // changes the file.
        let (entries, bytes, maxSeq) = try Self.countEntries(conn)
        try Self.migrate(conn, from: version, entries: entries, logger: logger)
        let highWater = try Self.readHighWater(conn)
        // Both, so a high-water mark behind the table (edited by hand) cannot hand out a seq twice.
        let lastSeq = max(highWater, maxSeq)
        let inner = try Inner(conn: conn)
        inner.storedHighWater = highWater
        let pageSize = try conn.prepare("PRAGMA page_size")
        if try pageSize.step() { inner.pageSize = pageSize.int64(0) }
        identity = Self.fileIdentity(options.path)
        inner.entries = entries
        inner.bytes = bytes
        inner.lastInsertedSeq = lastSeq
        committedSeq.store(lastSeq, ordering: .releasing)
        reader = Mutex(try CommittedReader(path: options.path))
        logger.info("journal opened", metadata: ["path": "\(options.path)", "entries": "\(inner.entries)", "bytes": "\(inner.bytes)",
                                                 "checked_in_ms": "\((ContinuousClock.now - opened).milliseconds)"])
        self.inner = SleepingLock(inner)
    }

    deinit {
        // The reader first: the connection that closes last folds the WAL into the file and
        // removes it, and that must be the writer (the reader is query-only).
        reader.withLock { $0 = nil }
    }

    /// Sets up a new journal under a temporary name and renames it into place, so a journal
    /// file at the path is never empty or half set up (an empty one means it was truncated).
    private static func create(_ options: JournalOptions) throws(JournalError) {
        let temporary = options.path + ".new"
        for suffix in ["", "-wal", "-shm"] { unlink(temporary + suffix) }
        do {
            let conn = try SQLiteConnection(path: temporary)
            try conn.exec("PRAGMA journal_mode=WAL")
            try conn.exec("""
                BEGIN;
                \(entriesTable("entries"));
                CREATE TABLE recent_messages(
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  digest INTEGER NOT NULL);
                \(highWaterTable);
                INSERT INTO seq_high_water(id, seq) VALUES (1, \(options.firstSeq - 1));
                PRAGMA user_version=\(schemaVersion);
                COMMIT;
                """)
            try conn.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        }   // closing the only connection folds the WAL in and removes it
        for suffix in ["-wal", "-shm"] { unlink(temporary + suffix) }
        guard rename(temporary, options.path) == 0 else {
            throw JournalError(.unreadable, path: options.path, "cannot rename the new journal into place: \(String(cString: strerror(errno)))")
        }
        let dir = open(directory(of: options.path), O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// The file checks of `JournalFileCheck`, before SQLite touches the file (opening it would
    /// replay and then reset a WAL, and with it the evidence).
    private static func inspectFiles(_ path: String) throws(JournalError) {
        let size = fileSize(path) ?? 0
        let head = try readFile(path, limit: 100)
        let walPath = path + "-wal"
        let wal = fileSize(walPath).map { $0 > 0 } == true ? try readFile(walPath, limit: Int.max) : []
        let databasePageSize: Int?
        if head.count >= 18, Array(head[0..<16]) == JournalFileCheck.magic {
            let raw = Int(head[16]) << 8 | Int(head[17])
            databasePageSize = raw == 1 ? 65536 : raw
        } else {
            databasePageSize = nil
        }
        let walReport = JournalFileCheck.wal(wal, databasePageSize: databasePageSize)
        if case let .failure(damage) = JournalFileCheck.header(head, fileSize: size, walHasCommits: walReport.commits > 0) {
            throw JournalError(damage, path: path)
        }
        if let damage = walReport.damage { throw JournalError(damage, path: path) }
    }

    /// Schema and version check before first use. Returns the file's schema version (0 to 3).
    private static func checkSchema(_ conn: SQLiteConnection) throws(JournalError) -> Int64 {
        let version = try conn.prepare("PRAGMA user_version")
        _ = try version.step()
        let v = version.int64(0)
        var objects: Set<String> = []
        let master = try conn.prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        while try master.step() { if let n = master.string(0) { objects.insert(n) } }
        var columns: [String] = []
        let info = try conn.prepare("SELECT name FROM pragma_table_info('entries') ORDER BY cid")
        while try info.step() { if let n = info.string(0) { columns.append(n) } }
        switch JournalFileCheck.schema(objects: objects, entriesColumns: columns, userVersion: v, understood: schemaVersion) {
        case .journal:
            return v
        case .fresh:
            throw JournalError(JournalDamage(.foreign, "it is an SQLite database with no tables, which forewarn never leaves behind (a new journal is set up under another name and renamed into place)"), path: conn.path)
        case let .damage(d):
            throw JournalError(d, path: conn.path)
        }
    }

    /// Counts the entries, reading every page of the table; SQLITE_CORRUPT names a damaged page.
    /// A version-1 file's index is not counted as it was before: `migrate` drops it right after,
    /// and dropping it reads every page of it (to free them), so a damaged index page fails the
    /// migration instead (rolled back, the file unchanged); a count would read them all twice.
    private static func countEntries(_ conn: SQLiteConnection) throws(JournalError) -> (Int, Int64, Int64) {
        do throws(JournalError) {
            let count = try conn.prepare("SELECT COUNT(*), COALESCE(SUM(size),0), COALESCE(MAX(seq),0) FROM entries NOT INDEXED")
            _ = try count.step()
            let recent = try conn.prepare("SELECT COUNT(digest) FROM recent_messages")
            _ = try recent.step()
            return (Int(count.int64(0)), count.int64(1), count.int64(2))
        } catch let e where e.damage == nil && (e.kind == .corrupt || e.kind == .other) {
            throw JournalError(JournalDamage(.damagedPage, "a page of it is damaged: reading every entry failed with \(e.detail)"), path: conn.path)
        }
    }

    /// The entries table of schema version 3, named `name` (the migration builds it beside the old one).
    static func entriesTable(_ name: String) -> String {
        """
        CREATE TABLE \(name)(
          seq INTEGER PRIMARY KEY,
          kind INTEGER NOT NULL,
          machine TEXT NOT NULL,
          mqtt_topic TEXT NOT NULL,
          received_ms INTEGER NOT NULL,
          payload BLOB NOT NULL,
          reason TEXT,
          size INTEGER NOT NULL)
        """
    }

    /// One row: the highest seq any commit handed out, deleted or not (what AUTOINCREMENT kept in sqlite_sequence).
    static let highWaterTable = "CREATE TABLE seq_high_water(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)"

    private static func readHighWater(_ conn: SQLiteConnection) throws(JournalError) -> Int64 {
        let q = try conn.prepare("SELECT seq FROM seq_high_water WHERE id = 1")
        guard try q.step() else {
            throw JournalError(JournalDamage(.foreign, "its table seq_high_water has no row, which forewarn never leaves behind"), path: conn.path)
        }
        return q.int64(0)
    }

    /// Brings a journal of schema version 0, 1 or 2 to version 3 in one transaction, so a crash
    /// leaves the file as it was or migrated: version 1's received_ms index is dropped (version
    /// 2), then `entries` is rebuilt without AUTOINCREMENT (a copy of every row, seqs kept) and
    /// sqlite_sequence's value for it goes to `seq_high_water`. The copy needs room for the table
    /// twice (its pages in the WAL, then in the file at the checkpoint): without it the open
    /// fails with `.diskFull` naming what is needed, and the file is left at its version.
    private static func migrate(_ conn: SQLiteConnection, from version: Int64, entries: Int, logger: Logger) throws(JournalError) {
        guard version < schemaVersion else { return }
        let started = ContinuousClock.now
        try ensureRoomToMigrate(conn, from: version, entries: entries, logger: logger)
        do throws(JournalError) {
            try conn.exec("BEGIN IMMEDIATE")
            if version < 2 {
                do throws(JournalError) { try conn.exec("DROP INDEX entries_received") } catch {
                    guard error.kind == .corrupt || error.kind == .other else { throw error }
                    throw JournalError(JournalDamage(.damagedPage, "a page of it is damaged: dropping its index entries_received (the migration to schema version \(schemaVersion)) failed with \(error.detail)"), path: conn.path)
                }
            }
            // `INSERT ... SELECT *` between tables of the same columns copies each record as it is
            // (SQLite's transfer optimisation), in seq order; DROP TABLE also removes the table's
            // sqlite_sequence row, so its value is taken first.
            try conn.exec("""
                \(entriesTable("entries_v3"));
                INSERT INTO entries_v3 SELECT * FROM entries;
                \(highWaterTable);
                INSERT INTO seq_high_water(id, seq) VALUES (1, MAX(
                  COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'entries'), 0),
                  COALESCE((SELECT MAX(seq) FROM entries), 0)));
                DROP TABLE entries;
                ALTER TABLE entries_v3 RENAME TO entries;
                PRAGMA user_version=\(schemaVersion);
                COMMIT
                """)
        } catch {
            if conn.isInTransaction { try? conn.exec("ROLLBACK") }
            if error.damage != nil { throw error }
            // The rolled-back frames keep their blocks in the WAL file: give them back.
            try? conn.checkpoint(truncate: true)
            if error.kind == .diskFull {
                throw JournalError(.diskFull, path: conn.path, "the migration to schema version \(schemaVersion) ran out of room copying the entries table (\(error.detail)); it was rolled back, the file is still schema version \(version)", remedy: migrationRemedy)
            }
            guard error.kind == .corrupt || error.kind == .other else { throw error }
            throw JournalError(JournalDamage(.damagedPage, "a page of it is damaged: copying its entries (the migration to schema version \(schemaVersion)) failed with \(error.detail)"), path: conn.path)
        }
        // Fold the copy into the file now and give the WAL's room back (it held the whole table).
        do { try conn.checkpoint(truncate: true) } catch {
            logger.warning("journal WAL checkpoint after the migration failed: \(error)")
        }
        logger.info("journal migrated to schema version \(schemaVersion): \(version < 2 ? "dropped the received_ms index, " : "")rebuilt entries without AUTOINCREMENT", metadata: [
            "path": "\(conn.path)", "from_version": "\(version)", "entries": "\(entries)",
            "migrated_in_ms": "\((ContinuousClock.now - started).milliseconds)"])
    }

    /// journal.max-bytes does not shrink a journal that is already written, so it is no advice here.
    static let migrationRemedy = "Free space on the state directory's file system and start again (or run the previous forewarn until the backlog is delivered)."

    /// The migration's copy needs the table's pages twice: in the WAL, then in the file when the
    /// checkpoint copies them (less the file's free pages, which the copy reuses). Short of that,
    /// the ballast (`journal.ballast`, kept for a full disk) is deleted if that is enough (the
    /// gateway makes it again when there is room); else the open fails with `.diskFull`.
    private static func ensureRoomToMigrate(_ conn: SQLiteConnection, from version: Int64, entries: Int, logger: Logger) throws(JournalError) {
        func pragma(_ name: String) throws(JournalError) -> Int64 {
            let q = try conn.prepare("PRAGMA \(name)")
            return try q.step() ? q.int64(0) : 0
        }
        let pageSize = try pragma("page_size"), pages = try pragma("page_count"), free = try pragma("freelist_count")
        let table = (pages - free) * pageSize
        let needed = table * (pageSize + 24) / pageSize + max(0, table - free * pageSize) + (1 << 20)
        var fs = statvfs()
        guard statvfs(directory(of: conn.path), &fs) == 0 else { return }
        let available = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        if available >= needed { return }
        let ballast = BallastFile.path(besideJournal: conn.path)
        if let held = fileSize(ballast), available + held >= needed {
            BallastFile(path: ballast, bytes: held).release()
            logger.warning("deleted the ballast file \(ballast) to make room for the journal's migration to schema version \(schemaVersion)", metadata: [
                "released_bytes": "\(held)", "needed_bytes": "\(needed)", "free_bytes": "\(available)"])
            return
        }
        throw JournalError(.diskFull, path: conn.path, "the migration to schema version \(schemaVersion) copies the entries table (\(entries) entries, \(table) bytes) and needs about \(needed) bytes free on the file system, which has \(available); nothing was changed, the file is still schema version \(version)", remedy: migrationRemedy)
    }

    static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    /// Up to `limit` bytes from the start of `path`.
    static func readFile(_ path: String, limit: Int) throws(JournalError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw JournalError(.unreadable, path: path, "cannot read: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - out.count)) }
            if n < 0 { throw JournalError(.unreadable, path: path, "cannot read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// Appends entries inside the current group-commit transaction and commits when it holds
    /// `commitEvery` entries. Under `drop-oldest` it first makes room by dropping the oldest
    /// entries; the drops are returned (and counted). A failed write keeps the entries (see `.held`).
    @discardableResult
    public func append(_ newEntries: [NewJournalEntry]) throws(JournalError) -> [JournalDrop] {
        if case let .appended(dropped) = try append(newEntries, messageDigest: nil) { return dropped }
        return []
    }

    /// Appends the entries of one message. With a `messageDigest`, a message already journaled
    /// (the broker redelivering after a crash, before it saw our PUBACK) is recognised and skipped,
    /// so it is not forwarded again under a new seq.
    ///
    /// Nothing handed to this call is lost while the process lives: when SQLite cannot write
    /// (disk full, read-only, I/O error), the transaction is rolled back, its entries and these
    /// stay in memory in order, the outcome is `.held`, and `commitIfDue` writes them again.
    public func append(_ newEntries: [NewJournalEntry], messageDigest: Int64?) throws(JournalError) -> AppendOutcome {
        inner.withLock { (s: inout Inner) -> AppendOutcome in
            if let d = messageDigest, s.recentDigests.contains(d) { return .duplicate }
            var dropped: [JournalDrop] = []
            let incoming = newEntries.reduce(Int64(0)) { $0 + $1.accountedSize }
            if s.failure == nil, options.fullPolicy == .dropOldest, s.bytes + incoming > options.maxBytes {
                do throws(JournalError) { dropped = try makeRoom(&s, needed: s.bytes + incoming - options.maxBytes) } catch { fail(&s, error) }
            }
            // From here the journal has custody of the entries, in memory until committed.
            s.kept.append(newEntries, digest: messageDigest)
            s.entries += newEntries.count
            s.bytes += incoming
            s.uncommitted += newEntries.count
            if let d = messageDigest { remember(&s, digest: d) }
            if s.failure == nil {
                do throws(JournalError) {
                    try begin(&s)
                    try insertRows(&s, newEntries, digest: messageDigest)
                    if decide(s, inputQueued: true) == .commitNow { try commit(&s) }
                } catch { fail(&s, error) }
            }
            if let f = s.failure { return .held(f) }
            return .appended(dropped: dropped)
        }
    }

    /// Commits the open transaction if `CommitPolicy` says so: it holds `commitEvery` entries,
    /// is older than `commitInterval`, or (with `commitWhenIdle`) holds entries and the caller
    /// says no more input is queued. After a failed write, it writes what is kept in memory again
    /// once the backoff allows. Call it after each message and on every tick. A failure does not
    /// throw: it shows in `writeFailure` and everything stays kept.
    /// Returns true when appended entries are still uncommitted (the caller should ask again soon).
    @discardableResult
    public func commitIfDue(inputQueued: Bool = true) throws(JournalError) -> Bool {
        inner.withLock { (s: inout Inner) -> Bool in
            if s.failure != nil {
                if s.retry.isDue(at: .now) { writeKept(&s) }
                return s.uncommitted > 0
            }
            if decide(s, inputQueued: inputQueued) == .commitNow {
                do throws(JournalError) { try commit(&s) } catch { fail(&s, error) }
            }
            return s.uncommitted > 0
        }
    }

    /// Sets the function called after every commit (one observer; a later call replaces it).
    public func onCommit(_ observer: @escaping @Sendable () -> Void) {
        commitObserver.set(observer)
    }

    /// Commits now (shutdown, tests). After a failed write it tries the kept writes once more,
    /// at once, and throws if the disk still refuses them (they stay kept).
    public func commit() throws(JournalError) {
        try inner.withLock { (s: inout Inner) throws(JournalError) in
            if s.failure != nil { writeKept(&s) }
            else { do throws(JournalError) { try commit(&s) } catch { fail(&s, error) } }
            if let f = s.failure { throw f }
        }
    }

    /// The error of the last failed write while entries or deletes are kept in memory; nil when
    /// everything accepted is on disk (or in the open transaction).
    public var writeFailure: JournalError? { inner.withLock { $0.failure } }

    /// Entries accepted but held in memory because the disk refused them.
    public var keptEntries: Int { inner.withLock { $0.failure == nil ? 0 : $0.kept.entryCount } }

    /// Committed entries with `seq > after`, in order (entries already delivered are skipped,
    /// also while their deletes wait in memory for the disk).
    public func readCommitted(after: Int64, limit: Int) throws(JournalError) -> [JournalEntry] {
        var batch = JournalBatch()
        try readCommitted(after: after, limit: limit, into: &batch)
        return batch.rows.indices.map { i in
            batch.withRow(i) { r in
                JournalEntry(seq: r.seq, kind: r.kind, machine: String(decoding: r.machine, as: UTF8.self),
                             mqttTopic: String(decoding: r.mqttTopic, as: UTF8.self), receivedAt: r.receivedAt,
                             payload: Array(r.payload), reason: r.reason.map { String(decoding: $0, as: UTF8.self) })
            }
        }
    }

    /// The entries `readCommitted` returns, copied into `batch` (emptied first): one buffer the
    /// caller reuses, so a drained entry costs no Strings or arrays of its own (they were a
    /// third of the drain's allocations). A read after every delete so far (the forwarder's
    /// reads as it moves forward) runs on the reader's connection, without the journal lock;
    /// others (a rewind, drops ahead of `after`) run under the lock and skip the kept deletes.
    public func readCommitted(after: Int64, limit: Int, into batch: inout JournalBatch) throws(JournalError) {
        batch.removeAll()
        let route = CommittedReadRoute.choose(after: after, highestDeleted: highestDeletedSeq.load(ordering: .acquiring),
                                              walLength: walLength.load(ordering: .acquiring), autocheckpointFrames: autocheckpointFrames)
        if route == .reader {
            let upTo = committedSeq.load(ordering: .acquiring)
            if upTo <= after { return }
            let read = try reader.withLock { (r: inout CommittedReader?) throws(JournalError) -> Bool in
                guard let r else { return false }
                try r.read(after: after, upTo: upTo, limit: limit, into: &batch)
                return true
            }
            if read { return }
        }
        try inner.withLock { (s: inout Inner) throws(JournalError) in
            let q = s.selectAfter
            var from = after
            for _ in 0..<10_000 {
                q.reset()
                q.bind(1, from)
                q.bind(2, committedSeq.load(ordering: .relaxed))
                q.bind(3, Int64(limit))
                var rows = 0
                while try q.step() {
                    rows += 1
                    from = q.int64(0)
                    if s.kept.isDeleted(from) { continue }
                    batch.append(row: q)
                }
                if !batch.rows.isEmpty || rows < limit { break }
            }
        }
    }

    /// Deletes entries that Kafka has acknowledged. The deletes ride on the next group commit;
    /// after a crash an uncommitted delete means a re-send with the same seq (a duplicate, never a loss).
    /// While writes fail the deletes wait in memory (reads skip them) and are written with the rest.
    public func markDelivered(_ seqs: [Int64]) throws(JournalError) {
        guard !seqs.isEmpty else { return }
        let runs = DeliveredRuns(seqs, maxRun: min(1024, deletesPerCommit))
        inner.withLock { (s: inout Inner) in
            if s.failure == nil {
                do throws(JournalError) {
                    for run in runs.runs {
                        try begin(&s)
                        try delete(&s, run: run)
                        // A large delete rewrites many pages into the WAL at once: commit in bounded
                        // steps, so draining a full journal never needs more than the reserve.
                        if s.kept.deleteCount >= deletesPerCommit { try commit(&s) }
                    }
                    return
                } catch { fail(&s, error) }
            }
            for seq in seqs where !s.kept.isDeleted(seq) { keepDelete(&s, seq: seq) }
        }
    }

    /// Drops entries older than `journal.max-age` (reason `max-age`). Returns what it dropped.
    /// Skipped while writes fail.
    ///
    /// It walks from the lowest seq up, 1000 entries a batch, and stops at the first entry that is
    /// not older than the cutoff: seq order is receive order, so the oldest entries are the first
    /// (the table needs no index on received_ms, which cost ~0.9 µs of every append and ~0.7 µs of
    /// every delete: docs/benchmarks.md, session 16).
    /// Only after the wall clock stepped back does a later seq carry an older stamp; such an entry
    /// waits until the entries before it expire. Expiry is never early, only late.
    public func expire(nowMillis: Int64) throws(JournalError) -> [JournalDrop] {
        let cutoff = nowMillis - options.maxAge.milliseconds
        return inner.withLock { (s: inout Inner) -> [JournalDrop] in
            var dropped: [JournalDrop] = []
            do throws(JournalError) {
                guard s.failure == nil, try oldestReceived(&s).map({ $0 < cutoff }) ?? false else { return [] }
                var reachedYoung = false
                while !reachedYoung {
                    let q = s.selectOldest
                    q.reset()
                    q.bind(1, 1000)
                    var victims: [(seq: Int64, machine: String)] = []
                    while try q.step() {
                        if q.int64(2) >= cutoff { reachedYoung = true; break }
                        victims.append((q.int64(0), q.string(1) ?? ""))
                    }
                    q.reset()   // a statement left on a row holds a read snapshot
                    if victims.isEmpty { break }
                    try begin(&s)
                    // Consecutive seqs as ranges, as delivered ones are (a range kept after a failed
                    // write is expanded seq by seq, so a range never spans a gap).
                    for run in DeliveredRuns(victims.map(\.seq), maxRun: 1024).runs { try delete(&s, run: run) }
                    for v in victims {
                        let d = JournalDrop(machine: v.machine, reason: "max-age")
                        s.drops[d, default: 0] += 1
                        dropped.append(d)
                    }
                    dropGenerations.add(1, ordering: .releasing)
                    if victims.count < 1000 { break }
                }
            } catch { fail(&s, error) }
            return dropped
        }
    }

    /// Folds the WAL into the database file and truncates it (frees disk space). Skipped while a
    /// transaction is open. Returns false if SQLite could not do it.
    @discardableResult
    public func checkpoint() -> Bool {
        inner.withLock { s in
            guard !s.inTransaction else { return false }
            return checkpointTruncate(&s)
        }
    }

    /// True while the last checkpoint failed because the disk is full (it needs room to grow
    /// the database file by the WAL's new pages): the ballast is for that.
    public var checkpointFailedForFullDisk: Bool { inner.withLock { $0.checkpointFailedFull } }

    /// Rewrites an empty journal (`VACUUM`, then a TRUNCATE checkpoint), so the file gives back
    /// the pages it grew to; SQLite never shrinks it otherwise. Only with no entries, no open
    /// transaction and no failing write (then it is a few pages). Returns the bytes given back,
    /// nil when it was not done.
    public func compactIfEmpty() -> Int64? {
        inner.withLock { s -> Int64? in
            guard s.entries == 0, !s.inTransaction, s.failure == nil, s.kept.isEmpty else { return nil }
            let before = (Self.fileSize(options.path) ?? 0) + (Self.fileSize(options.path + "-wal") ?? 0)
            do { try s.conn.exec("VACUUM") } catch {
                logger.warning("journal compaction (VACUUM) failed: \(error)")
                // The frames a failed VACUUM wrote are rolled back, but the WAL file keeps their
                // blocks: on a full disk that was all its room, and nothing else would give it back.
                checkpointTruncate(&s)
                return nil
            }
            checkpointTruncate(&s)
            let after = (Self.fileSize(options.path) ?? 0) + (Self.fileSize(options.path + "-wal") ?? 0)
            return before - after
        }
    }

    /// `PRAGMA integrity_check`: empty when the database is sound, else SQLite's findings.
    public func integrityProblems() throws(JournalError) -> [String] {
        try inner.withLock { (s: inout Inner) throws(JournalError) -> [String] in
            let q = try s.conn.prepare("PRAGMA integrity_check")
            var out: [String] = []
            while try q.step() { if let t = q.string(0), t != "ok" { out.append(t) } }
            return out
        }
    }

    /// Measures the journal's storage: free space on its file system, free pages inside the
    /// database file, read-only mounts, and whether the file is still at its path.
    public func probeStorage() -> StorageProbe {
        let dir = Self.directory(of: options.path)
        var fs = statvfs()
        guard statvfs(dir, &fs) == 0 else { return StorageProbe(filesystemFreeBytes: 0, vanished: true) }
        let (reusable, pending) = inner.withLock { s -> (Int64, Int64) in
            let pending = Int64(s.conn.walFrames?.pending ?? 0) * s.pageSize
            let q = s.freelistCount
            q.reset()
            defer { q.reset() }   // a statement left on a row holds a read snapshot and blocks checkpoints
            guard (try? q.step()) == true else { return (0, pending) }
            return (q.int64(0) * s.pageSize, pending)
        }
        let vanished = identity != nil && Self.fileIdentity(options.path) != identity
        return StorageProbe(filesystemFreeBytes: Int64(fs.f_bavail) * Int64(fs.f_frsize), reusableBytes: reusable, pendingCheckpointBytes: pending,
                            readOnly: fs.f_flag & 1 != 0 /* ST_RDONLY */, vanished: vanished)
    }

    public var stats: JournalStats {
        inner.withLock { s in
            let oldest = s.entries > 0 ? try? oldestReceived(&s) : nil
            return JournalStats(entries: s.entries, bytes: s.bytes, oldestReceivedAt: oldest, committedSeq: committedSeq.load(ordering: .relaxed), uncommitted: s.uncommitted)
        }
    }

    /// Changes whenever entries are dropped, so the forwarder can take back what it had
    /// handed to librdkafka but not yet sent (those entries are gone from the journal).
    /// Atomic, not behind the lock: the forwarder reads it every turn, and waiting for the lock
    /// (held by a batch of deletes) was 9 % of its time in a drain (docs/benchmarks.md, session 14).
    public var dropGeneration: Int { dropGenerations.load(ordering: .acquiring) }

    /// Drops counted since the journal was opened, per machine and reason.
    public var drops: [JournalDrop: Int] { inner.withLock { $0.drops } }

    /// Entries in the journal, committed or not (cheap).
    public var entryCount: Int { inner.withLock { $0.entries } }

    /// Bytes counted against `max-bytes` (cheap; `stats` also queries the oldest entry).
    public var bytes: Int64 { inner.withLock { $0.bytes } }

    /// True when the journal is at or over `max-bytes`.
    public var isFull: Bool { inner.withLock { $0.bytes >= options.maxBytes } }

    public func isBelow(fraction: Double) -> Bool {
        inner.withLock { Double($0.bytes) < Double(options.maxBytes) * fraction }
    }

    /// Tests: make every commit fail with `error` (SQLite's transaction is really rolled back), or stop.
    func injectCommitFault(_ error: JournalError?) { inner.withLock { $0.injectedCommitFault = error } }

    // MARK: - under the lock

    private func begin(_ s: inout Inner) throws(JournalError) {
        guard !s.inTransaction else { return }
        try s.conn.exec("BEGIN IMMEDIATE")
        s.inTransaction = true
        s.transactionStarted = .now
    }

    /// COMMIT, and nothing else: the caller decides what became durable.
    private func commitTransaction(_ s: inout Inner) throws(JournalError) {
        if let fault = s.injectedCommitFault {
            try? s.conn.exec("ROLLBACK")
            s.inTransaction = false
            throw fault
        }
        // Once per commit, not per row: the high-water mark that keeps seqs from repeating.
        let handedOut = s.lastInsertedSeq
        if handedOut > s.storedHighWater {
            s.updateHighWater.reset()
            s.updateHighWater.bind(1, handedOut)
            _ = try s.updateHighWater.step()
        }
        try s.conn.exec("COMMIT")
        s.storedHighWater = max(s.storedHighWater, handedOut)
        s.inTransaction = false
        s.lastCommit = .now
        // Before the observer wakes the forwarder: its read must see what this commit made durable.
        committedSeq.store(s.lastInsertedSeq, ordering: .releasing)
        walLength.store(s.conn.walFrames?.length ?? 0, ordering: .releasing)
        commitObserver.notify()
    }

    private func decide(_ s: Inner, inputQueued: Bool) -> CommitPolicy.Decision {
        let now = ContinuousClock.now
        return policy.decide(inTransaction: s.inTransaction, pendingEntries: s.uncommitted, openFor: now - s.transactionStarted,
                             inputQueued: inputQueued, sinceLastCommit: now - s.lastCommit)
    }

    private func commit(_ s: inout Inner) throws(JournalError) {
        guard s.inTransaction else { return }
        try commitTransaction(&s)
        s.uncommitted = 0
        s.kept.clear()
    }

    /// A write failed: end SQLite's transaction (SQLite may have rolled it back already, and every
    /// later COMMIT would fail with "no transaction is active"), and keep everything in memory.
    private func fail(_ s: inout Inner, _ error: JournalError) {
        if s.conn.isInTransaction { try? s.conn.exec("ROLLBACK") }
        s.kept.expandRanges()   // written again one by one, in chunks
        s.inTransaction = false
        s.lastInsertedSeq = committedSeq.load(ordering: .relaxed)
        if s.failure == nil {
            logger.error("journal write failed; keeping \(s.kept.entryCount) accepted entries and \(s.kept.deletes.count) deletes in memory and retrying: \(error)")
        }
        s.failure = error
        s.retry.failed(at: .now)
    }

    /// Writes what is kept again: deletes first, in chunks (each makes room and keeps the WAL
    /// small), then the appends in their order, as one transaction. Any failure keeps the rest.
    /// On a full disk each chunk is checkpointed away before the next, and a chunk that does not
    /// fit halves the next retry's chunks: with no ballast at the smallest reserve, 256 deletes
    /// needed more WAL than the 128 KiB free, and the same retry failed every 5 s for good.
    private func writeKept(_ s: inout Inner) {
        guard let failure = s.failure else { return }
        let diskFull = failure.kind == .diskFull
        if diskFull { checkpointTruncate(&s) }
        do throws(JournalError) {
            let chunkSize = s.keptDeleteChunk ?? deletesPerCommit
            for chunk in s.kept.deleteChunks(size: chunkSize) {
                do throws(JournalError) {
                    try begin(&s)
                    for seq in chunk { try deleteRow(&s, seq: seq) }
                    try commitTransaction(&s)
                } catch {
                    if error.kind == .diskFull { s.keptDeleteChunk = max(1, chunk.count / 2) }
                    throw error
                }
                s.kept.deletesWritten(chunk)
                if diskFull { checkpointTruncate(&s) }
            }
            s.keptDeleteChunk = nil
            try begin(&s)
            for a in s.kept.appends { try insertRows(&s, a.entries, digest: a.digest) }
            let written = s.kept.entryCount
            try commit(&s)
            s.failure = nil
            s.retry.succeeded()
            logger.notice("journal writable again: wrote the \(written) entries kept in memory", metadata: ["after": "\(failure.kind)"])
            checkpointTruncate(&s)
        } catch { fail(&s, error) }
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`, remembering whether it failed for a full disk.
    @discardableResult
    private func checkpointTruncate(_ s: inout Inner) -> Bool {
        do {
            try s.conn.checkpoint(truncate: true)
            walLength.store(s.conn.walFrames?.length ?? 0, ordering: .releasing)
            s.checkpointFailedFull = false
            return true
        } catch {
            // A caller may retry often (the gateway does while paused for space): a full disk is
            // logged when it starts failing, not on every try.
            if !(s.checkpointFailedFull && error.kind == .diskFull) { logger.warning("journal WAL checkpoint failed: \(error)") }
            s.checkpointFailedFull = error.kind == .diskFull
            return false
        }
    }

    private func insertRows(_ s: inout Inner, _ entries: [NewJournalEntry], digest: Int64?) throws(JournalError) {
        for e in entries {
            let seq = s.lastInsertedSeq + 1
            s.insert.reset()
            s.insert.bind(1, seq)
            s.insert.bind(2, e.kind.rawValue)
            s.insert.bind(3, e.machine)
            s.insert.bind(4, e.mqttTopic)
            s.insert.bind(5, e.receivedAt)
            s.insert.bind(6, e.payload)
            s.insert.bind(7, e.reason)
            s.insert.bind(8, e.accountedSize)
            _ = try s.insert.step()
            s.lastInsertedSeq = seq
        }
        guard let d = digest else { return }
        s.insertDigest.reset()
        s.insertDigest.bind(1, d)
        _ = try s.insertDigest.step()
        if s.pruneDue {
            s.pruneDigests.reset()
            s.pruneDigests.bind(1, Int64(Self.recentCapacity))
            _ = try s.pruneDigests.step()
            s.pruneDue = false
        }
    }

    /// Remembers a stamped message's fingerprint in memory (its row is written with the entries).
    private func remember(_ s: inout Inner, digest d: Int64) {
        s.recentDigests.insert(d)
        s.recentOrder.append(d)
        if s.recentOrder.count > Self.recentCapacity * 2 {
            for old in s.recentOrder.prefix(s.recentOrder.count - Self.recentCapacity) { s.recentDigests.remove(old) }
            s.recentOrder.removeFirst(s.recentOrder.count - Self.recentCapacity)
            s.pruneDue = true
        }
    }

    /// The lowest seq's `received_ms` (a rowid lookup), nil when the journal is empty.
    private func oldestReceived(_ s: inout Inner) throws(JournalError) -> Int64? {
        let q = s.selectOldestReceived
        q.reset()
        defer { q.reset() }
        guard try q.step(), !q.isNull(0) else { return nil }
        return q.int64(0)
    }

    /// Deletes one entry inside the open transaction, counting it; records it as kept.
    private func delete(_ s: inout Inner, seq: Int64) throws(JournalError) -> Bool {
        let q = s.selectSize
        q.reset()
        q.bind(1, seq)
        guard try q.step() else { q.reset(); return false }
        let size = q.int64(0)
        q.reset()
        recordDelete(upTo: seq)
        let d = s.deleteOne
        d.reset()
        d.bind(1, seq)
        while try d.step() {}
        s.entries -= 1
        s.bytes -= size
        s.kept.delete(seq)
        return true
    }

    /// Deletes every entry with a seq in `range` (all of them delivered) with one statement,
    /// counting what was there; records each seq as kept.
    private func delete(_ s: inout Inner, range: ClosedRange<Int64>) throws(JournalError) {
        let q = s.selectRangeSize
        q.reset()
        q.bind(1, range.lowerBound)
        q.bind(2, range.upperBound)
        guard try q.step() else { q.reset(); return }
        let (count, size) = (q.int64(0), q.int64(1))
        q.reset()
        guard count > 0 else { return }
        recordDelete(upTo: range.upperBound)
        let d = s.deleteRange
        d.reset()
        d.bind(1, range.lowerBound)
        d.bind(2, range.upperBound)
        while try d.step() {}
        s.entries -= Int(count)
        s.bytes -= size
        s.kept.delete(range: range)
    }

    /// Deletes a run of consecutive seqs: with one range statement when it is long enough, else one by one.
    private func delete(_ s: inout Inner, run: ClosedRange<Int64>) throws(JournalError) {
        if run.count >= DeliveredRuns.rangeMin { try delete(&s, range: run) }
        else { for seq in run { _ = try delete(&s, seq: seq) } }
    }

    /// Raises `highestDeletedSeq` before a delete, so reads after it go under the lock.
    private func recordDelete(upTo seq: Int64) {
        _ = highestDeletedSeq.max(seq, ordering: .acquiringAndReleasing)
    }

    /// Writes a kept delete again (already counted).
    private func deleteRow(_ s: inout Inner, seq: Int64) throws(JournalError) {
        let d = s.deleteOne
        d.reset()
        d.bind(1, seq)
        while try d.step() {}
    }

    /// While writes fail: a delete waits in memory; it is counted if the entry is on disk.
    private func keepDelete(_ s: inout Inner, seq: Int64) {
        let q = s.selectSize
        q.reset()
        defer { q.reset() }
        q.bind(1, seq)
        guard (try? q.step()) == true else { return }  // not journaled (or unreadable): nothing to delete
        recordDelete(upTo: seq)
        s.kept.delete(seq)
        s.entries -= 1
        s.bytes -= q.int64(0)
    }

    private func makeRoom(_ s: inout Inner, needed: Int64) throws(JournalError) -> [JournalDrop] {
        var dropped: [JournalDrop] = []
        var freed: Int64 = 0
        try begin(&s)
        while freed < needed, s.entries > 0 {
            let q = s.selectOldest
            q.reset()
            q.bind(1, 256)
            var victims: [(Int64, String)] = []
            while try q.step() { victims.append((q.int64(0), q.string(1) ?? "")) }
            if victims.isEmpty { break }
            for (seq, machine) in victims {
                if freed >= needed { break }
                let before = s.bytes
                if try delete(&s, seq: seq) {
                    freed += before - s.bytes
                    let d = JournalDrop(machine: machine, reason: "max-bytes")
                    s.drops[d, default: 0] += 1
                    dropped.append(d)
                }
            }
        }
        if !dropped.isEmpty {
            dropGenerations.add(1, ordering: .releasing)
            logger.warning("journal full: dropped oldest entries (journal.full-policy=drop-oldest)", metadata: ["dropped": "\(dropped.count)"])
        }
        return dropped
    }

    // MARK: - the file on disk

    struct FileIdentity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    static func fileIdentity(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    static func isOnReadOnlyFileSystem(_ path: String) -> Bool {
        var fs = statvfs()
        return statvfs(directory(of: path), &fs) == 0 && fs.f_flag & 1 != 0 /* ST_RDONLY */
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (sec, atto) = components
        return sec * 1000 + atto / 1_000_000_000_000_000
    }
}

/// The journal's one commit observer, behind a lock.
///
/// The closure sits in a struct, never directly in the `Mutex`: with `Mutex<(() -> Void)?>`,
/// every `withLock { $0 }` wrote the closure back through the generic `inout` wrapped in two more
/// reabstraction thunks (`$sIegh_ytIeghr_TRTA` around `$sytIeghr_Iegh_TRTA`), so each commit added
/// two layers. Each call then recursed through all of them: the gateway's intake slowed down
/// minute by minute, and the stacks of the threads that commit grew. At exit, `Journal`'s deinit
/// released the chain recursively and overflowed the stack (the SIGSEGV after "gateway stopped";
/// docs/durability.md). A struct's closure field keeps its own representation: reading the
/// struct copies the same closure. `CommitObserverTests` checks that the call's stack depth stays the same.
struct CommitObserverSlot: ~Copyable, Sendable {
    struct Observer: Sendable {
        let call: @Sendable () -> Void
    }
    private let slot = Mutex<Observer?>(nil)

    func set(_ observer: @escaping @Sendable () -> Void) {
        slot.withLock { $0 = Observer(call: observer) }
    }

    func notify() {
        slot.withLock { $0 }?.call()
    }
}
