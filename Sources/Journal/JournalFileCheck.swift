// JournalFileCheck decides, from the bytes of a journal found at start-up, whether it is safe to
// open: a database file and WAL that SQLite would read completely, and a schema that is
// forewarn's. It is pure (bytes in, a verdict out); `Journal.init` does the reading and refuses
// to start on any damage, so the gateway never starts empty over a journal that held readings.
//
// Why not `PRAGMA quick_check`: it reads every page (0.3-0.6 s for a 1M-entry journal here, up to
// 1.8 s on a busy machine, on top of the count at open),
// and it cannot see a damaged WAL at all: SQLite ends a WAL at its first frame with a wrong
// checksum and silently drops every commit after it. So the check here is the header, the WAL's
// checksum chain and the schema; the pages themselves are checked by the scan that counts the
// entries at open (it reads every page of the entries table).

/// What is wrong with a journal file: the kind (for tests and metrics) and a sentence naming it.
public struct JournalDamage: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case notSQLite = "not-sqlite"
        case truncated
        case damagedHeader = "damaged-header"
        case damagedPage = "damaged-page"
        case damagedWAL = "damaged-wal"
        case foreign
        case newerSchema = "newer-schema"
    }
    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { detail }
}

/// What the WAL holds, as SQLite would read it.
public struct WALReport: Sendable, Equatable {
    /// Frames SQLite would replay (up to and including the last valid commit frame).
    public var committedFrames = 0
    public var commits = 0
    public var damage: JournalDamage?

    public init(committedFrames: Int = 0, commits: Int = 0, damage: JournalDamage? = nil) {
        self.committedFrames = committedFrames
        self.commits = commits
        self.damage = damage
    }
}

/// What the schema says about the file.
public enum JournalSchemaVerdict: Sendable, Equatable {
    /// No tables at all: a new database, safe to set up.
    case fresh
    /// forewarn's tables, at a version this build understands.
    case journal
    case damage(JournalDamage)
}

public enum JournalFileCheck {
    static let magic = Array("SQLite format 3\u{0}".utf8)
    static let walMagicLittleEndian: UInt32 = 0x377f_0682
    static let walMagicBigEndian: UInt32 = 0x377f_0683

