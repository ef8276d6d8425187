// The gateway with its state directory on a real 2 MiB tmpfs: it stops reading MQTT before the
// disk is full, keeps what a failed write held, and recovers by itself when space returns.
// Real mosquitto, `forewarn dev-kafka` and the `forewarn gateway` binary; checked with a real
// librdkafka consumer and the journal's own integrity check.
import Foundation
import Journal
import Kafka
import Logging
import Testing
import TestSupport
@testable import Gateway

struct IntakeGateTests {
    func probe(_ free: Int64, reusable: Int64 = 0, readOnly: Bool = false) -> StorageProbe { StorageProbe(filesystemFreeBytes: free, reusableBytes: reusable, readOnly: readOnly) }

    @Test func eachReasonPausesAndAllMustClearToResume() {
        var g = IntakeGate(fullPolicy: .backpressure, maxBytes: 1000, resumeFraction: 0.8, minFreeBytes: 100)
        g.update(journalBytes: 10, probe: probe(10_000), writeFailure: nil)
        #expect(!g.isPaused)
        g.update(journalBytes: 1000, probe: probe(50), writeFailure: "disk is full")
        #expect(g.reasons.map(\.label) == ["journal-full", "disk-low", "write-failing"])
        g.update(journalBytes: 850, probe: probe(200), writeFailure: nil)
        #expect(g.reasons.map(\.label) == ["journal-full"], "disk back above 1.5x the reserve; journal still above resume-at")
        g.update(journalBytes: 799, probe: probe(200), writeFailure: nil)
        #expect(!g.isPaused)
        g.update(journalBytes: 0, probe: probe(1 << 40, readOnly: true), writeFailure: nil)
        #expect(g.reasons == [.disk(.readOnly)])
        #expect(g.reasons.allSatisfy { $0.isProblem })
    }

    @Test func dropOldestNeverPausesForSizeButStillForDisk() {
        var g = IntakeGate(fullPolicy: .dropOldest, maxBytes: 1000, resumeFraction: 0.8, minFreeBytes: 100)
        g.update(journalBytes: 5000, probe: probe(10_000), writeFailure: nil)
        #expect(!g.isPaused)
        g.update(journalBytes: 5000, probe: probe(99), writeFailure: nil)
        #expect(g.reasons == [.disk(.lowSpace(available: 99, reserve: 100))])
        #expect(!BackpressureReason.journalFull(maxBytes: 1).isProblem)
    }
}

extension IntakeGateTests {
    @Test func theBallastGoesWhenTheDiskIsFullAndPausedAndComesBackWithRoom() {
        var g = IntakeGate(fullPolicy: .backpressure, maxBytes: 1 << 30, resumeFraction: 0.8, minFreeBytes: 512 << 10,
                           ballastBytes: 256 << 10, walBudgetBytes: 128 << 10)
        g.update(journalBytes: 0, probe: probe(1 << 20), writeFailure: nil)
        #expect(g.ballastAction(present: false, probe: probe(1 << 20), failedFull: false) == .restore, "made at start-up where there is room")
        g.update(journalBytes: 0, probe: probe(0), writeFailure: nil)
        #expect(g.reasons.map(\.label) == ["disk-low"])
        #expect(g.ballastAction(present: true, probe: probe(0), failedFull: false) == .release(.filesystemNearlyFull(free: 0, below: 128 << 10)))
        // Released: 256KiB free is still below the 384KiB resume level, so intake stays paused.
        g.update(journalBytes: 0, probe: probe(256 << 10), writeFailure: nil)
        #expect(g.isPaused)
        #expect(g.ballastAction(present: false, probe: probe(256 << 10), failedFull: false) == nil)
        g.update(journalBytes: 0, probe: probe(700 << 10, reusable: 1 << 20), writeFailure: nil)
        #expect(!g.isPaused)
        #expect(g.ballastAction(present: false, probe: probe(700 << 10), failedFull: false) == nil, "768KiB needed: ballast, resume level, WAL budget")
        #expect(g.ballastAction(present: false, probe: probe(768 << 10), failedFull: false) == .restore)
        #expect(g.ballastAction(present: true, probe: probe(1 << 20, readOnly: true), failedFull: true) == nil,
                "a read-only disk is no place to delete or make files")
    }
}

