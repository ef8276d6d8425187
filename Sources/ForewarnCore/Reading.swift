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
    public func canonicalJSON() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("site", site)
        w.field("machine", machine)
        w.field("sensor", sensor)
        w.field("ts", ts)
        w.field("value", value)
        if let unit { w.field("unit", unit) }
        w.endObject()
        return w.bytes
    }

    /// Decodes the canonical JSON form (what the detector consumes).
    public static func decodeCanonical(_ bytes: [UInt8]) throws(PayloadRejection) -> Reading {
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
