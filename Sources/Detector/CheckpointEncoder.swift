// A streaming JSON `Encoder` for checkpoints. It writes the same JSON document as Foundation's
// `JSONEncoder` (objects, arrays, numbers that read back to the same values), so checkpoints keep
// their format and are still read with `JSONDecoder`. Foundation's encoder first builds a tree
// of boxed values and casts every element to look for Date, Data or URL; a partition's state is
// ~5 MB of numbers, which took it seconds per checkpoint (docs/benchmarks.md). This one appends
// to one byte buffer as the values come.
//
// Containers are closed when their owner's `encode(to:)` returns, or when an enclosing container
// is written to again; writing to a container that is already closed throws, and so does any
// value this encoder does not know how to write (Date, Data, URL, Decimal, non-finite numbers).
// The caller then falls back to `JSONEncoder`.
import ForewarnCore
import Foundation

struct CheckpointEncodingError: Error, CustomStringConvertible {
    var description: String
}

enum CheckpointEncoder {
    /// The JSON text of `value`, or an error when it needs `JSONEncoder`.
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let writer = JSONStreamWriter()
        try writer.encodeValue(value, codingPath: [])
        if let failure = writer.failure { throw CheckpointEncodingError(description: failure) }
        return writer.bytes
    }
}

/// The output buffer and the stack of open containers.
final class JSONStreamWriter {
    var bytes: [UInt8] = []
    /// Open containers, innermost last: id, closing byte, and whether a member was written.
    private var open: [(id: Int, close: UInt8, hasMember: Bool)] = []
    private var nextID = 0
    /// Set when a value slot got its value (a container opened or a single value written).
    var slotFilled = false
    /// Set by a misuse that could not throw where it happened (a nested container of a closed one, superEncoder).
    var failure: String?

    init() { bytes.reserveCapacity(1 << 20) }

    /// Writes `value` into the current slot (after a key, an array separator, or at the top).
    func encodeValue<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws {
        if try writePrimitive(value) { return }
        // The models' windows and profiles: arrays of numbers, written without a container per element.
        if T.self == [Double].self { try numbers(withUnsafePointer(to: value) { $0.withMemoryRebound(to: [Double].self, capacity: 1) { $0.pointee } }); return }
        if T.self == [Bool].self { bools(withUnsafePointer(to: value) { $0.withMemoryRebound(to: [Bool].self, capacity: 1) { $0.pointee } }); return }
        if T.self == Date.self || T.self == Data.self || T.self == URL.self || T.self == Decimal.self {
            throw CheckpointEncodingError(description: "\(T.self) needs JSONEncoder")
        }
        let depth = open.count
        slotFilled = false
        try value.encode(to: StreamEncoder(writer: self, codingPath: codingPath))
        if !slotFilled { bytes.append(contentsOf: [UInt8(ascii: "{"), UInt8(ascii: "}")]) }  // JSONEncoder writes {} for nothing
        closeDown(to: depth)
        slotFilled = true
    }

    /// Bool, String, integers and floating point numbers are written in place; false for others.
    func writePrimitive<T>(_ value: T) throws -> Bool {
        func cast<U>(_: U.Type) -> U { withUnsafePointer(to: value) { $0.withMemoryRebound(to: U.self, capacity: 1) { $0.pointee } } }
        switch T.self {
        case is Double.Type: try number(cast(Double.self))
        case is String.Type: string(cast(String.self))
        case is Int.Type: integer(cast(Int.self))
        case is Int64.Type: integer(cast(Int64.self))
        case is Bool.Type: literal(cast(Bool.self) ? "true" : "false")
        case is Float.Type: try number(Double(cast(Float.self)), text: cast(Float.self).description)
        case is Int32.Type: integer(cast(Int32.self))
        case is Int16.Type: integer(cast(Int16.self))
        case is Int8.Type: integer(cast(Int8.self))
        case is UInt.Type: integer(cast(UInt.self))
        case is UInt64.Type: integer(cast(UInt64.self))
        case is UInt32.Type: integer(cast(UInt32.self))
        case is UInt16.Type: integer(cast(UInt16.self))
        case is UInt8.Type: integer(cast(UInt8.self))
        default: return false
        }
        slotFilled = true
        return true
    }

