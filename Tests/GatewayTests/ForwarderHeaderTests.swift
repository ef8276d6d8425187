@testable import Gateway
import Journal
import Testing

struct ForwarderHeaderTests {
    @Test("the seq header holds the decimal digits String(seq) would give")
    func decimalBytesMatchString() {
        for n: Int64 in [0, 1, 9, 10, 42, 1_000_000, 123_456_789_012, .max, -1, -907, .min] {
            #expect(decimalBytes(n) == Array(String(n).utf8), "\(n)")
        }
    }

    @Test("in flight: a count, with the dead letters told apart")
    func inFlightCounts() {
        var f = InFlight()
        #expect(f.isEmpty)
        f.handed(1, kind: .reading)
        f.handed(2, kind: .deadLetter)
        f.handed(3, kind: .reading)
        #expect(f.count == 3)
        let kinds = [f.reported(3), f.reported(2), f.reported(2)]
        #expect(kinds == [.reading, .deadLetter, .reading], "a dead letter is told apart once")
        #expect(f.isEmpty)
        let extra = f.reported(9)
        #expect(extra == .reading && f.count == 0, "never below zero")
    }
}