/// mosquitto, dev-kafka and a gateway whose state directory is a small tmpfs.
final class SmallDiskPipeline: @unchecked Sendable {
    let dir: String
    let disk: SmallDisk
    let broker: MosquittoBroker
    let kafka: DevKafka
    let gateway: GatewayProcess

    init(_ name: String, diskBytes: Int64, settings: [String]) throws {
        dir = TestEnvironment.temporaryDirectory(name)
        disk = try SmallDisk(sizeBytes: diskBytes, name: name)
        broker = try MosquittoBroker(directory: dir)
        kafka = try DevKafka(directory: dir)
        gateway = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: disk.path + "/state", settings: settings)
        let (status, body) = gateway.waitForHealth(timeout: 15) { _, b in b.contains("\"subscribed\":true") }
        guard body.contains("\"subscribed\":true") else { throw TestFailure("gateway not connected (\(status)): \(body) \(gateway.child.stderr)") }
    }

    var journalPath: String { disk.path + "/state/journal.sqlite" }

    /// Stops the gateway gracefully and runs SQLite's integrity check on what it left.
    func stopGatewayAndCheckJournal() throws -> (exit: Int32?, problems: [String], entries: Int) {
        gateway.child.signal(SIGTERM)
        let exit = gateway.child.waitForExit(timeout: 30)
        let j = try Journal(options: JournalOptions(path: journalPath), logger: TestEnvironment.logger)
        return (exit, try j.integrityProblems(), j.stats.entries)
    }

    /// Takes Kafka down, publishes `count` readings from `machines` and waits until the gateway
    /// has taken them all into its journal.
    func journalWithKafkaDown(_ publisher: TestPublisher, count: Int, machines: Int,
                              sourceLocation: SourceLocation = #_sourceLocation) throws -> [PublishedReading] {
        kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }
        let published = try publishReadings(publisher, count: count, machines: machines)
        let gateway = gateway
        _ = waitUntil(timeout: 20) { gateway.metric("forewarn_gateway_readings_in_total") >= Double(count) }
        #expect(gateway.metric("forewarn_gateway_readings_in_total") == Double(count), sourceLocation: sourceLocation)
        return published
    }

    /// Once the gateway is healthy with an empty journal (the wait is the caller's): stops it, and
    /// expects a clean exit and a sound, empty journal.
    func expectStopsWithASoundEmptyJournal(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let after = try stopGatewayAndCheckJournal()
        #expect(after.exit == 0, sourceLocation: sourceLocation)
        #expect(after.problems.isEmpty, "PRAGMA integrity_check: \(after.problems)", sourceLocation: sourceLocation)
        #expect(after.entries == 0, sourceLocation: sourceLocation)
    }

    func stop() {
        gateway.child.stop()
        kafka.stop()
        broker.stop()
        disk.unmount()
    }
}

/// Per machine, the published ts in order; compared with what Kafka holds in partition order.
func perMachineSequences(_ readings: [PublishedReading]) -> [String: [Int64]] {
    var out: [String: [Int64]] = [:]
    for r in readings { out[r.machine, default: []].append(r.ts) }
    return out
}

@Suite("Gateway with a full disk (2 MiB tmpfs)", .serialized, .enabled(if: SmallDisk.isAvailable, Comment(rawValue: SmallDisk.skipMessage)))
struct GatewayDiskFullTests {
    @Test("20,000 QoS 1 readings into a 2 MiB state directory with Kafka down: intake stops before the disk is full, all arrive exactly once in order")
    func diskFullBackpressure() throws {
        let reserve: Int64 = 512 << 10
        let p = try SmallDiskPipeline("disk-full", diskBytes: 2 << 20, settings: ["journal.min-free-bytes=512KiB"])
        defer { p.stop() }
        let gateway = p.gateway
        p.kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }

        let publisher = try TestPublisher(url: p.broker.url)
        let published = try publishReadings(publisher, count: 20_000, machines: 20)
        #expect(publisher.finish(), "the broker takes all 20,000 for the gateway's persistent session")

