/// The usual single-reading payloads read in place, without a `JSONValue` tree, the Strings of
/// its keys, or `Double(String)`: the parse ran once per MQTT message and was an eighth of the
/// ingest thread (docs/benchmarks.md, Session 15). Two forms: a plain JSON number, and a flat
/// object whose known members are `ts` (an integer in range, or null), `value` (a number),
/// `unit` (a string of at most 32 bytes, or null) and `seq` (an integer), with other members
/// strings, numbers or null. Anything else (a batch, nesting, escapes, literals, a repeated
/// known key, a wrong type, a malformed byte) gives nil, and `PayloadParser` then takes the
/// general path, which returns the same reading or the error: only inputs that path accepts,
/// with the fields it would read, are taken here (the fuzz target compares the two).
enum PayloadScanner {
    struct Scanned {
        /// Nil when absent or null: the receive time applies, and the message is not stamped.
        var ts: Int64?
        var value: Double
        var unit: UnsafeBufferPointer<UInt8>?
    }

    /// A plain number, with JSON's whitespace around it.
    static func plainNumber(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        var c = JSONCursor(b)
        c.skipWhitespace()
        guard let v = c.number() else { return nil }
        c.skipWhitespace()
        return c.atEnd ? v.double : nil
    }

    /// Member keys that mean something to the parser (`values` makes a batch: the general path's).
    private enum Key: Int {
        case ts = 0, value, unit, seq, values
    }

    private static func key(_ k: UnsafeBufferPointer<UInt8>) -> Key? {
        func equals(_ name: StaticString) -> Bool { JSONCursor.bytes(k, equal: name) }
        switch k.count {
        case 2: return equals("ts") ? .ts : nil
        case 3: return equals("seq") ? .seq : nil
        case 4: return equals("unit") ? .unit : nil
        case 5: return equals("value") ? .value : nil
        case 6: return equals("values") ? .values : nil
        default: return nil
        }
    }

    /// A flat object with a `value`, as above.
    static func object(_ b: UnsafeBufferPointer<UInt8>) -> Scanned? {
        var c = JSONCursor(b)
        var scanned = Scanned(ts: nil, value: 0, unit: nil)
        var seen = 0
        c.skipWhitespace()
        guard c.expect(UInt8(ascii: "{")) else { return nil }
        repeat {
            c.skipWhitespace()
            guard let raw = c.plainString() else { return nil }
            let k = key(raw)
            if let k {
                guard k != .values, seen & (1 << k.rawValue) == 0 else { return nil }
                seen |= 1 << k.rawValue
            } else if !CanonicalReadingScanner.isValidUTF8(raw) {
                return nil
            }
            c.skipWhitespace()
            guard c.expect(UInt8(ascii: ":")) else { return nil }
            c.skipWhitespace()
            guard member(k, &c, &scanned) else { return nil }
            c.skipWhitespace()
        } while c.expect(UInt8(ascii: ","))
        guard c.expect(UInt8(ascii: "}")) else { return nil }
        c.skipWhitespace()
        guard c.atEnd, seen & (1 << Key.value.rawValue) != 0 else { return nil }
        return scanned
    }

    /// One member's value, at the cursor: false for anything the general path must judge.
    private static func member(_ k: Key?, _ c: inout JSONCursor, _ s: inout Scanned) -> Bool {
        if c.expectNull() { return k == nil || k == .ts || k == .unit }
        if c.peek == UInt8(ascii: "\"") {
            guard let raw = c.plainString(), CanonicalReadingScanner.isValidUTF8(raw) else { return false }
            guard k == .unit else { return k == nil }
            guard raw.count <= 32 else { return false }
            s.unit = raw
            return true
        }
        guard let v = c.number() else { return false }
        switch k {
        case nil: return true
        case .value?: s.value = v.double; return true
        case .seq?: return v.integer != nil
        case .ts?:
            guard let t = v.integer, t >= 0, t <= PayloadParser.maxTimestamp else { return false }
            s.ts = t
            return true
        case .unit?, .values?: return false
        }
    }
}

/// A position in JSON bytes, for the scanners that read the usual inputs in place. Its
/// `number()` reads a number as `JSONParser` does: an integer when it fits Int64 and has no
/// fraction or exponent; otherwise a finite Double, correctly rounded.
struct JSONCursor {
    let b: UnsafeBufferPointer<UInt8>
    private(set) var i = 0

