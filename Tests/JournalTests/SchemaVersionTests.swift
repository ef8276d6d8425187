// Schema version 3 (no AUTOINCREMENT, the highest seq in seq_high_water; since version 2 no index
// on received_ms): a version-1 or version-2 journal, written with its own frozen schema through
// SQLite itself, is migrated on open without losing, renumbering or reordering anything; seqs never
// repeat, even after the table was emptied; a newer file is refused; and max-age, which walks from
// the lowest seq, drops exactly the old entries.
import Foundation
import Journal
import Logging
import Synchronization
import Testing
import TestSupport

/// Keeps every log event's message and metadata, to count what the journal logged.
final class LogRecords: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }
    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }
    func append(_ r: Record) { records.withLock { $0.append(r) } }

    var logger: Logger { Logger(label: "test.schema") { _ in RecordingLogHandler(records: self) } }
}

struct RecordingLogHandler: LogHandler {
    let records: LogRecords
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.append(.init(level: event.level, message: "\(event.message)",
                             metadata: (event.metadata ?? [:]).mapValues { "\($0)" }))
    }
}

/// Runs a python3 script (SQLite as another program sees the file) with `input` on its stdin,
/// and returns its stdout.
func python(_ script: String, _ args: String..., input: Data = Data()) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script] + args
    let out = Pipe(), stdin = Pipe()
    p.standardOutput = out
    p.standardInput = stdin
    try p.run()
    // The script reads all of stdin before it writes: no pipe fills while the other waits.
    stdin.fileHandleForWriting.write(input)
    try stdin.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw TestFailure("python3 exited \(p.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}

/// A journal file exactly as an older binary wrote it: `Journal.create`'s schema of version 1
/// (with the index entries_received) or, with `Version1Journal.version2Schema`, of version 2,
/// rows inserted by SQLite and some deleted (delivered), the WAL checkpointed into the file.
/// The schemas are frozen copies, never the current one.
enum Version1Journal {
    struct Row {
        var kind: JournalEntryKind
        var machine: String
        var topic: String
        var receivedAt: Int64
        var payload: String
        var reason: String?
        /// As `NewJournalEntry.accountedSize` counts it.
        var size: Int64 { Int64(payload.utf8.count + machine.utf8.count + topic.utf8.count + (reason?.utf8.count ?? 0) + 48) }
    }

    static let schema = """
        CREATE TABLE entries(
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          kind INTEGER NOT NULL,
          machine TEXT NOT NULL,
          mqtt_topic TEXT NOT NULL,
          received_ms INTEGER NOT NULL,
          payload BLOB NOT NULL,
          reason TEXT,
          size INTEGER NOT NULL);
        CREATE INDEX entries_received ON entries(received_ms);
        CREATE TABLE recent_messages(
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          digest INTEGER NOT NULL);
        """

    /// Version 2, as binaries from cf48ef2 to 1d511ec wrote it: version 1 without the index.
    static let version2Schema = """
        CREATE TABLE entries(
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          kind INTEGER NOT NULL,
          machine TEXT NOT NULL,
          mqtt_topic TEXT NOT NULL,
          received_ms INTEGER NOT NULL,
          payload BLOB NOT NULL,
          reason TEXT,
          size INTEGER NOT NULL);
        CREATE TABLE recent_messages(
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          digest INTEGER NOT NULL);
        """

    /// Version 3 as this build writes it, frozen here so that a later change to `Journal.create`
    /// cannot make the acceptance test pass by itself.
    static let version3Schema = """
        CREATE TABLE entries(
          seq INTEGER PRIMARY KEY,
          kind INTEGER NOT NULL,
          machine TEXT NOT NULL,
          mqtt_topic TEXT NOT NULL,
          received_ms INTEGER NOT NULL,
          payload BLOB NOT NULL,
          reason TEXT,
          size INTEGER NOT NULL);
        CREATE TABLE recent_messages(
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          digest INTEGER NOT NULL);
        CREATE TABLE seq_high_water(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
        """

    static func schema(version: Int64) -> String { version <= 1 ? schema : version2Schema }

    /// Writes `rows` (seqs from `firstSeq`), deletes `delivered`, remembers `digests`.
    static func write(_ path: String, rows: [Row], firstSeq: Int64, delivered: [Int64], digests: [Int64], userVersion: Int64 = 1,
                      schema: String = schema) throws {
        let json = try JSONSerialization.data(withJSONObject: [
            "rows": rows.map { [$0.kind.rawValue, $0.machine, $0.topic, $0.receivedAt, $0.payload, $0.reason ?? NSNull(), $0.size] as [Any] },
            "first": firstSeq, "delivered": delivered, "digests": digests, "version": userVersion, "schema": schema,
        ])
        _ = try python("""
            import json, sqlite3, sys
            spec = json.loads(sys.stdin.read())
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript("BEGIN;" + spec["schema"] + ";INSERT INTO sqlite_sequence(name, seq) VALUES ('entries', %d);PRAGMA user_version=%d;COMMIT;"
                            % (spec["first"] - 1, spec["version"]))
            c.execute("BEGIN")
            for kind, machine, topic, received, payload, reason, size in spec["rows"]:
                c.execute("INSERT INTO entries(kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (?,?,?,?,?,?,?)",
                          (kind, machine, topic, received, payload.encode(), reason, size))
            c.executemany("DELETE FROM entries WHERE seq = ?", [(s,) for s in spec["delivered"]])
            c.executemany("INSERT INTO recent_messages(digest) VALUES (?)", [(d,) for d in spec["digests"]])
            c.execute("COMMIT")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
            """, path, input: json)
    }

    /// user_version, the names in sqlite_master and `PRAGMA integrity_check`, as SQLite reads the file.
    static func inspect(_ path: String) throws -> (version: Int, objects: [String], integrity: String) {
        let out = try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            print(c.execute("PRAGMA user_version").fetchone()[0])
            print(",".join(sorted(r[0] for r in c.execute("SELECT name FROM sqlite_master"))))
            try: print(";".join(r[0] for r in c.execute("PRAGMA integrity_check")))
            except sqlite3.DatabaseError as e: print("error: %s" % e)
            """, path).split(separator: "\n").map(String.init)
        return (Int(out[0]) ?? -1, out[1].split(separator: ",").map(String.init), out[2])
    }
}

struct SchemaVersionTests {
    func directory(_ name: String) -> String { TestEnvironment.temporaryDirectory(name) }

    /// 20 rows over three machines, one of them a dead letter, stamped 10 ms apart.
    func rows() -> [Version1Journal.Row] {
        (0..<20).map { i in
            let machine = i == 7 ? "" : "m\(i % 3)"
            return Version1Journal.Row(kind: i == 7 ? .deadLetter : .reading, machine: machine, topic: "plant/s1/m\(i % 3)/telemetry",
                                       receivedAt: 1_796_000_000_000 + Int64(i) * 10,
                                       payload: i == 7 ? "not json \(i)" : #"{"machine":"m\#(i % 3)","i":\#(i)}"#,
                                       reason: i == 7 ? "parse: no value" : nil)
        }
    }

    /// What the migration logs from `version`.
    func migratedMessage(from version: Int64) -> String {
        "journal migrated to schema version 3: \(version < 2 ? "dropped the received_ms index, " : "")rebuilt entries without AUTOINCREMENT"
    }

    /// seq_high_water's row, as SQLite reads the file.
    func highWater(_ path: String) throws -> String {
        try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            print(c.execute("SELECT group_concat(seq) FROM seq_high_water").fetchone()[0])
            print(c.execute("SELECT count(*) FROM entries").fetchone()[0])
            print(c.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()[0].count("AUTOINCREMENT"))
            """, path).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a version-1 or version-2 journal holding undelivered readings is migrated on open: every entry kept in order with its seq and contents, no AUTOINCREMENT, the index gone, user_version 3, logged once; a second open does not migrate again",
          arguments: [Int64(1), 2])
    func oldVersionIsMigrated(version: Int64) throws {
        let path = directory("v\(version)-migrate") + "/journal.sqlite"
        let first: Int64 = 5_000
        let all = rows()
        // Delivered: the first three, one in the middle, and the last (so only sqlite_sequence
        // remembers seq 5,019: a migration that lost it would hand that seq out again).
        let delivered: [Int64] = [5_000, 5_001, 5_002, 5_011, 5_019]
        try Version1Journal.write(path, rows: all, firstSeq: first, delivered: delivered, digests: [42, 43, 44], userVersion: version,
                                  schema: Version1Journal.schema(version: version))
        #expect(try Version1Journal.inspect(path).version == Int(version))
        #expect(try Version1Journal.inspect(path).objects
                == (version == 1 ? ["entries", "entries_received", "recent_messages", "sqlite_sequence"] : ["entries", "recent_messages", "sqlite_sequence"]))

        let kept = (0..<20).filter { !delivered.contains(first + Int64($0)) }
        let logs = LogRecords()
        do {
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 1000, commitInterval: .seconds(60)), logger: logs.logger)
            let migrations = logs.all.filter { $0.message.hasPrefix("journal migrated") }
            #expect(migrations.count == 1)
            #expect(migrations.first?.level == .info)
            #expect(migrations.first?.message == migratedMessage(from: version))
            #expect(migrations.first?.metadata["entries"] == "15" && migrations.first?.metadata["from_version"] == "\(version)")
            #expect(migrations.first.flatMap { $0.metadata["migrated_in_ms"] }.flatMap { Int($0) } != nil)
            #expect(j.stats.entries == 15)
            #expect(j.stats.bytes == kept.reduce(Int64(0)) { $0 + all[$1].size })
            #expect(j.stats.committedSeq == 5_019, "the highest seq ever committed, delivered or not")
            #expect(j.stats.oldestReceivedAt == all[3].receivedAt)

            let read = try j.readCommitted(after: 0, limit: 100)
            #expect(read.map(\.seq) == kept.map { first + Int64($0) })
            #expect(read.map(\.kind) == kept.map { all[$0].kind })
            #expect(read.map(\.machine) == kept.map { all[$0].machine })
            #expect(read.map(\.mqttTopic) == kept.map { all[$0].topic })
            #expect(read.map(\.receivedAt) == kept.map { all[$0].receivedAt })
            #expect(read.map(\.payload) == kept.map { Array(all[$0].payload.utf8) })
            #expect(read.map(\.reason) == kept.map { all[$0].reason })

            // The seqs go on after the highest ever used (5,019, delivered), and the fingerprints survive.
            try j.append([NewJournalEntry(kind: .reading, machine: "m9", mqttTopic: "plant/s1/m9/telemetry", receivedAt: 1_796_000_001_000,
                                          payload: Array(#"{"machine":"m9"}"#.utf8))])
            try j.commit()
            #expect(try j.readCommitted(after: 5_018, limit: 10).map(\.seq) == [5_020])
            let redelivered = NewJournalEntry(kind: .reading, machine: "m9", mqttTopic: "t", receivedAt: 1, payload: [])
            #expect(try j.append([redelivered], messageDigest: 43) == .duplicate)
        }
        let after = try Version1Journal.inspect(path)
        #expect(after.version == 3)
        #expect(after.objects == ["entries", "recent_messages", "seq_high_water", "sqlite_sequence"])
        #expect(after.integrity == "ok")
        #expect(try highWater(path) == "5020\n16\n0", "high water 5,020 (the append), 16 entries, no AUTOINCREMENT")

        let again = LogRecords()
        let reopened = try Journal(options: JournalOptions(path: path), logger: again.logger)
        #expect(!again.all.contains { $0.message.hasPrefix("journal migrated") }, "\(again.all.map(\.message))")
        #expect(again.all.filter { $0.message == "journal opened" }.count == 1)
        #expect(reopened.stats.entries == 16)
        #expect(try reopened.readCommitted(after: 0, limit: 100).map(\.seq) == kept.map { first + Int64($0) } + [5_020])
    }

    @Test("a version-1 or version-2 journal with no entries is migrated too, and new entries get seqs after its last",
          arguments: [Int64(1), 2])
    func emptyOldVersionIsMigrated(version: Int64) throws {
        let path = directory("v\(version)-empty") + "/journal.sqlite"
        try Version1Journal.write(path, rows: Array(rows().prefix(3)), firstSeq: 1, delivered: [1, 2, 3], digests: [], userVersion: version,
                                  schema: Version1Journal.schema(version: version))
        let logs = LogRecords()
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1), logger: logs.logger)
        #expect(logs.all.filter { $0.message.hasPrefix("journal migrated") }.map { $0.metadata["entries"] } == ["0"])
        #expect(j.stats.entries == 0 && j.stats.oldestReceivedAt == nil)
        try j.append([NewJournalEntry(kind: .reading, machine: "m1", mqttTopic: "t", receivedAt: 5, payload: [1])])
        #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [4])
    }

    @Test("a version-1 journal whose index has a damaged page is refused as damaged and left byte for byte: the migration's DROP INDEX reads every index page")
    func damagedIndexPageFailsTheMigration() throws {
        let dir = directory("v1-damaged-index")
        let path = dir + "/journal.sqlite"
        let many = (0..<2000).map { i in
            Version1Journal.Row(kind: .reading, machine: "m\(i % 10)", topic: "plant/s1/m\(i % 10)/telemetry",
                                receivedAt: 1_796_000_000_000 + Int64(i), payload: #"{"i":\#(i),"sensors":{"vibration":1.5}}"#)
        }
        try Version1Journal.write(path, rows: many, firstSeq: 1, delivered: [], digests: [])
        // The index's root page (an interior page over its leaves), overwritten with garbage.
        let root = try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            print(c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'entries_received'").fetchone()[0])
            """, path).trimmingCharacters(in: .whitespacesAndNewlines)
        let page = try #require(UInt64(root))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: (page - 1) * 4096)
        handle.write(Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }))
        try handle.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
            Issue.record("a journal with a damaged index page must not open")
        } catch {
            #expect(error.kind == .corrupt && error.damage == .damagedPage, "\(error)")
            #expect(error.description.contains("dropping its index entries_received (the migration to schema version 3) failed"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "the file is left as it was")
        let left = try Version1Journal.inspect(path)
        #expect(left.version == 1 && left.objects.contains("entries_received"))
        #expect(left.integrity == "error: database disk image is malformed")
    }

    @Test("a journal of a newer schema version (4) is refused with the version named, whatever its tables, and left byte for byte",
          arguments: [false, true])
    func newerVersionIsRefused(extraTable: Bool) throws {
        let dir = directory("v4-\(extraTable)")
        let path = dir + "/journal.sqlite"
        try Version1Journal.write(path, rows: Array(rows().prefix(4)), firstSeq: 1, delivered: [], digests: [], userVersion: 4,
                                  schema: Version1Journal.version3Schema + (extraTable ? "CREATE TABLE acks(seq INTEGER PRIMARY KEY);" : ""))
        let before = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map { ($0, try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
        do {
            _ = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
            Issue.record("a version-4 journal must not open")
        } catch {
            #expect(error.kind == .schema && error.damage == .newerSchema, "\(error)")
            #expect(error.description == "journal \(path) is not one this forewarn can use: schema version 4 is newer than this forewarn understands (3); refusing to touch it. Forewarn never changes a file it does not recognise: point state-dir elsewhere or move the file aside.")
        }
        let after = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map { ($0, try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
        #expect(after.map(\.0) == before.map(\.0) && after.map(\.1) == before.map(\.1))
    }

    @Test("a version-3 journal written through SQLite with the frozen schema is accepted as it is: no migration, its entries and high-water mark honoured")
    func version3FileIsAccepted() throws {
        let path = directory("v3-accepted") + "/journal.sqlite"
        try Version1Journal.write(path, rows: Array(rows().prefix(4)), firstSeq: 1, delivered: [4], digests: [], userVersion: 3,
                                  schema: Version1Journal.version3Schema)
        _ = try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("INSERT INTO seq_high_water(id, seq) VALUES (1, 900)")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            """, path)
        let logs = LogRecords()
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1), logger: logs.logger)
        #expect(!logs.all.contains { $0.message.hasPrefix("journal migrated") })
        #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [1, 2, 3])
        try j.append([NewJournalEntry(kind: .reading, machine: "m1", mqttTopic: "t", receivedAt: 5, payload: [1])])
        #expect(try j.readCommitted(after: 3, limit: 10).map(\.seq) == [901], "above the high-water mark, not above the highest entry")
        #expect(try Version1Journal.inspect(path).version == 3)
    }

    @Test("a new journal is created at version 3: no AUTOINCREMENT on entries, seq_high_water at firstSeq - 1")
    func newJournalIsVersion3() throws {
        let path = directory("v3-new") + "/journal.sqlite"
        let logs = LogRecords()
        do { _ = try Journal(options: JournalOptions(path: path, firstSeq: 7_000), logger: logs.logger) }
        #expect(!logs.all.contains { $0.message.hasPrefix("journal migrated") })
        let v = try Version1Journal.inspect(path)
        #expect(v.version == 3 && v.objects == ["entries", "recent_messages", "seq_high_water", "sqlite_sequence"])
        #expect(try highWater(path) == "6999\n0\n0")
    }

    // MARK: seqs never repeat

    func reading(_ i: Int) -> NewJournalEntry {
        NewJournalEntry(kind: .reading, machine: "m\(i % 3)", mqttTopic: "plant/s1/m\(i % 3)/v", receivedAt: Int64(1_000 + i), payload: Array("{\"i\":\(i)}".utf8))
    }

    @Test("seqs never repeat: a journal emptied by deliveries (and by max-age, and by drop-oldest), closed and reopened, numbers new entries above every seq it ever used",
          arguments: ["delivered", "expired", "dropped"])
    func seqsNeverRepeatAfterTheTableWasEmptied(how: String) throws {
        let path = directory("no-repeat-\(how)") + "/journal.sqlite"
        let n = 250
        var used: [Int64] = []
        do {
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 100, commitInterval: .seconds(60), maxBytes: 1 << 30,
                                                        maxAge: .seconds(10), fullPolicy: .dropOldest), logger: Logger(label: "test"))
            for i in 0..<n { try j.append([reading(i)]) }
            try j.commit()
            used = try j.readCommitted(after: 0, limit: 1000).map(\.seq)
            #expect(used == Array(1...Int64(n)))
            switch how {
            case "delivered": try j.markDelivered(used)
            case "expired": #expect(try j.expire(nowMillis: 1_000_000).count == n)
            default: break
            }
            try j.commit()
            if how != "dropped" { #expect(j.stats.entries == 0) }
        }
        if how == "dropped" {
            // drop-oldest: a journal whose max-bytes admits one entry drops all the others for the next.
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 1, maxBytes: 1, fullPolicy: .dropOldest), logger: Logger(label: "test"))
            let dropped = try j.append([reading(n)])
            #expect(dropped.count == n)
            try j.commit()
            #expect(try j.readCommitted(after: 0, limit: 1000).map(\.seq) == [Int64(n) + 1])
            try j.markDelivered([Int64(n) + 1])
            try j.commit()
            used.append(Int64(n) + 1)
        }
        #expect(try highWater(path).hasSuffix("\n0\n0"), "the table is empty on disk, so MAX(seq) cannot help")
        for round in 0..<3 {
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 1), logger: Logger(label: "test"))
            try j.append([reading(1_000 + round)])
            let seq = try #require(try j.readCommitted(after: 0, limit: 10).map(\.seq).first)
            #expect(seq == used.max()! + 1, "round \(round): \(seq) after \(used.max()!)")
            #expect(!used.contains(seq))
            used.append(seq)
            try j.markDelivered([seq])
            try j.commit()
        }
    }

    @Test("firstSeq is honoured by a new journal even when it is emptied before it is reopened, and ignored by an existing one")
    func firstSeqSurvivesAnEmptyTable() throws {
        let path = directory("first-seq-empty") + "/journal.sqlite"
        do { _ = try Journal(options: JournalOptions(path: path, firstSeq: 50_000), logger: Logger(label: "test")) }
        do {
            // Nothing appended yet: the first entry is still firstSeq after a reopen with another firstSeq.
            let j = try Journal(options: JournalOptions(path: path, commitEvery: 1, firstSeq: 1), logger: Logger(label: "test"))
            try j.append([reading(0), reading(1)])
            #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [50_000, 50_001])
            try j.markDelivered([50_000, 50_001])
            try j.commit()
        }
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1, firstSeq: 1), logger: Logger(label: "test"))
        try j.append([reading(2)])
        #expect(try j.readCommitted(after: 0, limit: 10).map(\.seq) == [50_002])
    }

    // MARK: max-age from the lowest seq

    func entry(_ machine: String, at ms: Int64) -> NewJournalEntry {
        NewJournalEntry(kind: .reading, machine: machine, mqttTopic: "plant/s1/\(machine)/v", receivedAt: ms, payload: Array("{}".utf8))
    }

    @Test("max-age drops exactly the old entries from the lowest seq up and stops at the first that is not older: a later entry stamped older (the clock stepped back) waits")
    func expiryWalksFromTheLowestSeq() throws {
        let path = directory("expiry-order") + "/journal.sqlite"
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 1000, commitInterval: .seconds(60), maxAge: .seconds(10)),
                            logger: Logger(label: "test"))
        // seq:          1          2          3          4          5 (young)   6 (clock back)  7
        try j.append([entry("m0", at: 1_000), entry("m1", at: 1_001), entry("m0", at: 1_002), entry("m2", at: 1_003),
                      entry("m1", at: 5_000), entry("m0", at: 900), entry("m2", at: 1_004)])
        try j.commit()
        #expect(try j.expire(nowMillis: 10_999).isEmpty, "cutoff 999: the lowest seq (1,000) is not older")
        #expect(j.stats.entries == 7 && j.drops.isEmpty)

        let dropped = try j.expire(nowMillis: 12_000)   // cutoff 2,000: 1-4 go, 5 stops the walk; 6 and 7 are older but after it
        #expect(dropped.map(\.machine) == ["m0", "m1", "m0", "m2"])
        #expect(dropped.allSatisfy { $0.reason == "max-age" })
        #expect(try j.readCommitted(after: 0, limit: 100).map(\.seq) == [5, 6, 7])
        #expect(j.drops == [JournalDrop(machine: "m0", reason: "max-age"): 2, JournalDrop(machine: "m1", reason: "max-age"): 1,
                            JournalDrop(machine: "m2", reason: "max-age"): 1])
        #expect(j.stats.entries == 3)
        #expect(j.stats.oldestReceivedAt == 5_000, "the lowest seq's stamp, not the smallest stamp")
        #expect(try j.expire(nowMillis: 12_000).isEmpty, "nothing more until seq 5 expires")

        let rest = try j.expire(nowMillis: 15_001)   // cutoff 5,001: 5, then 6 and 7
        #expect(rest.map(\.machine) == ["m1", "m0", "m2"])
        #expect(j.stats.entries == 0 && j.stats.oldestReceivedAt == nil)
        #expect(j.drops == [JournalDrop(machine: "m0", reason: "max-age"): 3, JournalDrop(machine: "m1", reason: "max-age"): 2,
                            JournalDrop(machine: "m2", reason: "max-age"): 2])
        try j.commit()
        let reopened = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
        #expect(reopened.stats.entries == 0 && reopened.stats.bytes == 0)
    }

    @Test("max-age over more than one batch of 1,000 and around delivered gaps: every old entry goes in one call, counted per machine, the young stay")
    func expiryOverBatchesAndGaps() throws {
        let path = directory("expiry-batches") + "/journal.sqlite"
        let j = try Journal(options: JournalOptions(path: path, commitEvery: 500, commitInterval: .seconds(60), maxAge: .seconds(60)),
                            logger: Logger(label: "test"))
        try j.append((0..<2_500).map { entry("m\($0 % 5)", at: 10_000 + Int64($0)) })     // seqs 1...2,500: old
        try j.append((0..<30).map { entry("m\($0 % 5)", at: 100_000 + Int64($0)) })       // seqs 2,501...2,530: young
        try j.commit()
        try j.markDelivered(Array(100...199) + [1_500, 2_000])   // gaps inside the old ones
        try j.commit()
        #expect(j.stats.entries == 2_530 - 102)

        let dropped = try j.expire(nowMillis: 100_000 + 59_000)   // cutoff 41,000
        #expect(dropped.count == 2_500 - 102)
        let oldSeqs = (1...2_500).filter { !(100...199).contains($0) && $0 != 1_500 && $0 != 2_000 }
        #expect(dropped.map(\.machine) == oldSeqs.map { "m\(($0 - 1) % 5)" }, "in seq order")
        #expect(try j.readCommitted(after: 0, limit: 100).map(\.seq) == Array(2_501...2_530))
        var perMachine: [JournalDrop: Int] = [:]
        for s in oldSeqs { perMachine[JournalDrop(machine: "m\((s - 1) % 5)", reason: "max-age"), default: 0] += 1 }
        #expect(j.drops == perMachine)
        #expect(j.stats.entries == 30)
        try j.commit()
        let reopened = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
        #expect(reopened.stats.entries == 30)
        #expect(try reopened.readCommitted(after: 0, limit: 100).map(\.seq) == Array(2_501...2_530))
    }
}

