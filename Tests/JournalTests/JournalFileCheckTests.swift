// The start-up checks of a journal found between runs: the pure decisions of `JournalFileCheck`
// on synthetic headers and schemas, its WAL reading on real WALs that SQLite wrote, and
// `Journal.init` refusing each damaged file without touching it.
import Foundation
import Journal
import Logging
import TestSupport
import Testing

struct JournalFileCheckTests {
    /// An SQLite header: page size, change counter, in-header page count, version-valid-for.
    func header(pageSize: Int = 4096, pages: UInt32, counter: UInt32 = 7, validFor: UInt32 = 7) -> [UInt8] {
        var h = Array("SQLite format 3\u{0}".utf8) + [UInt8](repeating: 0, count: 84)
        h[16] = UInt8(pageSize == 65536 ? 0 : pageSize >> 8); h[17] = UInt8(pageSize == 65536 ? 1 : pageSize & 0xFF)
        func put(_ v: UInt32, _ at: Int) { for i in 0..<4 { h[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * i)) } }
        put(counter, 24); put(pages, 28); put(validFor, 92)
        return h
    }

    func damage(_ r: Result<Int, JournalDamage>) -> JournalDamage? {
        if case let .failure(d) = r { return d }
        return nil
    }

    @Test func aSoundHeaderGivesThePageSize() {
        #expect(JournalFileCheck.header(header(pages: 10), fileSize: 40960, walHasCommits: false) == .success(4096))
        #expect(JournalFileCheck.header(header(pageSize: 65536, pages: 2), fileSize: 131072, walHasCommits: false) == .success(65536))
    }

    @Test func anEmptyOrShortFileIsTruncated() {
        #expect(damage(JournalFileCheck.header([], fileSize: 0, walHasCommits: false))?.kind == .truncated)
        #expect(damage(JournalFileCheck.header([], fileSize: 0, walHasCommits: false))?.detail.contains("empty (0 bytes)") == true)
        let short = Array(header(pages: 1)[0..<60])
        #expect(damage(JournalFileCheck.header(short, fileSize: 60, walHasCommits: false))?.detail.contains("fewer than SQLite's 100-byte header") == true)
    }

    @Test func aFileCutInsideAPageIsTruncated() {
        let d = damage(JournalFileCheck.header(header(pages: 10), fileSize: 40960 - 1000, walHasCommits: false))
        #expect(d?.kind == .truncated)
        #expect(d?.detail == "it was truncated: 39960 bytes is not a whole number of 4096-byte pages")
    }

    @Test("a file with fewer pages than its header says is truncated, unless a WAL with commits completes it")
    func fewerPagesThanTheHeaderSays() {
        let d = damage(JournalFileCheck.header(header(pages: 10), fileSize: 4 * 4096, walHasCommits: false))
        #expect(d?.detail == "it was truncated: its header says 10 pages of 4096 bytes, the file has 4")
        #expect(JournalFileCheck.header(header(pages: 10), fileSize: 4 * 4096, walHasCommits: true) == .success(4096))
        // An old writer that did not keep the in-header size valid: SQLite uses the file's size.
        #expect(JournalFileCheck.header(header(pages: 10, counter: 8, validFor: 7), fileSize: 4 * 4096, walHasCommits: false) == .success(4096))
    }

    @Test func otherBytesAreNotSQLiteAndABadPageSizeIsADamagedHeader() {
        let csv = Array("timestamp,machine,vibration\n2026-12-01T10:00:00Z,m1,1.5\n".utf8) + [UInt8](repeating: 0x41, count: 100)
        let d = damage(JournalFileCheck.header(csv, fileSize: Int64(csv.count), walHasCommits: false))
        #expect(d?.kind == .notSQLite)
        #expect(d?.detail == #"it is not an SQLite database: it starts with "timestamp,machin" instead of "SQLite format 3""#)
        #expect(damage(JournalFileCheck.header(header(pageSize: 1000, pages: 1), fileSize: 1000, walHasCommits: false))?.kind == .damagedHeader)
    }

    @Test("the schema verdict: versions 0 and 1 with the received_ms index, 2 without it; anything else is foreign, a newer version is newer")
    func theSchemaVerdict() {
        let v1: Set<String> = ["entries", "entries_received", "recent_messages"]
        let v2: Set<String> = ["entries", "recent_messages"]
        #expect(JournalFileCheck.objects(version: 1) == v1 && JournalFileCheck.objects(version: 0) == v1 && JournalFileCheck.objects(version: 2) == v2)
        let columns = ["seq", "kind", "machine", "mqtt_topic", "received_ms", "payload", "reason", "size"]
        #expect(JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 2, understood: 2) == .journal)
        #expect(JournalFileCheck.schema(objects: v1, entriesColumns: columns, userVersion: 1, understood: 2) == .journal, "migrated on open")
        #expect(JournalFileCheck.schema(objects: v1, entriesColumns: columns, userVersion: 0, understood: 2) == .journal)
        #expect(JournalFileCheck.schema(objects: [], entriesColumns: [], userVersion: 0, understood: 2) == .fresh)
        guard case let .damage(foreign) = JournalFileCheck.schema(objects: ["orders"], entriesColumns: [], userVersion: 0, understood: 2) else {
            Issue.record("a foreign schema must be refused"); return
        }
        #expect(foreign.kind == .foreign)
        #expect(foreign.detail.contains("it holds orders, user_version 0"))
        guard case let .damage(extra) = JournalFileCheck.schema(objects: v2.union(["orders"]), entriesColumns: columns, userVersion: 2, understood: 2),
              case let .damage(columnsDiffer) = JournalFileCheck.schema(objects: v2, entriesColumns: ["seq", "body"], userVersion: 2, understood: 2),
              case let .damage(v1WithoutIndex) = JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 1, understood: 2),
              case let .damage(v2WithIndex) = JournalFileCheck.schema(objects: v1, entriesColumns: columns, userVersion: 2, understood: 2),
              case let .damage(newer) = JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 3, understood: 2),
              case let .damage(newerOtherTables) = JournalFileCheck.schema(objects: v2.union(["acks"]), entriesColumns: columns, userVersion: 3, understood: 2),
              case let .damage(v2ForAnOldBuild) = JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 2, understood: 1) else {
            Issue.record("an extra table, other columns, the other version's tables and a newer version must be refused"); return
        }
        #expect(extra.kind == .foreign)
        #expect(columnsDiffer.detail.contains("entries has columns seq,body"))
        #expect(v1WithoutIndex.kind == .foreign && v1WithoutIndex.detail.contains("it holds entries, recent_messages, user_version 1"))
        #expect(v2WithIndex.kind == .foreign)
        #expect(newer.kind == .newerSchema && newer.detail == "schema version 3 is newer than this forewarn understands (2); refusing to touch it")
        #expect(newerOtherTables.kind == .newerSchema)
        #expect(v2ForAnOldBuild.kind == .newerSchema)
    }

    @Test("version 3 adds seq_high_water: accepted by this build, each older version's tables are accepted at their own version only, a version-2 build refuses it as newer, a version 4 is newer")
    func theSchemaVerdictForVersion3() {
        let v1: Set<String> = ["entries", "entries_received", "recent_messages"]
        let v2: Set<String> = ["entries", "recent_messages"]
        let v3: Set<String> = ["entries", "recent_messages", "seq_high_water"]
        #expect(JournalFileCheck.objects(version: 3) == v3)
        let columns = ["seq", "kind", "machine", "mqtt_topic", "received_ms", "payload", "reason", "size"]
        #expect(JournalFileCheck.schema(objects: v3, entriesColumns: columns, userVersion: 3, understood: 3) == .journal)
        #expect(JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 2, understood: 3) == .journal, "migrated on open")
        #expect(JournalFileCheck.schema(objects: v1, entriesColumns: columns, userVersion: 1, understood: 3) == .journal, "migrated on open")
        guard case let .damage(v3WithoutHighWater) = JournalFileCheck.schema(objects: v2, entriesColumns: columns, userVersion: 3, understood: 3),
              case let .damage(v2WithHighWater) = JournalFileCheck.schema(objects: v3, entriesColumns: columns, userVersion: 2, understood: 3),
              case let .damage(v3ForAVersion2Build) = JournalFileCheck.schema(objects: v3, entriesColumns: columns, userVersion: 3, understood: 2),
              case let .damage(newer) = JournalFileCheck.schema(objects: v3, entriesColumns: columns, userVersion: 4, understood: 3) else {
            Issue.record("the wrong tables for a version, and a version newer than the build, must be refused"); return
        }
        #expect(v3WithoutHighWater.kind == .foreign && v3WithoutHighWater.detail.contains("the table seq_high_water from version 3"))
        #expect(v2WithHighWater.kind == .foreign)
        #expect(v3ForAVersion2Build.kind == .newerSchema && v3ForAVersion2Build.detail == "schema version 3 is newer than this forewarn understands (2); refusing to touch it")
        #expect(newer.kind == .newerSchema && newer.detail == "schema version 4 is newer than this forewarn understands (3); refusing to touch it")
    }

    @Test func walHeadersThatAreNotSQLitesAreDamage() {
        #expect(JournalFileCheck.wal([], databasePageSize: 4096) == WALReport())
        #expect(JournalFileCheck.wal([UInt8](repeating: 0, count: 20), databasePageSize: 4096).damage == nil, "a header never completed")
        let garbage = [UInt8](repeating: 0xAB, count: 32 + 24 + 4096)
        #expect(JournalFileCheck.wal(garbage, databasePageSize: 4096).damage?.kind == .damagedWAL)
    }

    // MARK: real WALs, as SQLite writes them

    func killedJournal(entries: Int = 2000) throws -> (dir: String, path: String, wal: [UInt8]) {
        let dir = TestEnvironment.temporaryDirectory("wal")
        let path = try DamagedJournal.write(in: dir, entries: entries, leaveWAL: true)
        return (dir, path, try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "-wal"))))
    }

    @Test("the WAL a killed journal leaves reads as sound, with its commits, and opens with every entry")
    func aKilledJournalsWALIsSound() throws {
        let (_, path, wal) = try killedJournal()
        let report = JournalFileCheck.wal(wal, databasePageSize: 4096)
        #expect(report.damage == nil)
        #expect(report.commits == 20, "2000 entries in commits of 100")
        #expect(report.committedFrames == (wal.count - 32) / (24 + 4096))
        let j = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
        #expect(j.stats.entries == 2000)
    }

    @Test("a damaged frame in the middle of the WAL is damage: SQLite would drop the commits after it")
    func aDamagedMiddleFrame() throws {
        let (_, path, _) = try killedJournal()
        try DamagedJournal.damageWALFrame(path + "-wal")
        let report = JournalFileCheck.wal(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "-wal"))), databasePageSize: 4096)
        #expect(report.damage?.kind == .damagedWAL)
        #expect(report.damage?.detail.contains("fails its checksum while frame") == true, "\(String(describing: report.damage))")
        #expect(report.commits > 0 && report.commits < 20)
    }

    @Test("a damaged last frame looks like a write torn by a crash: no damage, SQLite drops that last transaction")
    func aTornTail() throws {
        let (_, path, wal) = try killedJournal()
        var torn = wal
        torn[torn.count - 100] ^= 0xFF
        try Data(torn).write(to: URL(fileURLWithPath: path + "-wal"))
        let report = JournalFileCheck.wal(torn, databasePageSize: 4096)
        #expect(report.damage == nil)
        #expect(report.commits == 19)
        let j = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
        #expect(j.stats.entries == 1900, "the last commit group of 100 is what a torn write can cost")
    }

    // MARK: Journal.init refuses every damaged file and leaves it as it was

    @Test("Journal.init refuses a damaged or foreign journal with its path and problem, and leaves the files as they were",
          arguments: JournalDamageCase.allCases)
    func journalRefuses(_ damage: JournalDamageCase) throws {
        let dir = TestEnvironment.temporaryDirectory("damaged-\(damage)")
        let path = try DamagedJournal.make(damage, in: dir)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map { ($0, try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
        do {
            _ = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
            Issue.record("a \(damage) journal must not open")
        } catch {
            #expect(error.kind == (damage == .foreignSQLite ? .schema : .corrupt))
            #expect(error.description.hasPrefix("journal \(path) is "), "\(error)")
            #expect(error.description.contains(damage.expectedProblem), "\(error)")
        }
        let after = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map { ($0, try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
        #expect(after.map(\.0) == before.map(\.0), "no file added or removed")
        #expect(after.map(\.1) == before.map(\.1), "every file left byte for byte")
    }

    @Test("a new journal is set up under another name and renamed into place: no empty or half-made journal is left at the path")
    func newJournalIsRenamedIntoPlace() throws {
        let dir = TestEnvironment.temporaryDirectory("new-journal")
        let path = dir + "/journal.sqlite"
        do { _ = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["journal.sqlite"])
        let j = try Journal(options: JournalOptions(path: path), logger: Logger(label: "test"))
        #expect(j.stats.entries == 0)
    }
}
