// The detector's fast decoding of canonical readings must agree with the general JSON path on
// every input: the same reading where it takes one, and no opinion (so the general path's
// reading or error) where it declines.
import Testing
@testable import ForewarnCore

@Suite struct CanonicalReadingScannerTests {
    static let inputs: [String] = [
        #"{"site":"s1","machine":"m7","sensor":"vib_rms","ts":1700000000123,"value":3.25,"unit":"mm/s"}"#,
        #"{"site":"s1","machine":"m7","sensor":"t","ts":1,"value":61}"#,
        #" { "value" : -0.5e-3 , "ts" : 5 , "sensor":"t", "machine":"m1", "site":"s", "extra": 12 } "#,
        #"{"site":"s1","machine":"m1","sensor":"temp_c","ts":1,"value":60.125,"unit":"°C"}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":-0}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":99999999999999999999}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1,"unit":7}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1,"unit":null}"#,
        #"{"site":"s\u0031","machine":"m1","sensor":"t","ts":1,"value":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1.5,"value":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":"1","value":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":"1"}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1e999}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":01}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1} x"#,
        #"{"site":"s1","site":"s2","machine":"m1","sensor":"t","ts":1,"value":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1,"more":{"a":[1,2]}}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1,}"#,
        #"{}"#, #"[]"#, #""#, #"{"site":"s1""#, #"{"site":"s1","machine":"m1","sensor":"t","ts":-,"value":1}"#,
        #"{"site":"s1","machine":"m1","sensor":"t","ts":9223372036854775808,"value":1}"#,
    ]

    @Test(arguments: inputs)
    func agreesWithTheGeneralPath(_ text: String) {
        let bytes = Array(text.utf8)
        let general = Result { () throws(PayloadRejection) in try Reading.decodeCanonicalTree(bytes) }
        let decoded = Result { () throws(PayloadRejection) in try Reading.decodeCanonical(bytes) }
        #expect(decoded == general, "\(text)")
        if let fast = CanonicalReadingScanner.scan(bytes) { #expect(general == .success(fast), "\(text)") }
    }

    @Test func takesTheCanonicalFormItself() {
        let r = Reading(site: "s1", machine: "m042", sensor: "pressure_bar", ts: 1_764_547_200_000, value: 6.031, unit: "bar")
        #expect(CanonicalReadingScanner.scan(r.canonicalJSON()) == r)
        var bad = Array(#"{"site":"s1","machine":"m1","sensor":"t","ts":1,"value":1}"#.utf8)
        bad[10] = 0xFF  // invalid UTF-8 inside "s1": declined, and the general path names it
        #expect(CanonicalReadingScanner.scan(bad) == nil)
        #expect(throws: PayloadRejection.self) { try Reading.decodeCanonical(bad) }
    }
}
