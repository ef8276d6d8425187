// Cost of the gateway's per-message work before the journal: the topic match, the payload
// parse and the canonical JSON written to the journal, against copying the same messages'
// bytes (the floor any intake pays) in the same run, so machine noise affects both alike.
import ForewarnCore
import Foundation

enum IntakeBenchmark {
    static func run(messages n: Int) throws {
        let template = try TopicTemplate("factory/{site}/{machine}/{sensor}")
        let parser = PayloadParser(template: template, defaultSite: "site", maxPayloadBytes: 65_536)
        // The load publisher's messages (tools/mqtt-qos1-publisher.c): 50 machines, 4 sensors.
        let sensors = ["vib_rms", "temp", "current", "pressure"]
        let messages: [(String, [UInt8])] = (0..<200).map { i in
            let topic = "factory/s1/m\(String(format: "%03d", i % 50 + 1))/\(sensors[i % 4])"
            let payload = "{\"ts\": \(1_796_000_000_000 + i), \"value\": \(String(format: "%.3f", 50 + Double(i) * 0.01)), \"unit\": \"mm/s\"}"
            return (topic, Array(payload.utf8))
        }
        let clock = ContinuousClock()

        var copied = 0
        let t0 = clock.now
        for i in 0..<n {
            let (topic, payload) = messages[i % messages.count]
            let copy = Array(topic.utf8) + payload
            copied &+= copy.count
        }
        let baseline = clock.now - t0

        var matched = 0
        let t1 = clock.now
        for i in 0..<n { matched &+= try template.match(messages[i % messages.count].0).machine.utf8.count }
        let match = clock.now - t1

        var written = 0
        let t2 = clock.now
        for i in 0..<n {
            let (topic, payload) = messages[i % messages.count]
            let parsed = try parser.parseMessage(topic: topic, payload: payload, receivedAt: 1_796_000_000_000)
            for r in parsed.readings { written &+= r.canonicalJSON().count }
        }
        let parse = clock.now - t2

        func line(_ name: String, _ d: Duration) -> String {
            let s = d.inSeconds
            return "\(name): \(Int(Double(n) / s)) messages/s, \(String(format: "%.0f", s / Double(n) * 1e9)) ns/message (\(String(format: "%.3f", s)) s)"
        }
        print("messages: \(n)")
        print(line("baseline, copy topic and payload", baseline) + " [\(copied > 0 ? "ok" : "?")]")
        print(line("topic match", match) + " [\(matched > 0 ? "ok" : "?")]")
        print(line("parse and canonical JSON", parse) + " [\(written > 0 ? "ok" : "?")]")
    }
}
