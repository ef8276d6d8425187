// /healthz problems from the two loops that share the journal: the ingest loop re-states its
// write state on every storage probe, which must not wipe a failure the forwarder reported.
import Testing
@testable import Gateway

@Suite("Gateway health")
struct GatewayHealthTests {
    @Test("a forwarder journal failure stays in /healthz while the ingest loop reports its writes fine, and clears on the next good call")
    func forwarderFailureSurvivesIngestProbes() {
        let health = GatewayHealth(grace: .seconds(30))
        health.setJournalReadError("database disk image is malformed (in: SELECT)")
        health.setJournalError(nil)   // what every ingest probe does while writes succeed
        let failing = health.report()
        #expect(!failing.healthy)
        #expect(failing.json.contains("journal read failing: database disk image is malformed (in: SELECT)"), "\(failing.json)")
        health.setJournalReadError(nil)
        #expect(!health.report().json.contains("journal read failing"))
    }
}