/// The migration to version 3 copies the entries table, so it needs room and time: on a disk
/// without the room it refuses to start and changes nothing (or uses the ballast), and a process
/// killed in the middle of the copy leaves the file at version 2 or 3, never between.
@Suite("Schema migration on a small disk and under a kill", .serialized)
struct SchemaMigrationFaultTests {
    /// A version-2 journal of `rows` readings of ~200 payload bytes, seqs from 1, written by SQLite.
    func writeVersion2(_ path: String, rows: Int) throws {
        _ = try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript("BEGIN;" + sys.argv[3] + ";INSERT INTO sqlite_sequence(name, seq) VALUES ('entries', 0);PRAGMA user_version=2;COMMIT;")
            c.execute("BEGIN")
            p = ('{"site":"s1","sensors":{"vibration":1.5},"pad":"' + "x" * 160 + '"}').encode()
            c.executemany("INSERT INTO entries(kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (0,?,?,?,?,NULL,?)",
                          (("m%d" % (i % 50), "plant/s1/m%d/v" % (i % 50), 1796000000000 + i, p, len(p) + 60) for i in range(int(sys.argv[2]))))
            c.execute("COMMIT")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
            """, path, "\(rows)", Version1Journal.version2Schema)
    }

    /// user_version, the entry count and seq range, and integrity, as SQLite reads the file.
    func look(_ path: String) throws -> String {
        try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            print(c.execute("PRAGMA user_version").fetchone()[0], *c.execute("SELECT count(*), min(seq), max(seq) FROM entries").fetchone(),
                  c.execute("PRAGMA integrity_check").fetchone()[0])
            """, path).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func fileBytes(_ path: String) -> Int64? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
    }

    /// Fills `disk` with a file until `free` bytes are left.
    func fill(_ disk: SmallDisk, leaving free: Int64) throws -> String {
        let filler = disk.path + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xAB, count: 4096)
        while disk.freeBytes > free + 4096 { guard write(fd, chunk, chunk.count) == chunk.count else { break } }
        return filler
    }

    @Test("without room for the copy the open fails with a disk-full error naming the migration and what it needs, and the file stays version 2; with room it migrates",
          .enabled(if: SmallDisk.isAvailable, Comment(rawValue: SmallDisk.skipMessage)))
    func noRoomToMigrateIsAClearErrorAndChangesNothing() throws {
        let disk = try SmallDisk(sizeBytes: 8 << 20, name: "migrate-full")
        defer { disk.unmount() }
        let path = disk.path + "/journal.sqlite"
        try writeVersion2(path, rows: 4_000)
        let table = fileBytes(path) ?? 0
        #expect(table > 800_000)
        let filler = try fill(disk, leaving: table)   // room for one copy of the table, not for the WAL and the file both
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
            Issue.record("the migration cannot fit and must refuse")
        } catch {
            #expect(error.kind == .diskFull, "\(error)")
            #expect(error.description.contains("the migration to schema version 3 copies the entries table (4000 entries"), "\(error)")
            #expect(error.description.hasSuffix("Free space on the state directory's file system and start again (or run the previous forewarn until the backlog is delivered)."), "\(error)")
            #expect(error.description.contains("nothing was changed, the file is still schema version 2"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "the file is left as it was")
        #expect(try look(path) == "2 4000 1 4000 ok")

        // The gateway says the same and exits 1, as for any journal disk-full error at start-up.
        let gateway = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                       arguments: ["gateway", "--state-dir", disk.path, "--http", "off", "--mqtt", "mqtt://127.0.0.1:1",
                                                   "--kafka", "127.0.0.1:1", "--set", "journal.ballast-bytes=0"],
                                       directory: TestEnvironment.temporaryDirectory("migrate-full-gateway"), name: "gateway")
        let status = gateway.waitForExit(timeout: 30)
        gateway.stop()
        #expect(status == 1, "\(gateway.stderr)")
        #expect(gateway.stderr.contains("cannot start the gateway: journal \(path): the disk is full (the migration to schema version 3 copies the entries table"), "\(gateway.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "the file is left as it was")

        try FileManager.default.removeItem(atPath: filler)
        let logs = LogRecords()
        let j = try Journal(options: JournalOptions(path: path), logger: logs.logger)
        #expect(logs.all.contains { $0.message.hasPrefix("journal migrated to schema version 3") })
        #expect(j.stats.entries == 4_000)
        #expect(try look(path) == "3 4000 1 4000 ok")
    }

    @Test("short of room, the migration deletes the ballast when that is enough, says so, and migrates",
          .enabled(if: SmallDisk.isAvailable, Comment(rawValue: SmallDisk.skipMessage)))
    func theBallastMakesRoomForTheMigration() throws {
        let disk = try SmallDisk(sizeBytes: 8 << 20, name: "migrate-ballast")
        defer { disk.unmount() }
        let path = disk.path + "/journal.sqlite"
        try writeVersion2(path, rows: 4_000)
        let table = fileBytes(path) ?? 0
        let ballast = BallastFile(path: BallastFile.path(besideJournal: path), bytes: 2 * table + (2 << 20))
        try ballast.create()
        _ = try fill(disk, leaving: table)
        let logs = LogRecords()
        let j = try Journal(options: JournalOptions(path: path), logger: logs.logger)
        let released = logs.all.filter { $0.message.hasPrefix("deleted the ballast file") }
        #expect(released.count == 1 && released.first?.level == .warning, "\(logs.all.map(\.message))")
        #expect(!ballast.isPresent())
        #expect(j.stats.entries == 4_000)
        #expect(try look(path) == "3 4000 1 4000 ok")
    }

    @Test("a gateway killed (SIGKILL) while it copies the table leaves the journal at version 2 or 3 with every entry, and the next open migrates it")
    func aKillDuringTheMigrationLeavesOneSchemaOrTheOther() throws {
        let dir = TestEnvironment.temporaryDirectory("migrate-kill")
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let path = state + "/journal.sqlite"
        try writeVersion2(path, rows: 200_000)
        let gateway = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                       arguments: ["gateway", "--state-dir", state, "--http", "off", "--mqtt", "mqtt://127.0.0.1:1",
                                                   "--kafka", "127.0.0.1:1", "--set", "journal.ballast-bytes=0"],
                                       directory: dir, name: "gateway")
        // The copy spills its pages into the WAL as it goes: a WAL of 4 MB means it is under way.
        let copying = waitUntil(timeout: 60, every: 0.001) { (fileBytes(path + "-wal") ?? 0) > 4 << 20 || !gateway.isRunning }
        gateway.signal(SIGKILL)
        #expect(gateway.waitForExit(timeout: 10) != nil)
        #expect(copying, "the migration never started: \(gateway.stderr)")
        let seen = try look(path)
        #expect(seen == "2 200000 1 200000 ok" || seen == "3 200000 1 200000 ok", "\(seen)")
        let logs = LogRecords()
        let j = try Journal(options: JournalOptions(path: path), logger: logs.logger)
        #expect(j.stats.entries == 200_000)
        #expect(try look(path) == "3 200000 1 200000 ok")
        try j.append([NewJournalEntry(kind: .reading, machine: "m1", mqttTopic: "t", receivedAt: 1, payload: [1])])
        try j.commit()
        #expect(try j.readCommitted(after: 199_999, limit: 10).map(\.seq) == [200_000, 200_001])
    }
}
