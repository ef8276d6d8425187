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

    @Test func messageDigestDependsOnTopicAndPayload() {
        let a = messageDigest(topic: "t/1", payload: Array("x".utf8))
        #expect(a == messageDigest(topic: "t/1", payload: Array("x".utf8)))
        #expect(a != messageDigest(topic: "t/2", payload: Array("x".utf8)))
        #expect(a != messageDigest(topic: "t/1", payload: Array("y".utf8)))
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

    @Test func writerEscapes() {
        var w = JSONWriter()
        w.beginObject(); w.field("k\"", "a\\b\n\u{1}"); w.endObject()
        #expect(w.string == #"{"k\"":"a\\b\n\u0001"}"#)
    }
}
