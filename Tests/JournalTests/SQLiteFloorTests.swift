import Foundation
import Journal
import Testing
import TestSupport

/// `forewarn bench journal`'s baseline: SQLite alone must do all of the work it is compared with,
/// or the journal/SQLite ratio it prints is meaningless.
struct SQLiteFloorTests {
    @Test("The floor inserts, reads back in order and deletes every row, and leaves no file behind")
    func floorDoesAllTheWork() throws {
        let dir = TestEnvironment.temporaryDirectory("sqlite-floor")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let payload = Array("{\"ts\":1,\"value\":2}".utf8)
        // 1,234 rows: groups, read batches and delete batches that do not divide it evenly.
        let t = try SQLiteFloor.measure(path: dir + "/floor.sqlite", rows: 1234, machine: "m001", topic: "factory/s1/m001/x",
                                        receivedAt: 1_796_000_000_000, payload: payload, group: 200,
                                        readBatch: 500, deleteBatch: 300)
        #expect(t.rowsRead == 1234)
        #expect(t.bytesRead == 1234 * payload.count)
        #expect(t.rowsLeft == 0)
        #expect(t.insert > .zero && t.commit > .zero && t.read > .zero && t.delete > .zero)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}

/// The command an operator or a reviewer runs: every operation printed against its baseline,
/// the completeness check in the output, and the scratch directory gone afterwards.
struct JournalBenchmarkCommandTests {
    @Test("forewarn bench journal prints each operation against SQLite alone, and removes its directory")
    func printsEveryOperationAgainstTheFloor() throws {
        let dir = TestEnvironment.temporaryDirectory("bench-journal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scratch = dir + "/scratch"
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                     arguments: ["bench", "journal", "--entries", "3000", "--repeats", "1", "--directory", scratch],
                                     directory: dir, name: "bench-journal")
        let status = child.waitForExit(timeout: 60)
        child.stop()
        #expect(status == 0, "stderr: \(child.stderr)")
        let out = child.stdout
        #expect(out.contains("entries: 3000,") && out.contains("[ok: every run read 3000 and left 0]"), "\(out)")
        for (op, floor) in [("append", "insert"), ("commit", "commit"), ("read", "select"), ("delete", "delete + commit"), ("all four", "all four")] {
            #expect(out.contains("\n\(op): ") && out.contains("SQLite alone (\(floor)): "), "\(op) missing in: \(out)")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch))
    }
}
