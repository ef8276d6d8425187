/// One sensor value from one machine at one instant (reading time, epoch milliseconds).
public struct Reading: Sendable, Equatable, Hashable {
    public var site: String
    public var machine: String
    public var sensor: String
    /// Epoch milliseconds of the measurement (the payload's `ts`, or the receive time).
    public var ts: Int64
    public var value: Double
    public var unit: String?

    public init(site: String, machine: String, sensor: String, ts: Int64, value: Double, unit: String? = nil) {
        self.site = site
        self.machine = machine
        self.sensor = sensor
        self.ts = ts
        self.value = value
        self.unit = unit
    }

    /// The canonical JSON value of the readings topic: `{"site","machine","sensor","ts","value","unit"?}`.
    /// Written straight into one buffer sized up front (no writer state, no number Strings on
    /// the heap): the gateway builds one per journaled reading. Byte for byte what `JSONWriter`
    /// gives for the same fields (a test compares the two).
    public func canonicalJSON() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(80 + site.utf8.count + machine.utf8.count + sensor.utf8.count + (unit?.utf8.count ?? 0))
        b.append(contentsOf: #"{"site":"#.utf8)
        JSONWriter.appendQuoted(site, to: &b)
        b.append(contentsOf: #","machine":"#.utf8)
        JSONWriter.appendQuoted(machine, to: &b)
        b.append(contentsOf: #","sensor":"#.utf8)
        JSONWriter.appendQuoted(sensor, to: &b)
        b.append(contentsOf: #","ts":"#.utf8)
        JSONWriter.appendInteger(ts, to: &b)
        b.append(contentsOf: #","value":"#.utf8)
        JSONWriter.appendNumber(value, to: &b)
        if let unit {
            b.append(contentsOf: #","unit":"#.utf8)
            JSONWriter.appendQuoted(unit, to: &b)
        }
        b.append(UInt8(ascii: "}"))
        return b
    }

    /// Decodes the canonical JSON form (what the detector consumes).
    public static func decodeCanonical(_ bytes: [UInt8]) throws(PayloadRejection) -> Reading {
        if let reading = CanonicalReadingScanner.scan(bytes) { return reading }
        return try decodeCanonicalTree(bytes)
    }

    /// The same, from bytes borrowed for the call (a consumed record, read in place).
    public static func decodeCanonical(_ bytes: UnsafeRawBufferPointer) throws(PayloadRejection) -> Reading {
        if let reading = CanonicalReadingScanner.scan(bytes.assumingMemoryBound(to: UInt8.self)) { return reading }
        return try decodeCanonicalTree(Array(bytes))
    }

    /// The general decoding, through a `JSONValue` tree: every input the scanner declines, and the errors.
    static func decodeCanonicalTree(_ bytes: [UInt8]) throws(PayloadRejection) -> Reading {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch {
            throw PayloadRejection(.notJSON, "reading is not JSON: \(error)")
        }
        guard case .object = json else { throw PayloadRejection(.wrongType, "reading must be a JSON object") }
        func str(_ k: String) throws(PayloadRejection) -> String {
            guard case let .string(s)? = json[k] else { throw PayloadRejection(.missingField, "reading has no string '\(k)'") }
            return s
        }
        guard case let .integer(ts)? = json["ts"] else { throw PayloadRejection(.missingField, "reading has no integer 'ts'") }
        guard let value = json["value"]?.doubleValue else { throw PayloadRejection(.missingField, "reading has no number 'value'") }
        var unit: String?
        if case let .string(u)? = json["unit"] { unit = u }
        return Reading(site: try str("site"), machine: try str("machine"), sensor: try str("sensor"), ts: ts, value: value, unit: unit)
    }
}

/// The usual canonical reading, read without building a `JSONValue` tree (the detector decodes
/// one per record): a flat object whose values are strings without escapes and numbers. Anything
/// else (nesting, escapes, literals, a repeated or mistyped field, any malformed byte) gives nil,
/// and `decodeCanonical` then takes `JSONParser`, which returns the same reading or the error.
enum CanonicalReadingScanner {
    private static let keys: [[UInt8]] = ["site", "machine", "sensor", "ts", "value", "unit"].map { Array($0.utf8) }

    /// The position of `key` in `keys`, or -1: compared as bytes (a generic `elementsEqual`
    /// looked up type metadata on every call).
    private static func keyIndex(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        search: for (k, name) in keys.enumerated() where name.count == key.count {
            for j in 0..<key.count where name[j] != key[j] { continue search }
            return k
        }
        return -1
    }

    static func scan(_ bytes: [UInt8]) -> Reading? {
        bytes.withUnsafeBufferPointer { scan($0) }
    }

    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> Reading? {
        do {
            var i = 0
            let n = b.count
            func skipWhitespace() { while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
            func expect(_ c: UInt8) -> Bool {
                guard i < n, b[i] == c else { return false }
                i += 1
                return true
            }
            /// The bytes of a string without escapes (the quotes consumed).
            func plainString() -> UnsafeBufferPointer<UInt8>? {
                guard expect(UInt8(ascii: "\"")) else { return nil }
                let start = i
                while i < n {
                    let c = b[i]
                    if c == UInt8(ascii: "\"") { i += 1; return UnsafeBufferPointer(rebasing: b[start..<(i - 1)]) }
                    if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
                    i += 1
                }
                return nil
            }
            func digits() -> Bool {
                let start = i
                while i < n, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { i += 1 }
                return i > start
            }
            /// Up to 18 digits with an optional minus, straight from the bytes (always fits Int64);
            /// longer ones go through `Int64(String)`, which knows the exact bounds.
            func integer(_ r: Range<Int>) -> Int64? {
                var j = r.lowerBound
                let negative = b[j] == UInt8(ascii: "-")
                if negative { j += 1 }
                guard r.upperBound - j <= 18 else { return nil }
                var v: Int64 = 0
                while j < r.upperBound { v = v * 10 + Int64(b[j] &- UInt8(ascii: "0")); j += 1 }
                return negative ? -v : v
            }
            /// A number as JSONParser reads it: an integer when it fits Int64 and has no fraction or exponent.
            func number() -> (integer: Int64?, double: Double)? {
                let start = i
                var isInteger = true
                _ = expect(UInt8(ascii: "-"))
                if expect(UInt8(ascii: "0")) {} else if !digits() { return nil }
                if expect(UInt8(ascii: ".")) { isInteger = false; guard digits() else { return nil } }
                if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                    isInteger = false
                    i += 1
                    if i < n, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                    guard digits() else { return nil }
                }
                if isInteger, let v = integer(start..<i) { return (v, Double(v)) }
                let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
                if isInteger, let v = Int64(text) { return (v, Double(v)) }
                guard let d = Double(text), d.isFinite else { return nil }
                return (nil, d)
            }
            var site: String?, machine: String?, sensor: String?, unit: String?
            var ts: Int64?
            var value: Double?
            var seen = 0
            skipWhitespace()
            guard expect(UInt8(ascii: "{")) else { return nil }
            while true {
                skipWhitespace()
                guard let key = plainString() else { return nil }
                skipWhitespace()
                guard expect(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                let k = keyIndex(key)
                if k >= 0 {
                    if seen & (1 << k) != 0 { return nil }
                    seen |= 1 << k
                }
                guard i < n else { return nil }
                if b[i] == UInt8(ascii: "\"") {
                    guard let raw = plainString(), let text = String(validating: raw, as: UTF8.self) else { return nil }
                    switch k {
                    case 0: site = text
                    case 1: machine = text
                    case 2: sensor = text
                    case 5: unit = text
                    case -1: break
                    default: return nil
                    }
                } else {
                    guard let v = number() else { return nil }
                    switch k {
                    case 3: guard let t = v.integer else { return nil }; ts = t
                    case 4: value = v.double
                    case -1: break
                    default: return nil
                    }
                }
                skipWhitespace()
                if expect(UInt8(ascii: ",")) { continue }
                guard expect(UInt8(ascii: "}")) else { return nil }
                break
            }
            skipWhitespace()
            guard i == n, let site, let machine, let sensor, let ts, let value else { return nil }
            return Reading(site: site, machine: machine, sensor: sensor, ts: ts, value: value, unit: unit)
        }
    }
}

/// Why an input was rejected. The raw value is what the dead-letter `reason` header carries.
public enum RejectionReason: String, Sendable, CaseIterable {
    case emptyPayload = "empty-payload"
    case payloadTooLarge = "payload-too-large"
    case notJSON = "not-json"
    case wrongType = "wrong-type"
    case nonFinite = "non-finite-value"
    case missingField = "missing-field"
    case invalidTimestamp = "invalid-timestamp"
    case topicMismatch = "topic-mismatch"
    case invalidIdentifier = "invalid-identifier"
}

/// A rejected payload: a reason code for counting, and a sentence for people.
public struct PayloadRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: RejectionReason
    public var detail: String
    public init(_ reason: RejectionReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }
    public var description: String { "\(reason.rawValue): \(detail)" }
}
