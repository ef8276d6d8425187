import Foundation

/// SQLite's own cost for the journal's work, without the journal: the journal's table as schema
/// version 3 has it (the same columns and values per row, no index but the rowid; until version 2
/// both had one on received_ms; until version 3 both numbered rows with AUTOINCREMENT), each row
/// inserted with its seq and the high-water row updated once per commit, as the journal does,
/// with its durability (WAL, `synchronous=FULL`), plain
/// prepared statements and nothing else, rows inserted in transactions of
/// `group`, read back in order `readBatch` at a time and deleted in ranges of 1,024 with a commit
/// every `deleteBatch`. `forewarn bench journal` prints it beside the journal's figures, measured
/// in the same run, as the floor the journal's bookkeeping (size accounting, kept writes,
/// the lock) sits on.
public enum SQLiteFloor {
    public struct Timings: Sendable {
        public var insert: Duration = .zero
        public var commit: Duration = .zero
        public var read: Duration = .zero
        public var delete: Duration = .zero
        public var rowsRead = 0
        public var bytesRead = 0
        /// Rows in the table after the deletes (0 when the floor did all of its work).
        public var rowsLeft = -1
        public init() {}
    }

    public static func measure(path: String, rows: Int, machine: String, topic: String, receivedAt: Int64, payload: [UInt8],
                               group: Int, readBatch: Int, deleteBatch: Int) throws(JournalError) -> Timings {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        defer { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } }
        let conn = try SQLiteConnection(path: path)
        try conn.exec("PRAGMA journal_mode=WAL")
        try conn.exec("PRAGMA synchronous=FULL")
        try conn.exec("""
            \(Journal.entriesTable("entries"));
            \(Journal.highWaterTable);
            INSERT INTO seq_high_water(id, seq) VALUES (1, 0);
            """)
        let insert = try conn.prepare("INSERT INTO entries(seq, kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (?,0,?,?,?,?,NULL,?)")
        let highWater = try conn.prepare("UPDATE seq_high_water SET seq = ? WHERE id = 1")
        let select = try conn.prepare(
            "SELECT seq, kind, machine, mqtt_topic, received_ms, payload, reason FROM entries WHERE seq > ? ORDER BY seq LIMIT ?")
        let delete = try conn.prepare("DELETE FROM entries WHERE seq BETWEEN ? AND ?")
        let size = Int64(payload.count + machine.utf8.count + topic.utf8.count)
        let clock = ContinuousClock()
        var t = Timings()

        var seq: Int64 = 0
        while seq < Int64(rows) {
            let start = clock.now
            try conn.exec("BEGIN")
            for _ in 0..<min(group, rows - Int(seq)) {
                seq += 1
                insert.reset()
                insert.bind(1, seq)
                insert.bind(2, machine)
                insert.bind(3, topic)
                insert.bind(4, receivedAt)
                insert.bind(5, payload)
                insert.bind(6, size)
                _ = try insert.step()
            }
            let inserted = clock.now
            // Timed with the commit, where the journal writes it.
            highWater.reset()
            highWater.bind(1, seq)
            _ = try highWater.step()
            try conn.exec("COMMIT")
            t.insert += inserted - start
            t.commit += clock.now - inserted
        }

        let readStart = clock.now
        var cursor: Int64 = 0, bytes = 0
        for _ in 0...(rows / max(readBatch, 1) + 1) {
            select.reset()
            select.bind(1, cursor)
            select.bind(2, Int64(readBatch))
            var n = 0
            while try select.step() {
                cursor = select.int64(0)
                bytes &+= select.bytes(5).count
                n += 1
            }
            t.rowsRead += n
            if n == 0 { break }
        }
        t.read = clock.now - readStart
        t.bytesRead = bytes

        let deleteStart = clock.now
        var from: Int64 = 1
        while from <= Int64(rows) {
            try conn.exec("BEGIN")
            let end = min(from + Int64(deleteBatch), Int64(rows) + 1)
            var lo = from
            while lo < end {
                let hi = min(lo + 1023, end - 1)
                delete.reset()
                delete.bind(1, lo)
                delete.bind(2, hi)
                _ = try delete.step()
                lo = hi + 1
            }
            try conn.exec("COMMIT")
            from = end
        }
        t.delete = clock.now - deleteStart
        let count = try conn.prepare("SELECT count(*) FROM entries")
        if try count.step() { t.rowsLeft = Int(count.int64(0)) }
        return t
    }
}