    /// The buffer is moved out for the loop and back after: each append to the class's
    /// property was a dynamic exclusivity check (swift_beginAccess), most of a checkpoint's time.
    func numbers(_ values: [Double]) throws {
        var out: [UInt8] = []
        swap(&out, &bytes)
        defer { swap(&out, &bytes) }
        out.append(UInt8(ascii: "["))
        for (k, v) in values.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            try Self.number(v, text: nil, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        slotFilled = true
    }

    func bools(_ values: [Bool]) {
        var out: [UInt8] = []
        swap(&out, &bytes)
        defer { swap(&out, &bytes) }
        out.append(UInt8(ascii: "["))
        for (k, v) in values.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            let t: StaticString = v ? "true" : "false"
            t.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        out.append(UInt8(ascii: "]"))
        slotFilled = true
    }

    // MARK: containers

    func openContainer(_ openByte: UInt8, _ closeByte: UInt8) -> Int {
        nextID += 1
        bytes.append(openByte)
        open.append((nextID, closeByte, false))
        slotFilled = true
        return nextID
    }

    /// Makes container `id` the innermost open one (closing any opened inside it since) and
    /// writes the separator for its next member.
    func beginMember(of id: Int) throws {
        guard let k = open.lastIndex(where: { $0.id == id }) else {
            throw CheckpointEncodingError(description: "write to a closed container")
        }
        closeDown(to: k + 1)
        if open[k].hasMember { bytes.append(UInt8(ascii: ",")) }
        open[k].hasMember = true
    }

    func key(_ k: String) {
        string(k)
        bytes.append(UInt8(ascii: ":"))
    }

    func closeDown(to depth: Int) {
        while open.count > depth { bytes.append(open.removeLast().close) }
    }

    // MARK: scalars

    func literal(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    func number(_ v: Double, text: String? = nil) throws { try Self.number(v, text: text, to: &bytes) }

    func integer<I: BinaryInteger>(_ v: I) { Self.integer(v, to: &bytes) }

    static func number(_ v: Double, text: String?, to out: inout [UInt8]) throws {
        guard v.isFinite else { throw CheckpointEncodingError(description: "non-finite number \(v)") }
        // Whole numbers (empty buckets, counts) as integers, without a String of their own; not -0.
        if text == nil, v == v.rounded(.towardZero), abs(v) < 1e15, v != 0 || v.sign == .plus {
            decimal(Int64(v), to: &out)
            return
        }
        var t = text ?? v.description
        // Swift prints 1e-05 and 1e+16, which JSON reads; "2.0" reads back as 2.0 too.
        t.withUTF8 { out.append(contentsOf: $0) }
    }

    static func integer<I: BinaryInteger>(_ v: I, to out: inout [UInt8]) {
        if let i = Int64(exactly: v) { decimal(i, to: &out); return }
        var t = String(v)
        t.withUTF8 { out.append(contentsOf: $0) }
    }

    /// `String(v)`'s digits, written without making the String.
    static func decimal(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            var n = 0
            repeat {
                buf[19 - n] = UInt8(ascii: "0") + UInt8(m % 10)
                m /= 10
                n += 1
            } while m > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[(20 - n)...]))
        }
    }

    func string(_ s: String) { JSONWriter.appendQuoted(s, to: &bytes) }
}

