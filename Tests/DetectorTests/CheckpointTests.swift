// Detector checkpoints (issue 9, item 4): a checkpoint that cannot be saved is a clear error
// and its offsets are never committed; a checkpoint left from an earlier assignment of the
// partition (A → B → A) is recognised by its offset and not restored.
import Foundation
import Kafka
import Testing
import TestSupport
@testable import Detector

@Suite struct CheckpointMatchTests {
    @Test func aCheckpointIsUsedOnlyWhereTheGroupIs() {
        #expect(CheckpointMatch.compare(checkpointOffset: 400, committed: 400) == .current)
        #expect(CheckpointMatch.compare(checkpointOffset: 400, committed: 390) == .ahead)
        guard case let .stale(reason) = CheckpointMatch.compare(checkpointOffset: 400, committed: 800) else {
            Issue.record("a checkpoint behind the group is stale"); return
        }
        #expect(reason.contains("800") && reason.contains("400"))
        #expect(CheckpointMatch.compare(checkpointOffset: 400, committed: nil) != .current)
        #expect(CheckpointMatch.compare(checkpointOffset: 400, committed: -1001) != .current)
        #expect(CheckpointMatch.compare(checkpointOffset: nil, committed: 400) != .current)
    }

    @Test func aCheckpointIsWrittenWhole() throws {
        let dir = TestEnvironment.temporaryDirectory("checkpoint-file")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p-0.json"
        try CheckpointFile.write(Data("old".utf8), to: path)
        try CheckpointFile.write(Data("new".utf8), to: path)
        #expect(FileManager.default.contents(atPath: path) == Data("new".utf8))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        #expect(throws: CheckpointError.self) { try CheckpointFile.write(Data(), to: dir + "/no-such-dir/p-0.json") }
    }
}

@Suite("Detector checkpoints with dev-kafka", .serialized)
struct DetectorCheckpointTests {
    func startDetector(dir: String, kafka: DevKafka, state: String, name: String) throws -> (ChildProcess, Int) {
        let port = freePort()
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                     arguments: ["detector", "--kafka", kafka.bootstrap, "--models", repoRoot + "/models", "--state-dir", state,
                                                 "--http", "127.0.0.1:\(port)", "--set", "checkpoint-interval=500ms"],
                                     directory: dir, name: name)
        guard waitForPort(port) else { throw TestFailure("detector did not start: \(child.stderr)") }
        return (child, port)
    }

    func committed(_ kafka: DevKafka) -> Int64? {
        guard let c = try? KafkaConsumer(bootstrap: kafka.bootstrap, groupID: "forewarn-detector", logger: TestEnvironment.logger) else { return nil }
        defer { c.close() }
        return (try? c.committed([TopicPartition(topic: "forewarn.readings", partition: 0)], timeout: .seconds(5)))?.values.first
    }

    func waitForCommitted(_ kafka: DevKafka, _ offset: Int64, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if committed(kafka) == offset { return true }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return false
    }

    func run(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    @Test("a read-only state directory: a clear error naming the file, /healthz 503, and no offset committed past the last saved checkpoint",
          .enabled(if: getuid() == 0, "needs root to mount a read-only tmpfs"))
    func readOnlyStateDirectory() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-readonly")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try #require(run("mount -t tmpfs -o size=2m tmpfs '\(state)'") == 0)
        defer { _ = run("umount -l '\(state)'") }
        let kafka = try DevKafka(directory: dir, partitions: 1)
        defer { kafka.stop() }
        let (detector, port) = try startDetector(dir: dir, kafka: kafka, state: state, name: "detector")
        defer { detector.stop() }

        try produce(pumpReadings(machine: "p1", from: 0, count: 100), bootstrap: kafka.bootstrap, firstSeq: 1)
        try #require(waitForCommitted(kafka, 400), "the first 400 readings are checkpointed and committed: \(detector.stderr)")
        try #require(run("mount -o remount,ro '\(state)'") == 0)
        try produce(pumpReadings(machine: "p1", from: 100, count: 100), bootstrap: kafka.bootstrap, firstSeq: 401)

        let reported = waitUntil(timeout: 30) { detector.stderr.contains("Read-only file system") }
        #expect(reported, "\(detector.stderr)")
        let err = detector.stderr
        #expect(err.contains("cannot save checkpoint \(state)/detector-forewarn-detector/forewarn.readings-0.json.tmp (create): Read-only file system"), "\(err)")
        #expect(err.contains("offsets for forewarn.readings[0] not committed"), "\(err)")
        let health = httpGet(port: port, path: "/healthz")
        #expect(health.0 == 503 && health.1.contains("Read-only file system"), "\(health)")

        // The final checkpoint on SIGTERM fails too; once the process is gone, nothing more can be committed.
        detector.stop()
        #expect(detector.waitForExit(timeout: 20) != nil)
        #expect(committed(kafka) == 400, "offsets past the last saved checkpoint were committed")
    }

    @Test("a checkpoint from an earlier assignment (A → B → A) is stale: the state warms up instead, and says why")
    func staleCheckpointAfterAnotherInstance() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-stale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kafka = try DevKafka(directory: dir, partitions: 1)
        defer { kafka.stop() }

        // A consumes 400 readings, checkpoints at 400 and stops.
        var (a, _) = try startDetector(dir: dir, kafka: kafka, state: dir + "/state-a", name: "a1")
        try produce(pumpReadings(machine: "p1", from: 0, count: 100), bootstrap: kafka.bootstrap, firstSeq: 1)
        try #require(waitForCommitted(kafka, 400), "\(a.stderr)")
        a.stop()
        #expect(a.waitForExit(timeout: 20) == 0)

        // B (its own state directory) takes the partition and goes on to 800.
        let (b, _) = try startDetector(dir: dir, kafka: kafka, state: dir + "/state-b", name: "b")
        try produce(pumpReadings(machine: "p1", from: 100, count: 100), bootstrap: kafka.bootstrap, firstSeq: 401)
        try #require(waitForCommitted(kafka, 800), "\(b.stderr)")
        b.stop()
        #expect(b.waitForExit(timeout: 20) == 0)

        // A again: its checkpoint says 400, the group is at 800.
        (a, _) = try startDetector(dir: dir, kafka: kafka, state: dir + "/state-a", name: "a2")
        defer { a.stop() }
        let assigned = waitUntil(timeout: 30) { a.stderr.contains("assigned forewarn.readings[0]") }
        #expect(assigned, "\(a.stderr)")
        let err = a.stderr
        #expect(err.contains("is stale (the group has committed offset 800, beyond the checkpoint's 400"), "\(err)")
        #expect(err.contains("warming up forewarn.readings[0] from scratch"), "\(err)")
        #expect(!err.contains("restored forewarn.readings[0]"), "\(err)")

        // And B, whose checkpoint is where the group is, restores its state.
        a.stop()
        let (b2, _) = try startDetector(dir: dir, kafka: kafka, state: dir + "/state-b", name: "b2")
        defer { b2.stop() }
        #expect(waitUntil(timeout: 30) { b2.stderr.contains("restored forewarn.readings[0]: 1 machines, next offset 800") }, "\(b2.stderr)")
    }
}