        let (status, body) = gateway.waitForHealth(timeout: 30) { _, b in b.contains("\"backpressure_reasons\":[\"disk-low\"]") }
        #expect(status == 503, "\(body)")
        #expect(body.contains("\"backpressure\":true"))
        #expect(body.contains("MQTT intake paused: disk nearly full"), "\(body)")
        #expect(body.contains("journal.min-free-bytes=\(reserve)"), "\(body)")
        #expect(!body.contains("journal write failing"), "intake stopped before any write failed: \(body)")
        #expect(gateway.metric("forewarn_gateway_backpressure ") == 1, "the one backpressure gauge")
        #expect(gateway.metric("forewarn_gateway_intake_paused{reason=\"disk-low\"}") == 1)
        let free = gateway.metric("forewarn_gateway_journal_free_bytes")
        #expect(free > 0 && free < Double(reserve) * 1.5, "paused below the resume level: \(free) bytes free")
        #expect(gateway.metric("forewarn_gateway_journal_write_failures_total") == 0)
        let taken = gateway.metric("forewarn_gateway_readings_in_total")
        #expect(taken > 1000 && taken < 20_000, "took what fits, left the rest in the broker: \(taken)")
        #expect(p.disk.freeBytes > 0, "the disk never filled: \(p.disk.freeBytes) bytes free")

