// The journal's four operations per entry, as the gateway uses them: append (inside the open
// group transaction), commit (a group of 200, `journal.synchronous=full`), read in order
// (2,000 at a time, into a reused batch, as the forwarder reads) and delete (runs of 8,192
// delivered seqs, as the delete thread hands them over). Against, in the same run, SQLite alone
// doing the same work on the same table with the same durability (`SQLiteFloor`), so
// the ratio is what the journal's own bookkeeping adds, and machine noise affects both alike.
import ArgumentParser
import ForewarnCore
import Foundation
import Journal
import Logging

enum JournalBenchmark {
    static let group = 200, readBatch = 2000, deleteBatch = 8192

    static func run(entries n: Int, repeats: Int, directory: String?) throws {
        let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("forewarn-bench-journal-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reading = Reading(site: "s1", machine: "m001", sensor: "vib_rms", ts: 1_796_000_000_000, value: 4.25, unit: "mm/s")
        let payload = reading.canonicalJSON()
        let entry = NewJournalEntry(kind: .reading, machine: "m001", mqttTopic: "factory/s1/m001/vib_rms",
                                    receivedAt: 1_796_000_000_000, payload: payload)

        // Alternating runs (SQLite alone, the journal, SQLite alone, ...); medians per operation.
        var floors: [SQLiteFloor.Timings] = [], journals: [SQLiteFloor.Timings] = []
        for _ in 0..<repeats {
            floors.append(try SQLiteFloor.measure(path: dir + "/floor.sqlite", rows: n, machine: entry.machine, topic: entry.mqttTopic,
                                                  receivedAt: entry.receivedAt, payload: payload, group: group,
                                                  readBatch: readBatch, deleteBatch: deleteBatch))
            journals.append(try measureJournal(path: dir + "/journal.sqlite", entries: n, entry: entry))
        }
        let complete = (floors + journals).allSatisfy { $0.rowsRead == n && $0.rowsLeft == 0 }

        print("entries: \(n), payload \(payload.count) bytes, \(group) per commit, synchronous=full, in \(dir); "
              + "median of \(repeats) alternating runs [\(complete ? "ok: every run read \(n) and left 0" : "INCOMPLETE")]")
        func row(_ name: String, _ floorName: String, _ op: (SQLiteFloor.Timings) -> Duration) {
            print(line(name, n, median(journals.map(op)), floor: median(floors.map(op)), floorName: floorName))
        }
        row("append", "insert") { $0.insert }
        row("commit", "commit") { $0.commit }
        row("read", "select") { $0.read }
        row("delete", "delete + commit") { $0.delete }
        row("all four", "all four") { $0.insert + $0.commit + $0.read + $0.delete }
        if !complete { throw ValidationError("a run did not read back every entry or left entries behind") }
    }

    private static func median(_ xs: [Duration]) -> Duration {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    private static func measureJournal(path: String, entries n: Int, entry: NewJournalEntry) throws -> SQLiteFloor.Timings {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        // Commits only when told, so append and commit are timed apart.
        let options = JournalOptions(path: path, commitEvery: Int.max, commitInterval: .seconds(3600), commitWhenIdle: false,
                                     maxBytes: 1 << 40)
        var logger = Logger(label: "forewarn.bench.journal")
        logger.logLevel = .warning
        let journal = try Journal(options: options, logger: logger)
        let clock = ContinuousClock()
        var t = SQLiteFloor.Timings()
        var appended = 0
        while appended < n {
            let start = clock.now
            for _ in 0..<min(group, n - appended) { try journal.append([entry]) }
            let inserted = clock.now
            try journal.commit()
            t.insert += inserted - start
            t.commit += clock.now - inserted
            appended += group
        }

        var batch = JournalBatch()
        var cursor: Int64 = 0
        let readStart = clock.now
        for _ in 0...(n / readBatch + 1) {
            try journal.readCommitted(after: cursor, limit: readBatch, into: &batch)
            if batch.rows.isEmpty { break }
            batch.forEach { row in
                cursor = row.seq
                t.bytesRead &+= row.payload.count
                return true
            }
            t.rowsRead += batch.rows.count
        }
        t.read = clock.now - readStart
        // The seqs handed to the deletes are collected outside the timed read, as the forwarder
        // collects them from delivery reports.
        let seqs = Array(stride(from: cursor - Int64(t.rowsRead) + 1, through: cursor, by: 1))

        let deleteStart = clock.now
        for i in stride(from: 0, to: seqs.count, by: deleteBatch) {
            try journal.markDelivered(Array(seqs[i..<min(i + deleteBatch, seqs.count)]))
        }
        try journal.commit()
        t.delete = clock.now - deleteStart
        t.rowsLeft = journal.stats.entries
        return t
    }

    private static func line(_ name: String, _ n: Int, _ d: Duration, floor: Duration, floorName: String) -> String {
        let s = d.inSeconds, f = floor.inSeconds
        return "\(name): \(Int(Double(n) / s)) entries/s, \(String(format: "%.0f", s / Double(n) * 1e9)) ns/entry; "
            + "SQLite alone (\(floorName)): \(String(format: "%.0f", f / Double(n) * 1e9)) ns/entry; journal/SQLite \(String(format: "%.2f", s / f))x"
    }
}
