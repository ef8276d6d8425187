// The detector finds a record's machine and sensor from their bytes (ByteKeyIndex), and reads
// the seq header from its bytes (PartitionState.decimal), as a dictionary of Strings and
// Int64(String) would.
import Testing
@testable import Detector

@Suite struct ByteKeyIndexTests {
    @Test func findsEveryKeyAtItsPosition() {
        var index = ByteKeyIndex()
        var rng = SystemRandomNumberGenerator()
        var keys: [[UInt8]] = [[], [0], [0, 0], Array("m001".utf8), Array("°C".utf8)]
        while keys.count < 3000 {
            let k = (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...3, using: &rng) + 0x30 }
            if !keys.contains(k) { keys.append(k) }
        }
        for (i, k) in keys.enumerated() {
            #expect(k.withUnsafeBufferPointer { index.find($0) } == nil)
            #expect(k.withUnsafeBufferPointer { index.insert($0) } == i)
        }
        #expect(index.count == keys.count)
        for (i, k) in keys.enumerated() { #expect(k.withUnsafeBufferPointer { index.find($0) } == i) }
        for k in ["m0011", "x", "0000000000000"].map({ Array($0.utf8) }) where !keys.contains(k) {
            #expect(k.withUnsafeBufferPointer { index.find($0) } == nil)
        }
    }

    @Test func readsDecimalsAsInt64OfTheTextDoes() {
        var texts = ["", "-", "+", "0", "-0", "+0", "17", "-3", "+42", "007", " 1", "1 ", "1a", "--1", "+-1", "12345678901234567",
                     "123456789012345678", "1234567890123456789", "9223372036854775807", "9223372036854775808",
                     "-9223372036854775808", "-9223372036854775809", "+9223372036854775807", "00000000000000000000001", "١٢"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<10_000 { texts.append(String(Int64.random(in: .min ... .max, using: &rng))) }
        for t in texts {
            let bytes = Array(t.utf8)
            #expect(bytes.withUnsafeBytes { PartitionState.decimal($0) } == Int64(t), "\(t)")
        }
    }
}