        let diskFreeAtPause = p.disk.freeBytes
        p.kafka.brokersUp()
        let upAt = Date()
        let messages = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 20_000, timeout: 180, settle: 2)
        let received = parseReceived(messages)
        print("disk-full: 2 MiB tmpfs, journal.min-free-bytes=512KiB: intake paused after \(Int(taken)) of 20000 readings; while paused \(Int(free)) bytes free for the journal, \(diskFreeAtPause) on the file system; after Kafka returned \(received.count) records arrived (\(Set(received.map(\.seq)).count) distinct seqs, \(missing(published, received)) missing) within \(String(format: "%.1f", Date().timeIntervalSince(upAt) - 2)) s")
        #expect(received.count == 20_000, "exactly once: \(received.count) records")
        #expect(missing(published, received) == 0)
        #expect(Set(received.map(\.seq)).count == received.count, "no duplicates by (gateway, seq)")
        #expect(perMachineSequences(received.map(\.reading)) == perMachineSequences(published), "each machine's readings in published order")

        let healthy = gateway.waitForHealth(timeout: 30) { s, b in s == 200 && b.contains("\"entries\":0,") && b.contains("\"backpressure\":false") }
        #expect(healthy.0 == 200, "\(healthy.1)")
        #expect(gateway.metric("forewarn_gateway_journal_write_failures_total") == 0)
        try p.expectStopsWithASoundEmptyJournal()
    }

    @Test("20,000 readings as fast as mosquitto takes them (~46,000/s) onto a 2 MiB disk with Kafka down, at the smallest reserve and the default ballast (256 KiB): intake pauses before the WAL and its checkpoint fill the file system, the ballast is deleted where a write fails anyway, intake resumes by itself, all arrive exactly once in order")
    func intakeOutrunsTheWALBudget() throws {
        let count = 20_000, machines = 10
        // The smallest reserve (64KiB): the readings in flight when intake stops overrun it, and
        // the WAL fills the disk (on the gateway before the ballast: stalled, every run here).
        let p = try SmallDiskPipeline("disk-fast", diskBytes: 2 << 20,
                                      settings: ["journal.min-free-bytes=64KiB", "journal.max-bytes=64MiB"])
        defer { p.stop() }
        let gateway = p.gateway
        #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: p.disk.path + "/state/journal.ballast") },
                "the ballast (journal.ballast-bytes) is made at start-up on an empty disk")
        #expect(gateway.metric("forewarn_gateway_journal_ballast_bytes") == Double(256 << 10), "the default ballast: at least 256 KiB")
        p.kafka.brokersDown()
        _ = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"reachable\":false") }

        let publisher = try FastPublisher(directory: p.dir, port: Int(p.broker.url.split(separator: ":").last ?? "") ?? 0,
                                          count: count, machines: machines, site: "fast")
        let paused = gateway.waitForHealth(timeout: 60) { _, b in b.contains("\"disk-low\"") }
        #expect(paused.1.contains("\"backpressure\":true"), "intake paused for the disk: \(paused.1)")
        let published = try #require(publisher.finish(), "the publisher: \(publisher.child.stderr.suffix(500))")
        #expect(published.published == count && published.acknowledged == count, "the broker acknowledged all \(count): \(published)")
        let taken = gateway.metric("forewarn_gateway_readings_in_total")
        let diskFree = p.disk.freeBytes
        let walBytes = (try? FileManager.default.attributesOfItem(atPath: p.journalPath + "-wal")[.size] as? Int) ?? 0
        let releases = gateway.metric("forewarn_gateway_journal_ballast_releases_total")

        p.kafka.brokersUp()
        let upAt = Date()
        let received = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: count, timeout: 120, settle: 2))
        let healthy = gateway.waitForHealth(timeout: 60) { s, b in s == 200 && b.contains("\"entries\":0,") && b.contains("\"backpressure\":false") }
        print("disk-fast: 2 MiB tmpfs, journal.min-free-bytes=64KiB, default ballast: publisher at \(Int(published.rate)) readings/s; while paused with Kafka down \(Int(taken)) of \(count) taken, \(diskFree) bytes free on the file system, WAL \(walBytes) bytes, ballast released \(Int(releases)) time(s); after Kafka returned \(received.count) records within \(String(format: "%.1f", Date().timeIntervalSince(upAt) - 2)) s, ballast released \(Int(gateway.metric("forewarn_gateway_journal_ballast_releases_total"))) time(s) in all")

        // Every acknowledged reading exactly once, each machine's counters 0, 1, 2, ... in partition order.
        #expect(received.count == count, "exactly once: \(received.count) records")
        #expect(Set(received.map(\.seq)).count == received.count, "no duplicates by (gateway, seq)")
        var counters: [String: [Int]] = [:]
        for r in received {
            let obj = try? JSONSerialization.jsonObject(with: Data(r.value.utf8)) as? [String: Any]
            counters[r.reading.machine, default: []].append((obj?["value"] as? NSNumber)?.intValue ?? -1)
        }
        let expected = Array(0..<(count / machines))
        #expect(counters.count == machines && counters.values.allSatisfy { $0 == expected },
                "each machine's readings once and in published order: \(counters.mapValues { $0.count })")
        #expect(healthy.0 == 200, "intake resumed by itself and the journal drained to 0: \(healthy.1)")
        #expect(gateway.metric("forewarn_gateway_readings_in_total") == Double(count), "intake resumed and took the rest from the broker")
        try p.expectStopsWithASoundEmptyJournal()
    }

    @Test("the disk is filled by someone else: a delete or checkpoint that fails for the full disk gets the ballast's room, nothing is re-sent or lost, and it recovers when space returns")
    func diskFilledUnderneath() throws {
        let p = try SmallDiskPipeline("disk-filled", diskBytes: 2 << 20, settings: ["journal.min-free-bytes=64KiB"])
        defer { p.stop() }
        let gateway = p.gateway
        let publisher = try TestPublisher(url: p.broker.url)
        var published = try p.journalWithKafkaDown(publisher, count: 1000, machines: 10)

        // Another program takes all the space: intake stops (disk-low) though the journal file
        // has free pages; the WAL checkpoint gives a little back, which the other program takes too.
        p.disk.fill(name: "filler-1")
        let low = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"disk-low\"") }
        #expect(low.1.contains("\"backpressure\":true"), "\(low.1)")
        p.disk.fill(name: "filler-2")
        #expect(p.disk.freeBytes < 8192)

        // Kafka takes the readings. Deleting them needs WAL room, and the pause's checkpoint needs
        // room to grow the database file: whichever fails first on the full disk (which one
        // depends on how many WAL frames were pending) makes the gateway delete its ballast. That
        // failure shows in /healthz for one 5 ms probe; its lasting record is the log and the counter.
        p.kafka.brokersUp()
        #expect(waitUntil(timeout: 30) { gateway.metric("forewarn_gateway_journal_ballast_releases_total") >= 1 })
        let log = gateway.child.stderr
        #expect(log.contains("the disk is full (database or disk is full"), "\(log.suffix(4000))")
        #expect(log.contains("deleted the ballast file") && log.contains("a journal write failed because the disk is full"), "\(log.suffix(4000))")
        // Published meanwhile: stays in the broker.
        published += try publishReadings(publisher, count: 500, machines: 10, startTs: 1_700_000_100_000)

        try FileManager.default.removeItem(atPath: p.disk.path + "/filler-1")
        try FileManager.default.removeItem(atPath: p.disk.path + "/filler-2")
        #expect(publisher.finish())
        let messages = try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 1500, timeout: 90, settle: 2)
        let received = parseReceived(messages)
        #expect(received.count == 1500, "failed deletes did not make the forwarder send again: \(received.count)")
        #expect(missing(published, received) == 0)
        #expect(perMachineSequences(received.map(\.reading)) == perMachineSequences(published))
        let healthy = gateway.waitForHealth(timeout: 30) { s, b in s == 200 && b.contains("\"entries\":0,") }
        #expect(healthy.0 == 200, "\(healthy.1)")
        try p.expectStopsWithASoundEmptyJournal()
    }

    @Test("the state directory vanishes (unmounted under the gateway): intake stops, health says why, what was journaled is still delivered, nothing acknowledged is lost")
    func stateDirectoryVanishes() throws {
        let p = try SmallDiskPipeline("disk-vanish", diskBytes: 2 << 20, settings: ["journal.min-free-bytes=64KiB"])
        defer { p.stop() }
        let gateway = p.gateway
        let publisher = try TestPublisher(url: p.broker.url)
        var published = try p.journalWithKafkaDown(publisher, count: 500, machines: 5)

        p.disk.detach()
        let gone = gateway.waitForHealth(timeout: 10) { _, b in b.contains("\"journal-vanished\"") }
        #expect(gone.0 == 503, "\(gone.1)")
        #expect(gone.1.contains("the journal file is gone from its path"), "\(gone.1)")
        #expect(gateway.metric("forewarn_gateway_intake_paused{reason=\"journal-vanished\"}") == 1)
        // Published now: the broker keeps it for the paused gateway's session.
        published += try publishReadings(publisher, count: 300, machines: 5, startTs: 1_700_000_100_000)
        #expect(publisher.finish())

        // The open journal still drains to Kafka.
        p.kafka.brokersUp()
        let first = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 500, timeout: 60, settle: 2))
        #expect(first.count == 500, "exactly the journaled readings: \(first.count)")
        #expect(Set(first.map(\.reading)) == Set(published.prefix(500)))
        #expect(gateway.metric("forewarn_gateway_readings_in_total") == 500, "intake stayed paused")
        #expect(gateway.child.isRunning, "no crash")

        // A restart on a fresh state directory takes the rest from the broker.
        gateway.child.signal(SIGTERM)
        #expect(gateway.child.waitForExit(timeout: 30) == 0)
        let again = try GatewayProcess(directory: p.dir, name: "gateway-2", mqtt: p.broker.url, kafka: p.kafka.bootstrap,
                                       stateDir: p.disk.path + "/state", settings: ["journal.min-free-bytes=64KiB"])
        defer { again.child.stop() }
        let all = parseReceived(try consumeAll(bootstrap: p.kafka.bootstrap, topic: "forewarn.readings", expect: 800, timeout: 60, settle: 2))
        #expect(missing(published, all) == 0, "nothing acknowledged by the broker is lost")
        #expect(Set(all.map(\.reading)).count == 800)
        // The new journal numbers above the lost one, so (gateway, seq) never repeats.
        let firstSeqs = Set(first.map(\.seq))
        let later = all.filter { !firstSeqs.contains($0.seq) }
        #expect(later.count == 300, "the 300 taken after the restart have seqs of their own")
        #expect(later.map(\.seq).min() ?? 0 > first.map(\.seq).max() ?? .max)
    }
}
