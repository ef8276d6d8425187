// Journals damaged the ways a disk, a crash or an operator damages them between two runs, for the
// start-up checks: each starts as a real journal with readings in it, written by `Journal`.
import Foundation
import Journal
import Logging

public enum JournalDamageCase: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Cut at an arbitrary byte.
    case truncated
    /// Cut at a page boundary, to half its pages.
    case truncatedAtAPage = "truncated-at-a-page"
    /// Cut to 0 bytes.
    case emptied
    /// One page in the middle overwritten with garbage.
    case damagedPage = "damaged-page"
    /// The WAL a killed gateway leaves, with a frame in its middle damaged.
    case damagedWAL = "damaged-wal"
    /// Another program's SQLite database.
    case foreignSQLite = "foreign-sqlite"
    /// Not SQLite at all.
    case notSQLite = "not-sqlite"

    public var description: String { rawValue }

    /// Text the refusal must contain (besides the path).
    public var expectedProblem: String {
        switch self {
        case .truncated: return "was truncated"
        case .truncatedAtAPage: return "was truncated: its header says"
        case .emptied: return "the file is empty (0 bytes)"
        case .damagedPage: return "a page of it is damaged"
        case .damagedWAL: return "its WAL is damaged: frame"
        case .foreignSQLite: return "not a forewarn journal: it holds"
        case .notSQLite: return "it is not an SQLite database"
        }
    }
}

public enum DamagedJournal {
    /// Writes `entries` readings in commits of 100 into `directory/journal.sqlite`. With `leaveWAL`
    /// the files are copied while the journal is open and nothing was checkpointed, as a SIGKILL
    /// leaves them (the database file and a WAL holding the commits); otherwise the journal is
    /// checkpointed and closed. Returns the journal's path.
    @discardableResult
    public static func write(in directory: String, entries: Int, leaveWAL: Bool = false) throws -> String {
        let path = directory + "/journal.sqlite"
        let scratch = leaveWAL ? directory + "/writing.sqlite" : path
        let journal = try Journal(options: JournalOptions(path: scratch, commitEvery: 100, commitInterval: .seconds(60)),
                                  logger: Logger(label: "test.damaged-journal"))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for i in 0..<entries {
            let machine = "m\(i % 10)"
            let payload = Array(#"{"machine":"\#(machine)","ts":\#(now + Int64(i)),"sensors":{"vibration":1.5,"temperature":60.25}}"#.utf8)
            try journal.append([NewJournalEntry(kind: .reading, machine: machine, mqttTopic: "plant/s1/\(machine)/telemetry",
                                                receivedAt: now + Int64(i), payload: payload)])
        }
        try journal.commit()
        if leaveWAL {
            for suffix in ["", "-wal"] {
                try FileManager.default.copyItem(atPath: scratch + suffix, toPath: path + suffix)
            }
        } else {
            _ = journal.checkpoint()
        }
        return path
    }

    /// A journal of `entries` readings in `directory`, damaged as `damage` says. Returns its path.
    @discardableResult
    public static func make(_ damage: JournalDamageCase, in directory: String, entries: Int = 2000) throws -> String {
        let path = directory + "/journal.sqlite"
        switch damage {
        case .foreignSQLite:
            try runPython("""
                import sqlite3, sys
                c = sqlite3.connect(sys.argv[1])
                c.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
                c.executemany("INSERT INTO orders(customer, total) VALUES (?, ?)", [("c%d" % i, i * 1.5) for i in range(100)])
                c.commit()
                """, path)
            return path
        case .notSQLite:
            try Data(String(repeating: "timestamp,machine,vibration\n2026-12-01T10:00:00Z,m1,1.5\n", count: 200).utf8)
                .write(to: URL(fileURLWithPath: path))
            return path
        case .damagedWAL:
            try write(in: directory, entries: entries, leaveWAL: true)
            try damageWALFrame(path + "-wal")
            return path
        default:
            break
        }
        try write(in: directory, entries: entries)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        switch damage {
        case .truncated: try handle.truncate(atOffset: size / 2 + 1234)
        case .truncatedAtAPage: try handle.truncate(atOffset: size / 4096 / 2 * 4096)
        case .emptied: try handle.truncate(atOffset: 0)
        case .damagedPage:
            let page = size / 4096 / 2
            try handle.seek(toOffset: page * 4096)
            handle.write(Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }))
        default: break
        }
        return path
    }

    /// Flips bytes in the page data of a frame in the middle of the WAL (frame count / 2).
    public static func damageWALFrame(_ walPath: String) throws {
        var wal = try [UInt8](Data(contentsOf: URL(fileURLWithPath: walPath)))
        let pageSize = Int(wal[8]) << 24 | Int(wal[9]) << 16 | Int(wal[10]) << 8 | Int(wal[11])
        let frames = (wal.count - 32) / (24 + pageSize)
        precondition(frames >= 4, "the WAL has \(frames) frames; the test needs a few")
        let offset = 32 + (frames / 2) * (24 + pageSize) + 24 + 100
        for i in 0..<16 { wal[offset + i] ^= 0x5A }
        try Data(wal).write(to: URL(fileURLWithPath: walPath))
    }

    static func runPython(_ script: String, _ args: String...) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("python3 exited \(p.terminationStatus)") }
    }
}
