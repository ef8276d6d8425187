import ForewarnCore
import Testing

struct PayloadParserTests {
    let parser = PayloadParser(template: try! TopicTemplate("factory/{site}/{machine}/{sensor}"), maxPayloadBytes: 1024)

    func parse(_ payload: String, topic: String = "factory/s1/m7/vib_rms") throws(PayloadRejection) -> [Reading] {
        try parser.parse(topic: topic, payload: Array(payload.utf8), receivedAt: 1_000)
    }

    func rejection(_ payload: String, topic: String = "factory/s1/m7/vib_rms") -> PayloadRejection? {
        do { _ = try parse(payload, topic: topic); return nil } catch { return error }
    }

    @Test func plainNumberUsesReceiveTime() throws {
        #expect(try parse(" 3.2\n") == [Reading(site: "s1", machine: "m7", sensor: "vib_rms", ts: 1_000, value: 3.2)])
        #expect(try parse("-4") == [Reading(site: "s1", machine: "m7", sensor: "vib_rms", ts: 1_000, value: -4)])
    }

    @Test func jsonObjectWithTimestampUnitAndSeq() throws {
        let r = try parse(#"{"ts": 1700000000123, "value": 3.2, "unit": "mm/s", "seq": 17}"#)
        #expect(r == [Reading(site: "s1", machine: "m7", sensor: "vib_rms", ts: 1_700_000_000_123, value: 3.2, unit: "mm/s")])
        let stamped = try parser.parseMessage(topic: "factory/s1/m7/vib_rms", payload: Array(#"{"ts": 5, "value": 1}"#.utf8), receivedAt: 9)
        #expect(stamped.stamped)
        #expect(try !parser.parseMessage(topic: "factory/s1/m7/vib_rms", payload: Array(#"{"value": 1}"#.utf8), receivedAt: 9).stamped)
    }

    @Test func batchNamesItsSensors() throws {
        let r = try parse(#"{"ts": 1700000000000, "values": {"vib_rms": 3.2, "temp_c": 61.5}}"#, topic: "factory/s1/m7/batch")
        #expect(r.map(\.sensor) == ["vib_rms", "temp_c"])
        #expect(r.map(\.value) == [3.2, 61.5])
        #expect(r.allSatisfy { $0.ts == 1_700_000_000_000 && $0.machine == "m7" })
    }

    @Test("rejections carry a reason code and a sentence", arguments: [
        ("", RejectionReason.emptyPayload),
        ("hello", .notJSON),
        ("NaN", .nonFinite),
        (#"{"value": NaN}"#, .nonFinite),
        (#"{"value": "3.2"}"#, .wrongType),
        (#"{"value": true}"#, .wrongType),
        (#"{"ts": "yesterday", "value": 1}"#, .invalidTimestamp),
        (#"{"ts": -5, "value": 1}"#, .invalidTimestamp),
        (#"{"ts": 1.5, "value": 1}"#, .invalidTimestamp),
        (#"{"unit": "mm/s"}"#, .missingField),
        (#"{"values": {}}"#, .missingField),
        (#"{"values": {"bad sensor": 1}}"#, .invalidIdentifier),
        (#"{"value": 1} trailing"#, .notJSON),
        ("[1,2]", .wrongType),
        (#"{"value": 1e999}"#, .notJSON),
    ])
    func rejects(payload: String, reason: RejectionReason) {
        let r = rejection(payload)
        #expect(r?.reason == reason, "payload \(payload)")
        #expect(!(r?.detail.isEmpty ?? true))
    }

    @Test func hugePayloadIsRejectedWithItsSize() {
        let r = rejection(String(repeating: "1", count: 2000))
        #expect(r?.reason == .payloadTooLarge)
        #expect(r?.detail == "payload is 2000 bytes, the limit is 1024")
    }

    @Test func topicMustMatchTemplate() {
        #expect(rejection("1", topic: "factory/s1/m7")?.reason == .topicMismatch)
        #expect(rejection("1", topic: "plant/s1/m7/vib")?.reason == .topicMismatch)
        #expect(rejection("1", topic: "factory/s1/m 7/vib")?.reason == .invalidIdentifier)
        #expect(rejection("1", topic: "factory/s1/m7/vib")?.detail == nil)
    }

    @Test func canonicalJSONIsStableAndRoundTrips() throws {
        let r = Reading(site: "s1", machine: "m7", sensor: "vib_rms", ts: 1_700_000_000_123, value: 3.25, unit: "mm/s")
        #expect(String(decoding: r.canonicalJSON(), as: UTF8.self) == #"{"site":"s1","machine":"m7","sensor":"vib_rms","ts":1700000000123,"value":3.25,"unit":"mm/s"}"#)
        #expect(try Reading.decodeCanonical(r.canonicalJSON()) == r)
        let noUnit = Reading(site: "s1", machine: "m7", sensor: "t", ts: 1, value: 61)
        #expect(String(decoding: noUnit.canonicalJSON(), as: UTF8.self) == #"{"site":"s1","machine":"m7","sensor":"t","ts":1,"value":61}"#)
    }

    /// canonicalJSON writes its bytes directly; they must be exactly what the general writer gives.
    @Test func canonicalJSONMatchesTheGeneralWriter() {
        let values: [Double] = [0, -0.0, 61, -3, 3.25, 0.1, 1e-7, 123456.789, 1e15, 1e16, -2.5e300, .nan, .infinity, .leastNonzeroMagnitude]
        let units: [String?] = [nil, "mm/s", "°C", "a\"b\\c\n\u{01}"]
        for (i, v) in values.enumerated() {
            let r = Reading(site: "s\"1", machine: "m\u{7F}7", sensor: "vib_rms", ts: [0, -1, 1_700_000_000_123, .max, .min][i % 5], value: v, unit: units[i % units.count])
            var w = JSONWriter()
            w.beginObject()
            w.field("site", r.site)
            w.field("machine", r.machine)
            w.field("sensor", r.sensor)
            w.field("ts", r.ts)
            w.field("value", r.value)
            if let unit = r.unit { w.field("unit", unit) }
            w.endObject()
            #expect(String(decoding: r.canonicalJSON(), as: UTF8.self) == w.string, "value \(v)")
        }
        var w = JSONWriter()
        w.beginArray(); w.number(61); w.number(0.1); w.number(.nan); w.integer(-42); w.endArray()
        #expect(w.string == "[61,0.1,null,-42]")
    }

    static let scannerCases: [String] = [
        // Read in place by PayloadScanner.
        "3.2", " -4 ", "0", "-0", "1e3", "2.5E-3", "123456789012345678", "1234567890123456789012",
        #"{"ts": 1700000000123, "value": 3.2, "unit": "mm/s", "seq": 17}"#, #"{"value":1}"#, #"{"value": -0.0}"#,
        #"{"ts": null, "value": 7, "unit": null}"#, #" {"other": "x", "n": 1.5, "z": null, "value": 2} "#,
        #"{"ts": 0, "value": 1}"#, #"{"ts": 4102444800000, "value": 1}"#, #"{"value": 1, "unit": "ünit"}"#,
        #"{"value": 1, "other": 1, "other": "again"}"#, #"{"value": 12345678901234567890123}"#,
        // Left to the general path, which accepts or rejects them.
        "", "   ", "nan", "Infinity", "01", "1.", "-", "1e400", "true", #""3""#, "[1]",
        #"{}"#, #"{"value": 1,}"#, #"{"value": "3"}"#, #"{"value": null}"#, #"{"value": nan}"#, #"{"value": 1e999}"#,
        #"{"ts": 1.5, "value": 1}"#, #"{"ts": -1, "value": 1}"#, #"{"ts": 4102444800001, "value": 1}"#, #"{"ts": "5", "value": 1}"#,
        #"{"ts": 99999999999999999999, "value": 1}"#, #"{"ts": 1, "ts": 2, "value": 1}"#, #"{"value": 1, "value": 2}"#,
        #"{"value": 1, "unit": "0123456789012345678901234567890123"}"#, #"{"value": 1, "unit": 5}"#, #"{"value": 1, "seq": 1.5}"#,
        #"{"value": 1, "seq": null}"#, #"{"value": 1, "unit": "a\"b"}"#, #"{"val\u0075e": 1}"#, #"{"value": 1, "x": true}"#,
        #"{"value": 1, "x": {"y": 1}}"#, #"{"value": 1, "x": [1]}"#, #"{"ts": 5, "values": {"a": 1}}"#, #"{"values": 1, "value": 2}"#,
        #"{"value": 1} x"#, #"{"value" 1}"#, #"{"value": 1"#, #"{"value": 1, "unit": "mm/s}"#, "{\"value\": 1, \"u\": \"a\u{1}\"}",
    ]

    @Test("the scanner reads what the general path reads, or leaves the payload to it", arguments: scannerCases)
    func scannerAgreesWithTheGeneralPath(_ payload: String) {
        for topic in ["factory/s1/m7/vib_rms", "factory/s1/m7/bad topic"] {
            let general = Result { () throws(PayloadRejection) in try parser.parseMessageWithoutScanner(topic: topic, payload: Array(payload.utf8), receivedAt: 9) }
            let array = Result { () throws(PayloadRejection) in try parser.parseMessage(topic: topic, payload: Array(payload.utf8), receivedAt: 9) }
            let borrowed = Array(payload.utf8).withUnsafeBytes { b in
                Result { () throws(PayloadRejection) in try parser.parseMessage(topic: topic, payload: b, receivedAt: 9) }
            }
            #expect(array == general)
            #expect(borrowed == general)
        }
    }

    @Test func scannerLeavesInvalidUTF8ToTheGeneralPath() {
        for payload: [UInt8] in [[0x7B, 0x22, 0x76, 0x61, 0x6C, 0x75, 0x65, 0x22, 0x3A, 0x31, 0x2C, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D],
                                 Array(#"{"value":1,"unit":""#.utf8) + [0xC0, 0x80] + Array(#""}"#.utf8)] {
            let general = Result { () throws(PayloadRejection) in try parser.parseMessageWithoutScanner(topic: "factory/s1/m7/v", payload: payload, receivedAt: 9) }
            let quick = Result { () throws(PayloadRejection) in try parser.parseMessage(topic: "factory/s1/m7/v", payload: payload, receivedAt: 9) }
            #expect(quick == general)
            #expect(throws: PayloadRejection.self) { try general.get() }
        }
    }

    @Test func messageDigestDependsOnTopicAndPayload() {
        let a = messageDigest(topic: "t/1", payload: Array("x".utf8))
        #expect(a == messageDigest(topic: "t/1", payload: Array("x".utf8)))
        #expect(a != messageDigest(topic: "t/2", payload: Array("x".utf8)))
        #expect(a != messageDigest(topic: "t/1", payload: Array("y".utf8)))
        #expect(Array("x".utf8).withUnsafeBytes { messageDigest(topic: "t/1", payload: $0) } == a)
    }
}

struct TopicTemplateTests {
    @Test func subscriptionFilterReplacesFields() throws {
        #expect(try TopicTemplate("factory/{site}/{machine}/{sensor}").subscriptionFilter == "factory/+/+/+")
        #expect(try TopicTemplate("plant/line/{line}/{machine}/{sensor}").subscriptionFilter == "plant/line/+/+/+")
    }

    @Test func extraFieldsAreIgnoredAndSiteDefaults() throws {
        let t = try TopicTemplate("plant/{line}/{machine}/{sensor}")
        let f = try t.match("plant/l2/m9/temp")
        #expect(f == TopicTemplate.Fields(site: nil, machine: "m9", sensor: "temp"))
    }

    @Test func invalidTemplatesAreRefused() {
        #expect(throws: TopicTemplate.InvalidTemplate.self) { try TopicTemplate("factory/{site}/{sensor}") }
        #expect(throws: TopicTemplate.InvalidTemplate.self) { try TopicTemplate("factory/+/{machine}") }
        #expect(throws: TopicTemplate.InvalidTemplate.self) { try TopicTemplate("factory//{machine}") }
        #expect(throws: TopicTemplate.InvalidTemplate.self) { try TopicTemplate("a/{machine}/{machine}") }
    }
}

struct JSONTests {
    @Test func parsesNestedValuesExactly() throws {
        let v = try JSONParser.parse(#"{"a": [1, 2.5, "x\n\u00e9\ud83d\ude00"], "b": null, "c": false}"#)
        #expect(v["a"] == .array([.integer(1), .number(2.5), .string("x\né😀")]))
        #expect(v["b"] == .null)
        #expect(v["c"] == .bool(false))
    }

    @Test func rejectsDeepNestingAndBadNumbers() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("01") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("1.") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#""unterminated"#) }
    }

    @Test func integersAreWrittenAsTheirStrings() {
        for v: Int64 in [0, 1, -1, 9, 10, -10, 99, 100, 1_796_000_000_123, .max, .min, .max - 1, .min + 1] {
            var b: [UInt8] = [0x41]
            JSONWriter.appendInteger(v, to: &b)
            #expect(b == [0x41] + Array(String(v).utf8))
        }
    }

    @Test func quotedStringsWithoutEscapesAreCopied() {
        for s in ["m7", "ünit", "", "a b/c", "\u{7F}"] {
            var b: [UInt8] = []
            JSONWriter.appendQuoted(s, to: &b)
            #expect(b == Array("\"\(s)\"".utf8))
        }
    }

    @Test func writerEscapes() {
        var w = JSONWriter()
        w.beginObject(); w.field("k\"", "a\\b\n\u{1}"); w.endObject()
        #expect(w.string == #"{"k\"":"a\\b\n\u0001"}"#)
    }
}
