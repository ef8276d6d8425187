/// Turns one MQTT message into readings, following DESIGN.md's three input forms:
/// a plain number (`"3.2"`), a JSON object (`{"ts","value","unit"?,"seq"?}`) and a
/// JSON batch (`{"ts","values":{sensor: number}}`). Anything else is rejected with a reason.
public struct PayloadParser: Sendable {
    public var template: TopicTemplate
    public var defaultSite: String
    public var maxPayloadBytes: Int

    /// Readings must be stamped between 1970 and 2100 (epoch milliseconds).
    public static let maxTimestamp: Int64 = 4_102_444_800_000

    public init(template: TopicTemplate, defaultSite: String = "default", maxPayloadBytes: Int = 65_536) {
        self.template = template
        self.defaultSite = defaultSite
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// Parses `payload` received on `topic` at `receivedAt` (epoch ms).
    public func parse(topic: String, payload: [UInt8], receivedAt: Int64) throws(PayloadRejection) -> [Reading] {
        try parseMessage(topic: topic, payload: payload, receivedAt: receivedAt).readings
    }

    /// The readings of one message, and whether the sender stamped them (`ts` present).
    /// A stamped message that arrives twice is a redelivery, which the gateway can drop.
    public struct ParsedMessage: Sendable, Equatable {
        public var readings: [Reading]
        public var stamped: Bool
    }

    public func parseMessage(topic: String, payload: [UInt8], receivedAt: Int64) throws(PayloadRejection) -> ParsedMessage {
        let fields = try template.match(topic)
        if let quick = payload.withUnsafeBufferPointer({ quickMessage(fields, $0, receivedAt: receivedAt) }) { return quick }
        return try parseTree(topic: topic, fields: fields, payload: payload, receivedAt: receivedAt)
    }

    /// The same, from a payload borrowed for the call (libmosquitto's buffer): the usual payloads
    /// are read in place; only one `PayloadScanner` declines is copied for the general path.
    public func parseMessage(topic: String, payload: UnsafeRawBufferPointer, receivedAt: Int64) throws(PayloadRejection) -> ParsedMessage {
        let fields = try template.match(topic)
        if let quick = quickMessage(fields, payload.assumingMemoryBound(to: UInt8.self), receivedAt: receivedAt) { return quick }
        return try parseTree(topic: topic, fields: fields, payload: Array(payload), receivedAt: receivedAt)
    }

    /// The general path alone, without `PayloadScanner`: what the fuzz target compares it with.
    public func parseMessageWithoutScanner(topic: String, payload: [UInt8], receivedAt: Int64) throws(PayloadRejection) -> ParsedMessage {
        try parseTree(topic: topic, fields: try template.match(topic), payload: payload, receivedAt: receivedAt)
    }

    /// A single reading that `PayloadScanner` reads in place, or nil: the general path decides.
    private func quickMessage(_ fields: TopicTemplate.Fields, _ payload: UnsafeBufferPointer<UInt8>, receivedAt: Int64) -> ParsedMessage? {
        guard !payload.isEmpty, payload.count <= maxPayloadBytes, let sensor = fields.sensor else { return nil }
        let site = fields.site ?? defaultSite
        let first = payload.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D })
        if first != UInt8(ascii: "{") {
            guard let v = PayloadScanner.plainNumber(payload) else { return nil }
            return ParsedMessage(readings: [Reading(site: site, machine: fields.machine, sensor: sensor, ts: receivedAt, value: v)], stamped: false)
        }
        guard let s = PayloadScanner.object(payload) else { return nil }
        let unit = s.unit.map { String(decoding: $0, as: UTF8.self) }
        let reading = Reading(site: site, machine: fields.machine, sensor: sensor, ts: s.ts ?? receivedAt, value: s.value, unit: unit)
        return ParsedMessage(readings: [reading], stamped: s.ts != nil)
    }

    /// Every form, through a `JSONValue` tree; every rejection is made here.
    private func parseTree(topic: String, fields: TopicTemplate.Fields, payload: [UInt8], receivedAt: Int64) throws(PayloadRejection) -> ParsedMessage {
        let site = fields.site ?? defaultSite
        guard !payload.isEmpty else { throw PayloadRejection(.emptyPayload, "payload is empty") }
        guard payload.count <= maxPayloadBytes else {
            throw PayloadRejection(.payloadTooLarge, "payload is \(payload.count) bytes, the limit is \(maxPayloadBytes)")
        }

        let first = payload.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D })
        if first != UInt8(ascii: "{") {
            // Plain number form. JSON number grammar only: no NaN, Infinity, hex or spaces inside.
            let value: JSONValue
            do { value = try JSONParser.parse(payload) } catch {
                let text = String(decoding: payload.prefix(16), as: UTF8.self).lowercased()
                if text.contains("nan") || text.contains("inf") {
                    throw PayloadRejection(.nonFinite, "payload '\(text.prefix(16))' is not a finite number")
                }
                throw PayloadRejection(.notJSON, "payload is neither a number nor a JSON object (\(error))")
            }
            guard let v = value.doubleValue else {
                throw PayloadRejection(.wrongType, "payload is a JSON \(value.typeName), expected a number or an object")
            }
            guard let sensor = fields.sensor else {
                throw PayloadRejection(.missingField, "topic '\(topic)' names no sensor, so the payload must be a batch with 'values'")
            }
            return ParsedMessage(readings: [Reading(site: site, machine: fields.machine, sensor: sensor, ts: receivedAt, value: v)], stamped: false)
        }

        let json: JSONValue
        do { json = try JSONParser.parse(payload) } catch {
            let text = String(decoding: payload, as: UTF8.self)
            if text.contains("NaN") || text.contains("Infinity") {
                throw PayloadRejection(.nonFinite, "payload holds NaN or Infinity, which are not finite numbers (\(error))")
            }
            throw PayloadRejection(.notJSON, "payload is not valid JSON: \(error)")
        }
        let ts = try timestamp(json["ts"], default: receivedAt)
        let stamped: Bool
        if case .integer? = json["ts"] { stamped = true } else { stamped = false }
        let unit: String?
        switch json["unit"] {
        case nil, .null?: unit = nil
        case let .string(u)?:
            guard u.utf8.count <= 32 else { throw PayloadRejection(.wrongType, "'unit' is longer than 32 bytes") }
            unit = u
        case let other?: throw PayloadRejection(.wrongType, "'unit' must be a string, got \(other.typeName)")
        }
        if let seq = json["seq"] {
            guard case .integer = seq else { throw PayloadRejection(.wrongType, "'seq' must be an integer, got \(seq.typeName)") }
        }

        if let values = json["values"] {
            guard case let .object(members) = values else {
                throw PayloadRejection(.wrongType, "'values' must be an object of sensor: number, got \(values.typeName)")
            }
            guard !members.isEmpty else { throw PayloadRejection(.missingField, "'values' is empty") }
            var readings: [Reading] = []
            readings.reserveCapacity(members.count)
            for (sensor, v) in members {
                try Identifier.validate(sensor, field: "sensor")
                readings.append(Reading(site: site, machine: fields.machine, sensor: sensor, ts: ts,
                                        value: try number(v, name: "values.\(sensor)"), unit: nil))
            }
            return ParsedMessage(readings: readings, stamped: stamped)
        }
        guard let v = json["value"] else {
            throw PayloadRejection(.missingField, "JSON payload has neither 'value' nor 'values'")
        }
        guard let sensor = fields.sensor else {
            throw PayloadRejection(.missingField, "topic '\(topic)' names no sensor, so the payload must be a batch with 'values'")
        }
        return ParsedMessage(readings: [Reading(site: site, machine: fields.machine, sensor: sensor, ts: ts, value: try number(v, name: "value"), unit: unit)], stamped: stamped)
    }

    private func number(_ v: JSONValue, name: String) throws(PayloadRejection) -> Double {
        switch v {
        case let .integer(i): return Double(i)
        case let .number(d):
            guard d.isFinite else { throw PayloadRejection(.nonFinite, "'\(name)' is not finite") }
            return d
        case let .string(s) where ["nan", "inf", "-inf", "infinity", "-infinity"].contains(s.lowercased()):
            throw PayloadRejection(.nonFinite, "'\(name)' is \(s), not a finite number")
        default: throw PayloadRejection(.wrongType, "'\(name)' must be a number, got \(v.typeName)")
        }
    }

    private func timestamp(_ v: JSONValue?, default receivedAt: Int64) throws(PayloadRejection) -> Int64 {
        switch v {
        case nil, .null?: return receivedAt
        case let .integer(t)?:
            guard t >= 0, t <= Self.maxTimestamp else {
                throw PayloadRejection(.invalidTimestamp, "'ts' \(t) is outside 1970..2100 in epoch milliseconds")
            }
            return t
        case let other?:
            throw PayloadRejection(.invalidTimestamp, "'ts' must be an integer of epoch milliseconds, got \(other.typeName)")
        }
    }
}

/// FNV-1a, 64 bits: a cheap fingerprint of a message (topic and payload) for redelivery checks.
public func messageDigest(topic: String, payload: [UInt8]) -> Int64 {
    payload.withUnsafeBytes { messageDigest(topic: topic, payload: $0) }
}

/// The same, of a payload borrowed for the call.
public func messageDigest(topic: String, payload: UnsafeRawBufferPointer) -> Int64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in topic.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    h = (h ^ 0xFF) &* 0x100_0000_01b3
    for b in payload { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return Int64(bitPattern: h)
}