private struct StreamEncoder: Encoder {
    let writer: JSONStreamWriter
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(StreamKeyedContainer<Key>(writer: writer, id: writer.openContainer(UInt8(ascii: "{"), UInt8(ascii: "}")), codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        StreamUnkeyedContainer(writer: writer, id: writer.openContainer(UInt8(ascii: "["), UInt8(ascii: "]")), codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        StreamSingleValueContainer(writer: writer, codingPath: codingPath)
    }
}

private struct StreamKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: JSONStreamWriter
    let id: Int
    var codingPath: [any CodingKey]

    private func begin(_ key: Key) throws {
        try writer.beginMember(of: id)
        writer.key(key.stringValue)
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key); writer.literal("null") }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try writer.encodeValue(value, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        // A failure here (a closed container) cannot be thrown; the nested container's writes throw instead.
        let ok = (try? begin(key)) != nil
        if !ok { writer.failure = "nested container of a closed container" }
        let nested = ok ? writer.openContainer(UInt8(ascii: "{"), UInt8(ascii: "}")) : -1
        return KeyedEncodingContainer(StreamKeyedContainer<NestedKey>(writer: writer, id: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let ok = (try? begin(key)) != nil
        if !ok { writer.failure = "nested container of a closed container" }
        let nested = ok ? writer.openContainer(UInt8(ascii: "["), UInt8(ascii: "]")) : -1
        return StreamUnkeyedContainer(writer: writer, id: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { writer.failure = "superEncoder is not supported"; return FailingEncoder(codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { writer.failure = "superEncoder is not supported"; return FailingEncoder(codingPath: codingPath + [key]) }
}

private struct StreamUnkeyedContainer: UnkeyedEncodingContainer {
    let writer: JSONStreamWriter
    let id: Int
    var codingPath: [any CodingKey]
    var count = 0

    mutating func encodeNil() throws { try writer.beginMember(of: id); writer.literal("null"); count += 1 }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try writer.beginMember(of: id)
        count += 1
        try writer.encodeValue(value, codingPath: codingPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let ok = (try? writer.beginMember(of: id)) != nil
        if !ok { writer.failure = "nested container of a closed container" }
        count += 1
        let nested = ok ? writer.openContainer(UInt8(ascii: "{"), UInt8(ascii: "}")) : -1
        return KeyedEncodingContainer(StreamKeyedContainer<NestedKey>(writer: writer, id: nested, codingPath: codingPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let ok = (try? writer.beginMember(of: id)) != nil
        if !ok { writer.failure = "nested container of a closed container" }
        count += 1
        let nested = ok ? writer.openContainer(UInt8(ascii: "["), UInt8(ascii: "]")) : -1
        return StreamUnkeyedContainer(writer: writer, id: nested, codingPath: codingPath)
    }

    mutating func superEncoder() -> any Encoder { writer.failure = "superEncoder is not supported"; return FailingEncoder(codingPath: codingPath) }
}

private struct StreamSingleValueContainer: SingleValueEncodingContainer {
    let writer: JSONStreamWriter
    var codingPath: [any CodingKey]

    mutating func encodeNil() throws { writer.literal("null"); writer.slotFilled = true }
    mutating func encode<T: Encodable>(_ value: T) throws { try writer.encodeValue(value, codingPath: codingPath) }
}

/// superEncoder is not used by the checkpointed types; anything written through it fails the
/// encoding (so the caller falls back to JSONEncoder).
private struct FailingEncoder: Encoder {
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(StreamKeyedContainer<Key>(writer: JSONStreamWriter(), id: -1, codingPath: codingPath))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { StreamUnkeyedContainer(writer: JSONStreamWriter(), id: -1, codingPath: codingPath) }
    func singleValueContainer() -> any SingleValueEncodingContainer { FailingSingleValue(codingPath: codingPath) }
}

private struct FailingSingleValue: SingleValueEncodingContainer {
    var codingPath: [any CodingKey]
    mutating func encodeNil() throws { throw CheckpointEncodingError(description: "superEncoder is not supported") }
    mutating func encode<T: Encodable>(_ value: T) throws { throw CheckpointEncodingError(description: "superEncoder is not supported") }
}
