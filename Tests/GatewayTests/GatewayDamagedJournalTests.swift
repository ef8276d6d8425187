// The real gateway binary started over a journal damaged between runs: it must refuse to start
// (exit 65, EX_DATAERR) with one line naming the file and the problem, and leave every file as it
// was, so the readings in it can be salvaged. It must never start empty over it. And the journal
// a SIGKILL leaves (a WAL with commits) is no damage: the gateway starts and delivers all of it.
import Foundation
import Journal
import Testing
import TestSupport

@Suite(.serialized) struct GatewayDamagedJournalTests {
    func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return out
    }

    @Test("the gateway refuses to start over a damaged or foreign journal: exit 65, the file and the problem named, nothing touched",
          arguments: JournalDamageCase.allCases)
    func refusesToStart(_ damage: JournalDamageCase) throws {
        let state = TestEnvironment.temporaryDirectory("gw-damaged-\(damage)")
        let path = try DamagedJournal.make(damage, in: state)
        let before = try files(state)
        let work = TestEnvironment.temporaryDirectory("gw-damaged-run")
        // Nothing listens on these ports: the gateway must stop at the journal, before it connects.
        let child = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                     arguments: ["gateway", "--state-dir", state, "--http", "127.0.0.1:\(freePort())",
                                                 "--mqtt", "mqtt://127.0.0.1:1", "--kafka", "127.0.0.1:1"],
                                     directory: work, name: "gateway")
        let status = child.waitForExit(timeout: 20)
        child.stop()
        let output = child.stderr
        #expect(status == 65, "a damaged journal exits 65 (EX_DATAERR), which systemd does not restart: \(output)")
        #expect(output.contains("cannot start the gateway: journal \(path) is "), "\(output)")
        #expect(output.contains(damage.expectedProblem), "\(output)")
        #expect(output.contains(damage == .foreignSQLite ? "never changes a file it does not recognise" : "never truncates a journal"), "\(output)")
        #expect(!output.contains("journal opened"), "it must not open it: \(output)")
        let after = try files(state)
        #expect(after.keys.sorted() == before.keys.sorted(), "no file added or removed")
        #expect(after == before, "every file left byte for byte")
    }

    @Test("the journal a SIGKILL leaves (commits in the WAL) is no damage: the gateway starts and delivers every entry once")
    func aKilledGatewaysJournalStartsAndDelivers() throws {
        let dir = TestEnvironment.temporaryDirectory("gw-killed-journal")
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try DamagedJournal.write(in: state, entries: 2000, leaveWAL: true)
        try FileManager.default.removeItem(atPath: state + "/writing.sqlite")
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let mqtt = try MosquittoBroker(directory: dir)
        defer { mqtt.stop() }
        let gateway = try GatewayProcess(directory: dir, mqtt: mqtt.url, kafka: kafka.bootstrap, stateDir: state)
        defer { gateway.child.stop() }
        let messages = try consumeAll(bootstrap: kafka.bootstrap, topic: "forewarn.readings", expect: 2000, timeout: 60, settle: 2)
        #expect(messages.count == 2000, "every journaled entry, once")
        #expect(gateway.child.stderr.contains("entries=2000"), "\(gateway.child.stderr.suffix(2000))")
    }
}