    init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

    var atEnd: Bool { i == b.count }
    var peek: UInt8? { i < b.count ? b[i] : nil }

    mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func expect(_ c: UInt8) -> Bool {
        guard i < b.count, b[i] == c else { return false }
        i += 1
        return true
    }

    mutating func expectNull() -> Bool {
        guard b.count - i >= 4, b[i] == UInt8(ascii: "n"), b[i + 1] == UInt8(ascii: "u"),
              b[i + 2] == UInt8(ascii: "l"), b[i + 3] == UInt8(ascii: "l") else { return false }
        i += 4
        return true
    }

    /// The bytes of a string without escapes or control characters (the quotes consumed).
    mutating func plainString() -> UnsafeBufferPointer<UInt8>? {
        guard expect(UInt8(ascii: "\"")) else { return nil }
        let start = i
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return UnsafeBufferPointer(rebasing: b[start..<(i - 1)]) }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    /// Whether `bytes` are a key's text (the callers switch on the count first).
    static func bytes(_ bytes: UnsafeBufferPointer<UInt8>, equal name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        for j in 0..<bytes.count where p[j] != bytes[j] { return false }
        return true
    }

    /// Exact powers of ten as Doubles (10^22 is the largest one a Double holds exactly).
    private static let powersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { x, _ in x * 10 } }

    /// A decimal `mantissa` × 10^`exponent` when both are exact in a Double (mantissa < 2^53,
    /// |exponent| ≤ 22): one IEEE multiplication or division of two exact values is correctly
    /// rounded, so this is the Double `strtod` (and `Double(String)`) gives for the same text.
    /// Nil otherwise.
    static func exactDecimal(mantissa: UInt64, exponent: Int, negative: Bool) -> Double? {
        guard mantissa < (1 << 53), exponent >= -22, exponent <= 22 else { return nil }
        let m = Double(mantissa)
        let v = exponent < 0 ? m / powersOfTen[-exponent] : m * powersOfTen[exponent]
        return negative ? -v : v
    }

    /// Digits, accumulated into `mantissa` while it has at most 19 (`count` says how many).
    private mutating func digits(_ mantissa: inout UInt64, _ count: inout Int) -> Bool {
        let start = i
        while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
            if count < 19 { mantissa = mantissa &* 10 &+ UInt64(b[i] &- UInt8(ascii: "0")) }
            count += 1
            i += 1
        }
        return i > start
    }

    /// A number; nil for a malformed or non-finite one. Up to 18 digits are read straight from
    /// the bytes, and a Double that `exactDecimal` gives; anything else goes through
    /// `Int64(String)` or `Double(String)`, as in `JSONParser`.
    mutating func number() -> (integer: Int64?, double: Double)? {
        let start = i
        var isInteger = true
        var mantissa: UInt64 = 0, count = 0, fractionDigits = 0, exponent = 0
        let negative = expect(UInt8(ascii: "-"))
        if expect(UInt8(ascii: "0")) { count = 1 } else if !digits(&mantissa, &count) { return nil }
        if expect(UInt8(ascii: ".")) {
            isInteger = false
            let before = count
            guard digits(&mantissa, &count) else { return nil }
            fractionDigits = count - before
        }
        var exponentExact = true
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            var negativeExponent = false
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { negativeExponent = b[i] == UInt8(ascii: "-"); i += 1 }
            var e: UInt64 = 0, eCount = 0
            guard digits(&e, &eCount) else { return nil }
            if eCount > 4 { exponentExact = false } else { exponent = negativeExponent ? -Int(e) : Int(e) }
        }
        if isInteger, count <= 18 {
            let v = Int64(mantissa)
            return negative ? (-v, Double(-v)) : (v, Double(v))
        }
        if !isInteger, count <= 19, exponentExact,
           let d = Self.exactDecimal(mantissa: mantissa, exponent: exponent - fractionDigits, negative: negative) {
            return (nil, d)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        if isInteger, let v = Int64(text) { return (v, Double(v)) }
        guard let d = Double(text), d.isFinite else { return nil }
        return (nil, d)
    }
}
