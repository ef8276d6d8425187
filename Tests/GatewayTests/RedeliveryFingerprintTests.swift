import Testing
@testable import Gateway

/// Which messages get a redelivery fingerprint: the ones a broker can send again.
struct RedeliveryFingerprintTests {
    @Test func onlyStampedMessagesThatCanComeAgainAreFingerprinted() {
        #expect(IngestService.needsFingerprint(stamped: true, qos: 1, retain: false))   // redelivered after a reconnect
        #expect(IngestService.needsFingerprint(stamped: true, qos: 0, retain: true))    // re-sent on every subscribe
        #expect(IngestService.needsFingerprint(stamped: true, qos: 1, retain: true))
        #expect(!IngestService.needsFingerprint(stamped: true, qos: 0, retain: false))  // never sent twice
        #expect(!IngestService.needsFingerprint(stamped: false, qos: 1, retain: false)) // cannot be recognised
        #expect(!IngestService.needsFingerprint(stamped: false, qos: 0, retain: true))
    }
}
