// Journal owns the gateway's store-and-forward: a SQLite database in WAL mode and the only
// module that imports CSQLite. Accepted readings and dead letters are appended inside a
// group-commit transaction, committed when `CommitPolicy` says so (N entries, T ms, or no more
// input queued); the forwarder reads committed entries
// in sequence order and deletes each one only when Kafka has acknowledged it. Sequence
// numbers never repeat (AUTOINCREMENT), so (gateway, seq) identifies a record forever.
// The journal is bounded by bytes and by age; what it drops it counts per machine and reason.
import CSQLite
import ForewarnCore
import Logging
import Synchronization

public struct JournalError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case corrupt, unreadable, diskFull, busy, schema, other
    }
    public var kind: Kind
    public var path: String
    public var detail: String

    public init(_ kind: Kind, path: String, _ detail: String) {
        self.kind = kind
        self.path = path
        self.detail = detail
    }

    public var description: String {
        switch kind {
        case .corrupt:
            return "journal \(path) is corrupt: \(detail). Forewarn never truncates a journal: move the file aside (it may hold undelivered readings; sqlite3's .recover can salvage them) and start again."
        case .diskFull:
            return "journal \(path): the disk is full (\(detail)). Free space or lower journal.max-bytes."
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

    public init(path: String, commitEvery: Int = 200, commitInterval: Duration = .milliseconds(20), commitWhenIdle: Bool = true,
                commitMinGap: Duration = .milliseconds(2), maxBytes: Int64 = 1 << 30, maxAge: Duration = .seconds(7 * 86_400), fullPolicy: JournalFullPolicy = .backpressure,
                synchronous: JournalSynchronous = .full) {
        self.path = path
        self.commitEvery = commitEvery
        self.commitInterval = commitInterval
        self.commitWhenIdle = commitWhenIdle
        self.commitMinGap = commitMinGap
        self.maxBytes = maxBytes
        self.maxAge = maxAge
        self.fullPolicy = fullPolicy
        self.synchronous = synchronous
    }

    public var commitPolicy: CommitPolicy {
        CommitPolicy(maxEntries: commitEvery, maxDelay: commitInterval, whenIdle: commitWhenIdle, minGap: commitMinGap)
    }
}

public final class Journal: Sendable {
    public let options: JournalOptions
    private let policy: CommitPolicy
    private let logger: Logger
    private let inner: Mutex<Inner>
    /// Called after every successful commit (under the journal lock: keep it short and never
    /// call back into the journal). The forwarder uses it to wake up at once.
    private let commitObserver = Mutex<(@Sendable () -> Void)?>(nil)

    /// Everything behind the lock: the connection, its statements and the counters.
    final class Inner {
        let conn: SQLiteConnection
        let insert: SQLiteStatement
        let deleteOne: SQLiteStatement
        let selectAfter: SQLiteStatement
        let selectOldest: SQLiteStatement
        let selectOlderThan: SQLiteStatement
        var inTransaction = false
        var transactionStarted = ContinuousClock.now
        var lastCommit = ContinuousClock.now
        var uncommitted = 0
        var lastInsertedSeq: Int64 = 0
        var committedSeq: Int64 = 0
        var entries = 0
        var bytes: Int64 = 0
        var drops: [JournalDrop: Int] = [:]
        var dropGeneration = 0
        /// Fingerprints of the last stamped messages, to drop MQTT redeliveries after a crash.
        var recentDigests: Set<Int64> = []
        var recentOrder: [Int64] = []
        let insertDigest: SQLiteStatement
        let pruneDigests: SQLiteStatement

        init(conn: SQLiteConnection) throws(JournalError) {
            self.conn = conn
            insert = try conn.prepare("INSERT INTO entries(kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (?,?,?,?,?,?,?)")
            deleteOne = try conn.prepare("DELETE FROM entries WHERE seq = ? RETURNING size")
            selectAfter = try conn.prepare("SELECT seq, kind, machine, mqtt_topic, received_ms, payload, reason FROM entries WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?")
            selectOldest = try conn.prepare("SELECT seq, machine FROM entries ORDER BY seq LIMIT ?")
            selectOlderThan = try conn.prepare("SELECT seq, machine FROM entries WHERE received_ms < ? ORDER BY seq LIMIT 1000")
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

    static let schemaVersion: Int64 = 1
    /// How many stamped-message fingerprints are remembered (covers the broker's in-flight window).
    static let recentCapacity = 4096

    /// What `append` did.
    public enum AppendOutcome: Sendable, Equatable {
        case appended(dropped: [JournalDrop])
        /// The same stamped message was journaled before (a redelivery): nothing appended.
        case duplicate
    }

    /// Opens (or creates) the journal and checks it. A corrupt or foreign file is an error, never truncated.
    public init(options: JournalOptions, logger: Logger) throws(JournalError) {
        self.options = options
        policy = options.commitPolicy
        self.logger = logger
        let conn = try SQLiteConnection(path: options.path)
        do {
            try Self.check(conn)
            try conn.exec("PRAGMA journal_mode=WAL")
            try conn.exec("PRAGMA synchronous=\(options.synchronous == .full ? "FULL" : "NORMAL")")
            try conn.exec("PRAGMA busy_timeout=5000")
            try conn.exec("""
                CREATE TABLE IF NOT EXISTS entries(
                  seq INTEGER PRIMARY KEY AUTOINCREMENT,
                  kind INTEGER NOT NULL,
                  machine TEXT NOT NULL,
                  mqtt_topic TEXT NOT NULL,
                  received_ms INTEGER NOT NULL,
                  payload BLOB NOT NULL,
                  reason TEXT,
                  size INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS entries_received ON entries(received_ms);
                CREATE TABLE IF NOT EXISTS recent_messages(
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  digest INTEGER NOT NULL);
                PRAGMA user_version=\(Self.schemaVersion);
                """)
        } catch let e where e.kind == .other || e.kind == .unreadable {
            // SQLite reports a foreign file lazily, on first use; say so plainly.
            throw JournalError(.corrupt, path: options.path, e.detail)
        }
        let inner = try Inner(conn: conn)
        let count = try conn.prepare("SELECT COUNT(*), COALESCE(SUM(size),0), COALESCE(MAX(seq),0) FROM entries")
        _ = try count.step()
        inner.entries = Int(count.int64(0))
        inner.bytes = count.int64(1)
        inner.committedSeq = count.int64(2)
        inner.lastInsertedSeq = inner.committedSeq
        logger.info("journal opened", metadata: ["path": "\(options.path)", "entries": "\(inner.entries)", "bytes": "\(inner.bytes)"])
        self.inner = Mutex(inner)
    }

    /// Integrity and schema check before first use.
    private static func check(_ conn: SQLiteConnection) throws(JournalError) {
        let version = try conn.prepare("PRAGMA user_version")
        _ = try version.step()
        let v = version.int64(0)
        if v > schemaVersion {
            throw JournalError(.schema, path: conn.path, "schema version \(v) is newer than this forewarn understands (\(schemaVersion)); refusing to touch it")
        }
        let quick = try conn.prepare("PRAGMA quick_check")
        var problems: [String] = []
        while try quick.step() { if let s = quick.string(0), s != "ok" { problems.append(s) } }
        if !problems.isEmpty {
            throw JournalError(.corrupt, path: conn.path, problems.prefix(3).joined(separator: "; "))
        }
    }

    /// Appends entries inside the current group-commit transaction and commits when it holds
    /// `commitEvery` entries. Under `drop-oldest` it first makes room by dropping the oldest
    /// entries; the drops are returned (and counted).
    @discardableResult
    public func append(_ newEntries: [NewJournalEntry]) throws(JournalError) -> [JournalDrop] {
        if case let .appended(dropped) = try append(newEntries, messageDigest: nil) { return dropped }
        return []
    }

    /// Appends the entries of one message. With a `messageDigest`, a message already journaled
    /// (the broker redelivering after a crash, before it saw our PUBACK) is recognised and skipped,
    /// so it is not forwarded again under a new seq.
    public func append(_ newEntries: [NewJournalEntry], messageDigest: Int64?) throws(JournalError) -> AppendOutcome {
        try inner.withLock { (s: inout Inner) throws(JournalError) -> AppendOutcome in
            if let d = messageDigest, s.recentDigests.contains(d) { return .duplicate }
            var dropped: [JournalDrop] = []
            let incoming = newEntries.reduce(Int64(0)) { $0 + $1.accountedSize }
            if options.fullPolicy == .dropOldest, s.bytes + incoming > options.maxBytes {
                dropped = try makeRoom(&s, needed: s.bytes + incoming - options.maxBytes)
            }
            try begin(&s)
            for e in newEntries {
                s.insert.reset()
                s.insert.bind(1, e.kind.rawValue)
                s.insert.bind(2, e.machine)
                s.insert.bind(3, e.mqttTopic)
                s.insert.bind(4, e.receivedAt)
                s.insert.bind(5, e.payload)
                s.insert.bind(6, e.reason)
                s.insert.bind(7, e.accountedSize)
                _ = try s.insert.step()
                s.lastInsertedSeq = s.conn.lastInsertRowID
                s.entries += 1
                s.bytes += e.accountedSize
                s.uncommitted += 1
            }
            if let d = messageDigest {
                s.insertDigest.reset()
                s.insertDigest.bind(1, d)
                _ = try s.insertDigest.step()
                s.recentDigests.insert(d)
                s.recentOrder.append(d)
                if s.recentOrder.count > Self.recentCapacity * 2 {
                    for old in s.recentOrder.prefix(s.recentOrder.count - Self.recentCapacity) { s.recentDigests.remove(old) }
                    s.recentOrder.removeFirst(s.recentOrder.count - Self.recentCapacity)
                    s.pruneDigests.reset()
                    s.pruneDigests.bind(1, Int64(Self.recentCapacity))
                    _ = try s.pruneDigests.step()
                }
            }
            if decide(s, inputQueued: true) == .commitNow { try commit(&s) }
            return .appended(dropped: dropped)
        }
    }

    /// Commits the open transaction if `CommitPolicy` says so: it holds `commitEvery` entries,
    /// is older than `commitInterval`, or (with `commitWhenIdle`) holds entries and the caller
    /// says no more input is queued. Call it after each message and on every tick.
    /// Returns true when appended entries are still uncommitted (the caller should ask again soon).
    @discardableResult
    public func commitIfDue(inputQueued: Bool = true) throws(JournalError) -> Bool {
        try inner.withLock { (s: inout Inner) throws(JournalError) -> Bool in
            if decide(s, inputQueued: inputQueued) == .commitNow { try commit(&s) }
            return s.uncommitted > 0
        }
    }

    /// Sets the function called after every commit (one observer; a later call replaces it).
    public func onCommit(_ observer: @escaping @Sendable () -> Void) {
        commitObserver.withLock { $0 = observer }
    }

    /// Commits now (shutdown, tests).
    public func commit() throws(JournalError) {
        try inner.withLock { (s: inout Inner) throws(JournalError) in try commit(&s) }
    }

    /// Committed entries with `seq > after`, in order.
    public func readCommitted(after: Int64, limit: Int) throws(JournalError) -> [JournalEntry] {
        try inner.withLock { (s: inout Inner) throws(JournalError) -> [JournalEntry] in
            let q = s.selectAfter
            q.reset()
            q.bind(1, after)
            q.bind(2, s.committedSeq)
            q.bind(3, Int64(limit))
            var out: [JournalEntry] = []
            while try q.step() {
                out.append(JournalEntry(seq: q.int64(0), kind: JournalEntryKind(rawValue: q.int64(1)) ?? .reading,
                                        machine: q.string(2) ?? "", mqttTopic: q.string(3) ?? "", receivedAt: q.int64(4),
                                        payload: q.blob(5), reason: q.isNull(6) ? nil : q.string(6)))
            }
            return out
        }
    }

    /// Deletes entries that Kafka has acknowledged. The deletes ride on the next group commit;
    /// after a crash an uncommitted delete means a re-send with the same seq (a duplicate, never a loss).
    public func markDelivered(_ seqs: [Int64]) throws(JournalError) {
        guard !seqs.isEmpty else { return }
        try inner.withLock { (s: inout Inner) throws(JournalError) in
            try begin(&s)
            for seq in seqs { _ = try delete(&s, seq: seq) }
        }
    }

    /// Drops entries older than `journal.max-age` (reason `max-age`). Returns what it dropped.
    public func expire(nowMillis: Int64) throws(JournalError) -> [JournalDrop] {
        let cutoff = nowMillis - options.maxAge.milliseconds
        return try inner.withLock { (s: inout Inner) throws(JournalError) -> [JournalDrop] in
            var dropped: [JournalDrop] = []
            while true {
                let q = s.selectOlderThan
                q.reset()
                q.bind(1, cutoff)
                var victims: [(Int64, String)] = []
                while try q.step() { victims.append((q.int64(0), q.string(1) ?? "")) }
                if victims.isEmpty { break }
                try begin(&s)
                for (seq, machine) in victims where try delete(&s, seq: seq) {
                    let d = JournalDrop(machine: machine, reason: "max-age")
                    s.drops[d, default: 0] += 1
                    dropped.append(d)
                }
                s.dropGeneration += 1
            }
            return dropped
        }
    }

    public var stats: JournalStats {
        inner.withLock { s in
            var oldest: Int64?
            if s.entries > 0, let q = try? s.conn.prepare("SELECT received_ms FROM entries ORDER BY seq LIMIT 1"), (try? q.step()) == true {
                oldest = q.int64(0)
            }
            return JournalStats(entries: s.entries, bytes: s.bytes, oldestReceivedAt: oldest, committedSeq: s.committedSeq, uncommitted: s.uncommitted)
        }
    }

    /// Changes whenever entries are dropped, so the forwarder can take back what it had
    /// handed to librdkafka but not yet sent (those entries are gone from the journal).
    public var dropGeneration: Int { inner.withLock { $0.dropGeneration } }

    /// Drops counted since the journal was opened, per machine and reason.
    public var drops: [JournalDrop: Int] { inner.withLock { $0.drops } }

    /// True when the journal is at or over `max-bytes`.
    public var isFull: Bool { inner.withLock { $0.bytes >= options.maxBytes } }

    public func isBelow(fraction: Double) -> Bool {
        inner.withLock { Double($0.bytes) < Double(options.maxBytes) * fraction }
    }

    // MARK: - under the lock

    private func decide(_ s: Inner, inputQueued: Bool) -> CommitPolicy.Decision {
        let now = ContinuousClock.now
        return policy.decide(inTransaction: s.inTransaction, pendingEntries: s.uncommitted, openFor: now - s.transactionStarted,
                             inputQueued: inputQueued, sinceLastCommit: now - s.lastCommit)
    }

    private func begin(_ s: inout Inner) throws(JournalError) {
        guard !s.inTransaction else { return }
        try s.conn.exec("BEGIN IMMEDIATE")
        s.inTransaction = true
        s.transactionStarted = .now
    }

    private func commit(_ s: inout Inner) throws(JournalError) {
        guard s.inTransaction else { return }
        try s.conn.exec("COMMIT")
        s.inTransaction = false
        s.uncommitted = 0
        s.committedSeq = s.lastInsertedSeq
        s.lastCommit = .now
        commitObserver.withLock { $0 }?()
    }

    private func delete(_ s: inout Inner, seq: Int64) throws(JournalError) -> Bool {
        let d = s.deleteOne
        d.reset()
        d.bind(1, seq)
        guard try d.step() else { return false }
        let size = d.int64(0)
        while try d.step() {}
        s.entries -= 1
        s.bytes -= size
        return true
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
            s.dropGeneration += 1
            logger.warning("journal full: dropped oldest entries (journal.full-policy=drop-oldest)", metadata: ["dropped": "\(dropped.count)"])
        }
        return dropped
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (sec, atto) = components
        return sec * 1000 + atto / 1_000_000_000_000_000
    }
}
