// log-format text|json (issue 9): json is one object a line with the same fields as text.
import Foundation
import Logging
import ServiceSupport
import Testing
import TestSupport

@Suite struct JSONLogLineTests {
    @Test func oneObjectALineWithEveryFieldEscaped() throws {
        let event = LogEvent(level: .warning, message: "quote \" backslash \\ newline \n tab \t bell \u{07} é", metadata: nil,
                             source: "Gateway", file: "f.swift", function: "f()", line: 1)
        let line = JSONLogLine.render(event: event, label: "forewarn.gateway", metadata: ["machine": "m 1", "msg": "collides", "n": "\(3)"],
                                      now: Date(timeIntervalSince1970: 1_764_597_600.123))
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false, "one line: \(line)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(obj["ts"] == "2025-12-01T14:00:00.123Z")
        #expect(obj["level"] == "warning")
        #expect(obj["logger"] == "forewarn.gateway")
        #expect(obj["source"] == "Gateway")
        #expect(obj["msg"] == "quote \" backslash \\ newline \n tab \t bell \u{07} é")
        #expect(obj["machine"] == "m 1" && obj["n"] == "3")
        #expect(obj["meta.msg"] == "collides", "metadata never overwrites a field")
    }
}

@Suite(.serialized) struct LogFormatTests {
    @Test func theGatewayLogsTextThenJSONAfterAReloadWithTheSameFields() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-logformat")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        let file = dir + "/gateway.yaml"
        try "log-format: text\n".write(toFile: file, atomically: true, encoding: .utf8)
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state", extraArguments: ["--config", file])
        defer { gw.child.stop() }
        #expect(waitUntil(timeout: 10) { gw.child.stderr.contains("forwarder starting") })
        // Text: "<ts> info forewarn.gateway: gateway_id=gw-test state_dir=… [ForewarnCLI] gateway starting".
        let textLine = try #require(gw.child.stderr.split(separator: "\n").first { $0.hasSuffix("gateway starting") })
        #expect(textLine.contains(" info forewarn.gateway: gateway_id=gw-test state_dir=\(dir)/state [ForewarnCLI] gateway starting"), "\(textLine)")

        try "log-format: json\n".write(toFile: file, atomically: true, encoding: .utf8)
        gw.child.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { gw.child.stderr.contains("log-format text → json") }, "\(gw.child.stderr)")
        gw.child.signal(SIGTERM)
        #expect(gw.child.waitForExit(timeout: 20) == 0)

        // From the reload line on (it is written after the format changed), every line is JSON.
        let lines = gw.child.stderr.split(separator: "\n")
        let reload = try #require(lines.firstIndex { $0.contains("log-format text → json") })
        let after = lines[reload...]
        #expect(after.count >= 3, "the reload line and the shutdown lines: \(after)")
        var objects: [[String: Any]] = []
        for line in after {
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(obj != nil, "not a JSON object: \(line)")
            if let obj { objects.append(obj) }
        }
        for obj in objects {
            for field in ["ts", "level", "logger", "source", "msg"] { #expect(obj[field] is String, "\(field) missing in \(obj)") }
        }
        #expect(objects.contains { $0["msg"] as? String == "gateway stopped" && $0["source"] as? String == "ForewarnCLI" && $0["level"] as? String == "info" })
        #expect(objects.contains { ($0["msg"] as? String)?.hasPrefix("forwarder stopped") == true && $0["journal_entries"] as? String == "0" },
                "metadata as fields: \(objects)")
    }
}

@Suite struct LogControlTests {
    @Test func everyLoggerFollowsTheProcessLevelUnlessItSetsItsOwn() {
        let control = LogControl(level: .info)
        var a = Logger(label: "a") { ControlledLogHandler(label: $0, control: control) }
        let b = Logger(label: "b") { ControlledLogHandler(label: $0, control: control) }
        #expect(a.logLevel == .info && b.logLevel == .info)
        control.level = .debug  // what a SIGHUP reload does
        #expect(a.logLevel == .debug && b.logLevel == .debug)
        a.logLevel = .error
        #expect(a.logLevel == .error && b.logLevel == .debug, "one logger's own level does not change the others")
    }
}