    /// The database file's first 100 bytes (or fewer, if it is shorter) and its size.
    /// `walHasCommits`: the WAL holds committed frames, so the file may legitimately be shorter
    /// than its header says (a checkpoint that was interrupted; the WAL completes it).
    /// Returns the page size, or the damage.
    public static func header(_ bytes: [UInt8], fileSize: Int64, walHasCommits: Bool) -> Result<Int, JournalDamage> {
        if fileSize == 0 {
            return .failure(JournalDamage(.truncated, "the file is empty (0 bytes), and forewarn never leaves an empty journal behind (a new one is set up under another name and renamed into place), so it was truncated to nothing"))
        }
        if fileSize < 100 || bytes.count < 100 {
            return .failure(JournalDamage(.truncated, "the file has \(fileSize) bytes, fewer than SQLite's 100-byte header: it was truncated"))
        }
        if Array(bytes[0..<16]) != magic {
            return .failure(JournalDamage(.notSQLite, "it is not an SQLite database: it starts with \(printable(bytes[0..<16])) instead of \"SQLite format 3\""))
        }
        let raw = Int(bytes[16]) << 8 | Int(bytes[17])
        let pageSize = raw == 1 ? 65536 : raw
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            return .failure(JournalDamage(.damagedHeader, "its header is damaged: page size \(raw) is not a power of two from 512 to 65536"))
        }
        if fileSize % Int64(pageSize) != 0 {
            return .failure(JournalDamage(.truncated, "it was truncated: \(fileSize) bytes is not a whole number of \(pageSize)-byte pages"))
        }
        let changeCounter = be32(bytes, 24), validFor = be32(bytes, 92), pages = Int64(be32(bytes, 28))
        if !walHasCommits, pages > 0, changeCounter == validFor, fileSize < pages * Int64(pageSize) {
            return .failure(JournalDamage(.truncated, "it was truncated: its header says \(pages) pages of \(pageSize) bytes, the file has \(fileSize / Int64(pageSize))"))
        }
        return .success(pageSize)
    }

    /// The whole WAL file. SQLite replays frames while their salts match the header and their
    /// checksums chain; it stops, silently, at the first one that does not. A bad frame with a
    /// valid frame of the same WAL after it is damage (SQLite would drop every later commit). A bad
    /// frame at the end is what a crash during a write leaves, and is no damage: nothing after it.
    public static func wal(_ bytes: [UInt8], databasePageSize: Int?) -> WALReport {
        var report = WALReport()
        guard bytes.count >= 32 else { return report }   // no WAL, or a header never completed (written and synced before any frame)
        let magic = be32(bytes, 0)
        guard magic == walMagicLittleEndian || magic == walMagicBigEndian else {
            report.damage = JournalDamage(.damagedWAL, "its WAL (\(bytes.count) bytes) is damaged: it does not start with SQLite's WAL magic number, so SQLite would ignore all of it")
            return report
        }
        let bigEndian = magic == walMagicBigEndian
        let pageSize = Int(be32(bytes, 8))
        var sum = checksum(bytes[0..<24], bigEndian: bigEndian, start: (0, 0))
        guard sum == (be32(bytes, 24), be32(bytes, 28)), be32(bytes, 4) == 3_007_000,
              pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            let frames = pageSize > 0 ? (bytes.count - 32) / (24 + max(pageSize, 512)) : 0
            report.damage = JournalDamage(.damagedWAL, "its WAL header is damaged (checksum, version or page size), so SQLite would ignore all of the WAL: \(bytes.count) bytes, about \(frames) frames")
            return report
        }
        if let db = databasePageSize, db != pageSize {
            report.damage = JournalDamage(.damagedWAL, "its WAL is damaged: page size \(pageSize) differs from the database's \(db)")
            return report
        }
        let salts = (be32(bytes, 16), be32(bytes, 20))
        let frameSize = 24 + pageSize
        var frame = 0, offset = 32
        while offset + frameSize <= bytes.count {
            let saltsMatch = (be32(bytes, offset + 8), be32(bytes, offset + 12)) == salts
            if saltsMatch { sum = frameChecksum(bytes, offset, pageSize, bigEndian, sum) }
            if !saltsMatch || sum != (be32(bytes, offset + 16), be32(bytes, offset + 20)) {
                if let later = laterValidFrame(bytes, after: offset, frameSize: frameSize, pageSize: pageSize, bigEndian: bigEndian, salts: salts) {
                    report.damage = JournalDamage(.damagedWAL, "its WAL is damaged: frame \(frame) (page \(be32(bytes, offset))) fails its checksum while frame \(later.frame) after it is intact; SQLite would stop at the damaged frame and drop \(later.commits) committed transaction(s) after it")
                }
                return report
            }
            frame += 1
            if be32(bytes, offset + 4) != 0 {   // a commit frame: the database size after the commit
                report.commits += 1
                report.committedFrames = frame
            }
            offset += frameSize
        }
        return report
    }

    /// The tables and indexes of a journal of schema `version`. Version 1 (and 0, the same
    /// tables) had the index `entries_received` on `received_ms`, for `journal.max-age`; version
    /// 2 dropped it (max-age walks from the lowest seq); version 3 numbers entries without
    /// AUTOINCREMENT and keeps the highest seq in `seq_high_water`. `Journal` migrates 0-2 on open.
    public static func objects(version: Int64) -> Set<String> {
        switch version {
        case ...1: ["entries", "entries_received", "recent_messages"]
        case 2: ["entries", "recent_messages"]
        default: ["entries", "recent_messages", "seq_high_water"]
        }
    }

    /// The schema: the names of the tables and indexes (sqlite_* excluded), the columns of
    /// `entries` if it exists, and `user_version`. A version newer than `understood` is refused
    /// as newer whatever its tables (a later version may change them), once it holds `entries`.
    public static func schema(objects: Set<String>, entriesColumns: [String], userVersion: Int64, understood: Int64) -> JournalSchemaVerdict {
        let expected = Self.objects(version: userVersion)
        let columns = ["seq", "kind", "machine", "mqtt_topic", "received_ms", "payload", "reason", "size"]
        if objects.isEmpty && userVersion == 0 { return .fresh }
        if userVersion > understood && objects.contains("entries") {
            return .damage(JournalDamage(.newerSchema, "schema version \(userVersion) is newer than this forewarn understands (\(understood)); refusing to touch it"))
        }
        if objects != expected || entriesColumns != columns || userVersion > understood {
            let holds = objects.isEmpty ? "no tables" : objects.sorted().joined(separator: ", ")
            return .damage(JournalDamage(.foreign, "it is an SQLite database but not a forewarn journal: it holds \(holds)\(objects.contains("entries") && entriesColumns != columns ? " (entries has columns \(entriesColumns.joined(separator: ",")))" : ""), user_version \(userVersion); a journal holds entries and recent_messages (and the index entries_received up to version 1, the table seq_high_water from version 3)"))
        }
        return .journal
    }

    // MARK: helpers

    private static func laterValidFrame(_ bytes: [UInt8], after offset: Int, frameSize: Int, pageSize: Int, bigEndian: Bool,
                                        salts: (UInt32, UInt32)) -> (frame: Int, commits: Int)? {
        var found: Int?
        var commits = 0
        var o = offset + frameSize
        while o + frameSize <= bytes.count {
            if (be32(bytes, o + 8), be32(bytes, o + 12)) == salts {
                let previous = (be32(bytes, o - frameSize + 16), be32(bytes, o - frameSize + 20))
                if found == nil, frameChecksum(bytes, o, pageSize, bigEndian, previous) == (be32(bytes, o + 16), be32(bytes, o + 20)) {
                    found = (o - 32) / frameSize
                }
                if be32(bytes, o + 4) != 0 { commits += 1 }
            }
            o += frameSize
        }
        return found.map { ($0, commits) }
    }

    private static func frameChecksum(_ bytes: [UInt8], _ offset: Int, _ pageSize: Int, _ bigEndian: Bool, _ start: (UInt32, UInt32)) -> (UInt32, UInt32) {
        let s = checksum(bytes[offset..<offset + 8], bigEndian: bigEndian, start: start)
        return checksum(bytes[offset + 24..<offset + 24 + pageSize], bigEndian: bigEndian, start: s)
    }

    /// SQLite's WAL checksum (walChecksumBytes): pairs of 32-bit words, in the byte order the magic says.
    static func checksum(_ data: ArraySlice<UInt8>, bigEndian: Bool, start: (UInt32, UInt32)) -> (UInt32, UInt32) {
        var (s1, s2) = start
        var i = data.startIndex
        while i + 8 <= data.endIndex {
            let a = word(data, i, bigEndian), b = word(data, i + 4, bigEndian)
            s1 = s1 &+ a &+ s2
            s2 = s2 &+ b &+ s1
            i += 8
        }
        return (s1, s2)
    }

    private static func word(_ d: ArraySlice<UInt8>, _ i: Int, _ bigEndian: Bool) -> UInt32 {
        let b0 = UInt32(d[i]), b1 = UInt32(d[i + 1]), b2 = UInt32(d[i + 2]), b3 = UInt32(d[i + 3])
        return bigEndian ? b0 << 24 | b1 << 16 | b2 << 8 | b3 : b3 << 24 | b2 << 16 | b1 << 8 | b0
    }

    static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static func printable(_ b: ArraySlice<UInt8>) -> String {
        "\"" + String(b.map { (32..<127).contains($0) ? Character(UnicodeScalar($0)) : "." }) + "\""
    }
}
