@testable import Gateway
import Testing

struct ForwarderHeaderTests {
    @Test("the seq header holds the decimal digits String(seq) would give")
    func decimalBytesMatchString() {
        for n: Int64 in [0, 1, 9, 10, 42, 1_000_000, 123_456_789_012, .max, -1, -907, .min] {
            #expect(decimalBytes(n) == Array(String(n).utf8), "\(n)")
        }
    }
}
