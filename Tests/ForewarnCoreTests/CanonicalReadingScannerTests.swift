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

    /// The detector's path: the fields in place give the reading `decodeCanonical` gives, or the same error.
    @Test(arguments: inputs)
    func fieldsInPlaceAgreeWithTheReading(_ text: String) {
        let bytes = Array(text.utf8)
        let decoded = Result { () throws(PayloadRejection) in try Reading.decodeCanonical(bytes) }
        let fields = bytes.withUnsafeBytes { raw in Result { () throws(PayloadRejection) in try Reading.withCanonicalFields(raw) { $0.reading } } }
        #expect(fields == decoded, "\(text)")
    }

    /// `isValidUTF8` decides as `String(validating:as:)` does: every 1- and 2-byte sequence,
    /// every 3-byte one whose last byte is at a boundary, 4-byte ones at the boundaries, and
    /// random sequences.
    @Test func validatesUTF8AsTheStandardLibraryDoes() {
        func check(_ b: [UInt8]) -> Bool {
            b.withUnsafeBufferPointer { CanonicalReadingScanner.isValidUTF8($0) } == (String(validating: b, as: UTF8.self) != nil)
        }
        var failures: [[UInt8]] = []
        let edges: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
        for a in 0...255 {
            if !check([UInt8(a)]) { failures.append([UInt8(a)]) }
            for b in 0...255 {
                if !check([UInt8(a), UInt8(b)]) { failures.append([UInt8(a), UInt8(b)]) }
                guard a >= 0xC0 else { continue }
                for c in edges {
                    if !check([UInt8(a), UInt8(b), c]) { failures.append([UInt8(a), UInt8(b), c]) }
                    guard a >= 0xF0 else { continue }
                    for d in [0x7F, 0x80, 0xBF, 0xC0] as [UInt8] where !check([UInt8(a), UInt8(b), c, d]) { failures.append([UInt8(a), UInt8(b), c, d]) }
                }
            }
        }
        var rng = SystemRandomNumberGenerator()
        let pool: [UInt8] = edges + [0x61, 0x62, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80]
        for _ in 0..<100_000 {
            let b = (0..<Int.random(in: 1...8, using: &rng)).map { _ in pool.randomElement(using: &rng)! }
            if !check(b) { failures.append(b) }
        }
        #expect(failures.isEmpty, "\(failures.prefix(10))")
    }

    /// Numbers the scanner reads from the bytes are the Doubles the general parser gives for the
    /// same text (`Double(String)`, or an integer's Double), bit for bit.
    @Test func readsNumbersAsDoubleOfTheTextDoes() {
        var rng = SystemRandomNumberGenerator()
        var texts = ["0", "-0", "0.0", "-0.0", "1e5", "1E+5", "2.5e-3", "9007199254740993.0", "9007199254740992.5", "0.1", "0.30000000000000004",
                     "1e22", "1e23", "1e-22", "1e-23", "123456789012345678.9", "1234567890123456789.0", "4.9406564584124654e-324",
                     "1.7976931348623157e308", "0.000000000000000000000000001", "6.031", "2.153", "60.125", "-17.25e0", "1e0000", "5e-0022"]
        for _ in 0..<20_000 {
            texts.append(String(Double.random(in: -1e6...1e6, using: &rng)))
            texts.append(String(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng) & 0x7FEF_FFFF_FFFF_FFFF)))
            let digits = String((0..<Int.random(in: 1...20, using: &rng)).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
            let intPart = digits.drop { $0 == "0" }
            let mantissa = (intPart.isEmpty ? "0" : String(intPart)) + "." + String(Int.random(in: 0...999_999, using: &rng))
            texts.append(mantissa + "e" + String(Int.random(in: -30...30, using: &rng)))
            texts.append(mantissa)
        }
        var failures: [String] = []
        for t in texts {
            let json = Array(#"{"site":"s","machine":"m","sensor":"x","ts":1,"value":\#(t)}"#.utf8)
            let fast = json.withUnsafeBufferPointer { CanonicalReadingScanner.scan($0)?.value }
            let expected = try? Reading.decodeCanonicalTree(json).value
            if fast?.bitPattern != expected?.bitPattern { failures.append(t) }
        }
        #expect(failures.isEmpty, "\(failures.prefix(10))")
    }
}
