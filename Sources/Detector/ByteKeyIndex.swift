/// Positions 0, 1, 2, … of byte strings, in order of insertion, found from the bytes themselves:
/// the detector looks up a record's machine and sensor where they lie in the record, without
/// making a String of either (a String per field and its hashing were a quarter of the
/// detector's time per reading; docs/benchmarks.md, "Session 12").
///
/// Open addressing with linear probing over a power-of-two table, FNV-1a hashes; at most half
/// full. Keys are compared byte for byte, so a collision costs a comparison, never a wrong answer.
struct ByteKeyIndex: Sendable {
    /// The keys, concatenated, and where each ends.
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    private var hashes: [UInt64] = []
    /// Position + 1 of the key in each bucket; 0 for an empty one.
    private var table = [Int32](repeating: 0, count: 16)

    var count: Int { ends.count }

    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in key { h = (h ^ UInt64(c)) &* 0x0000_0100_0000_01B3 }
        return h ^ (h >> 29)
    }

    /// The position of `key`, or nil.
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        find(key, hash: Self.hash(key))
    }

    private func find(_ key: UnsafeBufferPointer<UInt8>, hash h: UInt64) -> Int? {
        let mask = table.count - 1
        var b = Int(truncatingIfNeeded: h) & mask
        while true {
            let slot = Int(table[b])
            if slot == 0 { return nil }
            if hashes[slot - 1] == h && equals(slot - 1, key) { return slot - 1 }
            b = (b + 1) & mask
        }
    }

    private func equals(_ position: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = position == 0 ? 0 : ends[position - 1]
        guard ends[position] - start == key.count else { return false }
        return bytes.withUnsafeBufferPointer { all in
            for j in 0..<key.count where all[start + j] != key[j] { return false }
            return true
        }
    }

    /// Adds `key` (not already present) and returns its position, `count` before the call.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        let h = Self.hash(key)
        precondition(find(key, hash: h) == nil, "ByteKeyIndex: key inserted twice")
        bytes.append(contentsOf: key)
        ends.append(bytes.count)
        hashes.append(h)
        if ends.count * 2 > table.count { rehash(table.count * 2) } else { place(ends.count - 1) }
        return ends.count - 1
    }

    @discardableResult
    mutating func insert(_ key: String) -> Int {
        var k = key
        return k.withUTF8 { insert($0) }
    }

    private mutating func place(_ position: Int) {
        let mask = table.count - 1
        var b = Int(truncatingIfNeeded: hashes[position]) & mask
        while table[b] != 0 { b = (b + 1) & mask }
        table[b] = Int32(position + 1)
    }

    private mutating func rehash(_ size: Int) {
        table = [Int32](repeating: 0, count: size)
        for p in 0..<ends.count { place(p) }
    }
}
