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
        JSONWriter.appendLiteral(#"{"site":"#, to: &b)
        JSONWriter.appendQuoted(site, to: &b)
        JSONWriter.appendLiteral(#","machine":"#, to: &b)
        JSONWriter.appendQuoted(machine, to: &b)
        JSONWriter.appendLiteral(#","sensor":"#, to: &b)
        JSONWriter.appendQuoted(sensor, to: &b)
        JSONWriter.appendLiteral(#","ts":"#, to: &b)
        JSONWriter.appendInteger(ts, to: &b)
        JSONWriter.appendLiteral(#","value":"#, to: &b)
        JSONWriter.appendNumber(value, to: &b)
        if let unit {
            JSONWriter.appendLiteral(#","unit":"#, to: &b)
            JSONWriter.appendQuoted(unit, to: &b)
        }
        b.append(UInt8(ascii: "}"))
        return b
    }

    /// Decodes the canonical JSON form (what the detector consumes).
    public static func decodeCanonical(_ bytes: [UInt8]) throws(PayloadRejection) -> Reading {
        if let reading = bytes.withUnsafeBufferPointer({ CanonicalReadingScanner.scan($0)?.reading }) { return reading }
        return try decodeCanonicalTree(bytes)
    }

    /// The same, from bytes borrowed for the call (a consumed record, read in place).
    public static func decodeCanonical(_ bytes: UnsafeRawBufferPointer) throws(PayloadRejection) -> Reading {
        if let reading = CanonicalReadingScanner.scan(bytes.assumingMemoryBound(to: UInt8.self))?.reading { return reading }
        return try decodeCanonicalTree(Array(bytes))
    }

    /// The canonical reading in `bytes`, handed to `body` as fields read in place: its strings
    /// are the input's bytes, not Strings (the detector turns them into Strings only when a
    /// machine or sensor is new). The same reading, or the same error, as `decodeCanonical`:
    /// an input the scanner declines is decoded by the general parser and handed over as the
    /// bytes of that reading's Strings.
    public static func withCanonicalFields<R>(_ bytes: UnsafeRawBufferPointer,
                                              _ body: (CanonicalReadingFields) -> R) throws(PayloadRejection) -> R {
        if let fields = CanonicalReadingScanner.scan(bytes.assumingMemoryBound(to: UInt8.self)) { return body(fields) }
        let r = try decodeCanonicalTree(Array(bytes))
        let (site, machine, sensor, unit) = (Array(r.site.utf8), Array(r.machine.utf8), Array(r.sensor.utf8), r.unit.map { Array($0.utf8) })
        return site.withUnsafeBufferPointer { site in
            machine.withUnsafeBufferPointer { machine in
                sensor.withUnsafeBufferPointer { sensor in
                    func call(_ unit: UnsafeBufferPointer<UInt8>?) -> R {
                        body(CanonicalReadingFields(site: site, machine: machine, sensor: sensor, unit: unit, ts: r.ts, value: r.value))
                    }
                    if let unit { return unit.withUnsafeBufferPointer { call($0) } }
                    return call(nil)
                }
            }
        }
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

/// A canonical reading's fields as the scanner found them: the strings are the input's bytes
/// (valid UTF-8, no escapes), valid only as long as the input is.
public struct CanonicalReadingFields {
    public var site: UnsafeBufferPointer<UInt8>
    public var machine: UnsafeBufferPointer<UInt8>
    public var sensor: UnsafeBufferPointer<UInt8>
    public var unit: UnsafeBufferPointer<UInt8>?
    public var ts: Int64
    public var value: Double

    /// The reading, with its strings made.
    public var reading: Reading {
        Reading(site: String(decoding: site, as: UTF8.self), machine: String(decoding: machine, as: UTF8.self),
                sensor: String(decoding: sensor, as: UTF8.self), ts: ts, value: value,
                unit: unit.map { String(decoding: $0, as: UTF8.self) })
    }
}

/// The usual canonical reading, read without building a `JSONValue` tree (the detector decodes
/// one per record): a flat object whose values are strings without escapes and numbers. Anything
/// else (nesting, escapes, literals, a repeated or mistyped field, any malformed byte) gives nil,
/// and `decodeCanonical` then takes `JSONParser`, which returns the same reading or the error.
enum CanonicalReadingScanner {
    /// The position of `key` among site, machine, sensor, ts, value, unit, or -1: compared as
    /// bytes, by length first (a generic `elementsEqual` looked up type metadata on every call,
    /// and a loop over an array of names retained it).
    private static func keyIndex(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        func equals(_ name: StaticString) -> Bool { JSONCursor.bytes(key, equal: name) }
        switch key.count {
        case 2: return equals("ts") ? 3 : -1
        case 4: return equals("site") ? 0 : equals("unit") ? 5 : -1
        case 5: return equals("value") ? 4 : -1
        case 6: return equals("sensor") ? 2 : -1
        case 7: return equals("machine") ? 1 : -1
        default: return -1
        }
    }

    static func scan(_ bytes: [UInt8]) -> Reading? {
        bytes.withUnsafeBufferPointer { scan($0)?.reading }
    }

    /// Whether `s` is well-formed UTF-8, as `String(validating:as: UTF8.self)` decides it (the
    /// Unicode Standard's table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF),
    /// without that generic call's metadata lookups per string.
    static func isValidUTF8(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = s.count
        while i < n {
            let c = s[i]
            if c < 0x80 { i += 1; continue }
            func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool { i + k < n && s[i + k] >= lo && s[i + k] <= hi }
            switch c {
            case 0xC2...0xDF: guard cont(1) else { return false }; i += 2
            case 0xE0: guard cont(1, 0xA0), cont(2) else { return false }; i += 3
            case 0xE1...0xEC, 0xEE...0xEF: guard cont(1), cont(2) else { return false }; i += 3
            case 0xED: guard cont(1, 0x80, 0x9F), cont(2) else { return false }; i += 3
            case 0xF0: guard cont(1, 0x90), cont(2), cont(3) else { return false }; i += 4
            case 0xF1...0xF3: guard cont(1), cont(2), cont(3) else { return false }; i += 4
            case 0xF4: guard cont(1, 0x80, 0x8F), cont(2), cont(3) else { return false }; i += 4
            default: return false
            }
        }
        return true
    }

    /// The primitives (whitespace, strings without escapes, numbers as `JSONParser` reads them)
    /// are `JSONCursor`'s, which the gateway's `PayloadScanner` reads payloads with too.
    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> CanonicalReadingFields? {
        var c = JSONCursor(b)
        var site: UnsafeBufferPointer<UInt8>?, machine: UnsafeBufferPointer<UInt8>?, sensor: UnsafeBufferPointer<UInt8>?
        var unit: UnsafeBufferPointer<UInt8>?
        var ts: Int64?
        var value: Double?
        var seen = 0
        c.skipWhitespace()
        guard c.expect(UInt8(ascii: "{")) else { return nil }
        while true {
            c.skipWhitespace()
            guard let key = c.plainString() else { return nil }
            c.skipWhitespace()
            guard c.expect(UInt8(ascii: ":")) else { return nil }
            c.skipWhitespace()
            let k = keyIndex(key)
            if k >= 0 {
                if seen & (1 << k) != 0 { return nil }
                seen |= 1 << k
            }
            guard let next = c.peek else { return nil }
            if next == UInt8(ascii: "\"") {
                guard let raw = c.plainString(), isValidUTF8(raw) else { return nil }
                switch k {
                case 0: site = raw
                case 1: machine = raw
                case 2: sensor = raw
                case 5: unit = raw
                case -1: break
                default: return nil
                }
            } else {
                guard let v = c.number() else { return nil }
                switch k {
                case 3: guard let t = v.integer else { return nil }; ts = t
                case 4: value = v.double
                case -1: break
                default: return nil
                }
            }
            c.skipWhitespace()
            if c.expect(UInt8(ascii: ",")) { continue }
            guard c.expect(UInt8(ascii: "}")) else { return nil }
            break
        }
        c.skipWhitespace()
        guard c.atEnd, let site, let machine, let sensor, let ts, let value else { return nil }
        return CanonicalReadingFields(site: site, machine: machine, sensor: sensor, unit: unit, ts: ts, value: value)
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
