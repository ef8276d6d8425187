// Prometheus conventions on the gateway's /metrics (issue 9): promtool reports nothing, every
// family has HELP, forewarn_build_info and the process metrics are there, and the exposition
// ends with a newline.
import Foundation
import Gateway
import ServiceSupport
import Testing
import TestSupport

@Suite struct ExpositionTests {
    @Test func helpIsInsertedBeforeEachTypeLineOnce() {
        let text = "# TYPE a_total counter\na_total 1\n# HELP b already\n# TYPE b gauge\nb 2\n# TYPE c gauge\nc 3\n"
        let out = MetricsExposition.addingHelp(text, help: ["a_total": "The a's.", "b": "other", "c": "back\\slash\nnewline"])
        #expect(out == "# HELP a_total The a's.\n# TYPE a_total counter\na_total 1\n# HELP b already\n# TYPE b gauge\nb 2\n"
                + "# HELP c back\\\\slash\\nnewline\n# TYPE c gauge\nc 3\n")
        #expect(MetricsExposition.addingHelp("", help: [:]) == "")
    }

    @Test func processMetricsFromProcStat() throws {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (for (ew) arn) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 360000 858329088 8545 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"
        let p = try #require(ProcessSnapshot.parse(stat: stat, bootTime: 1_700_000_000, clockTicksPerSecond: 100, pageSize: 4096, openFDs: 23, maxFDs: 1024))
        #expect(p.cpuSeconds == 3.0)  // (250 + 50) / 100
        #expect(p.startTimeSeconds == 1_700_003_600)  // boot + 360000 / 100
        #expect(p.virtualBytes == 858_329_088)
        #expect(p.residentBytes == 8545 * 4096)
        #expect(ProcessSnapshot.parse(stat: "garbage", bootTime: 0, clockTicksPerSecond: 100, pageSize: 4096, openFDs: 0, maxFDs: 0) == nil)
        #expect(ProcessSnapshot.bootTime(procStat: "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n") == 1_700_000_000)
        let now = try #require(ProcessSnapshot.current())
        #expect(now.residentBytes > 0 && now.openFDs > 0 && now.cpuSeconds > 0)
        #expect(abs(now.startTimeSeconds - Date().timeIntervalSince1970) < 24 * 3600, "this test process started recently")
    }

    @Test func everyGatewayMetricInTheSourcesHasHelp() {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/Sources/Gateway"
        let names = metricNamesInSources(sources)
        #expect(names.count >= 15, "\(names)")
        #expect(names.subtracting(GatewayMetricHelp.help.keys).isEmpty, "no HELP for \(names.subtracting(GatewayMetricHelp.help.keys).sorted())")
        #expect(Set(GatewayMetricHelp.help.keys).subtracting(names).isEmpty, "HELP for metrics that do not exist: \(Set(GatewayMetricHelp.help.keys).subtracting(names).sorted())")
    }
}

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite(.serialized) struct GatewayMetricsConventionTests {
    @Test func promtoolFindsNothingToReportOnTheGatewaysMetrics() throws {
        let dir = TestEnvironment.temporaryDirectory("gateway-promtool")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try MosquittoBroker(directory: dir)
        defer { broker.stop() }
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop() }
        // A small journal that drops the oldest, and records that expire after 1 s in librdkafka:
        // with Kafka down, every labelled family appears (drops, delivery errors).
        let gw = try GatewayProcess(directory: dir, mqtt: broker.url, kafka: kafka.bootstrap, stateDir: dir + "/state",
                                    settings: ["journal.max-bytes=32KiB", "journal.full-policy=drop-oldest", "kafka.properties.message.timeout.ms=1000"])
        defer { gw.child.stop() }
        func waitFor(_ what: String, _ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(30)
            while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            return condition()
        }
        // Traffic, so that the labelled families exist too: readings out, and a rejected message.
        let publisher = try TestPublisher(url: broker.url)
        try publisher.publish("factory/s1/m1/vib_rms", #"{"ts": 1700000000000, "value": 2.5}"#)
        try publisher.publish("factory/s1/m1/vib_rms", "not json")
        #expect(waitFor("delivered") { gw.metric("forewarn_gateway_readings_out_total") >= 1 && gw.metric("forewarn_gateway_deadletters_out_total") >= 1 })
        kafka.brokersDown()
        _ = try publishReadings(publisher, count: 1000, machines: 2)
        #expect(publisher.finish())
        #expect(waitFor("dropped") { gw.metric("forewarn_gateway_dropped_total") > 0 }, "journal drops")
        #expect(waitFor("delivery errors") { gw.metric("forewarn_gateway_kafka_delivery_errors_total") > 0 }, "delivery errors")
        let (status, body) = gw.get("/metrics")
        #expect(status == 200)
        #expect(body.hasSuffix("\n"))
        #expect(body.contains("forewarn_gateway_rejected_total{reason=\"not-json\"} 1"), "\(body)")
        #expect(body.contains("forewarn_build_info{version=\""), "\(body)")
        #expect(body.contains("service=\"gateway\""))
        // The conventions both services follow: process metrics, HELP lines, every metric the dashboard queries, promtool.
        let conventions = try metricsConventionProblems(body, service: "gateway", dashboard: repositoryRoot + "/deploy/grafana/forewarn.json",
                                                        otherServicePrefix: "forewarn_detector_", minDashboardMetrics: 15, directory: dir)
        #expect(conventions.problems.isEmpty, "\(conventions.problems.joined(separator: "\n"))")
        if !conventions.promtoolChecked { print("promtool not installed (apt-get install prometheus): skipped the promtool part of this test") }
    }
}
