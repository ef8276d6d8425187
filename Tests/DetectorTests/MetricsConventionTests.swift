// Prometheus conventions on the detector's /metrics (issue 9): promtool reports nothing, every
// family has HELP, forewarn_build_info and the process metrics are there.
import Detector
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct DetectorMetricsConventionTests {
    @Test func everyDetectorMetricInTheSourcesHasHelp() {
        let names = metricNamesInSources(repoRoot + "/Sources/Detector")
        #expect(names.count >= 9, "\(names)")
        #expect(names.subtracting(DetectorMetricHelp.help.keys).isEmpty, "no HELP for \(names.subtracting(DetectorMetricHelp.help.keys).sorted())")
        #expect(Set(DetectorMetricHelp.help.keys).subtracting(names).isEmpty)
    }

    @Test func promtoolFindsNothingToReportOnTheDetectorsMetrics() throws {
        let dir = TestEnvironment.temporaryDirectory("detector-promtool")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kafka = try DevKafka(directory: dir, partitions: 1)
        defer { kafka.stop() }
        let port = freePort()
        let detector = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                        arguments: ["detector", "--kafka", kafka.bootstrap, "--models", repoRoot + "/models", "--state-dir", dir + "/state",
                                                    "--http", "127.0.0.1:\(port)", "--set", "checkpoint-interval=500ms"],
                                        directory: dir, name: "detector")
        defer { detector.stop() }
        try #require(waitForPort(port), "\(detector.stderr)")
        // 500 readings a sensor with a fault from 420 on: scored readings, an alert, lag, the model timer.
        try produce(pumpReadings(machine: "p1", from: 0, count: 500, fault: 420..<500), bootstrap: kafka.bootstrap, firstSeq: 1)
        // The newest reading of p1 is at t0 + 499 s (published with the lag, every 5 s).
        let lastReading = "forewarn_detector_machine_last_reading_timestamp_seconds{machine=\"p1\"} 1767226099"
        let deadline = Date().addingTimeInterval(60)
        var body = ""
        while Date() < deadline {
            body = httpGet(port: port, path: "/metrics").1
            if body.contains("forewarn_detector_alerts_total{") && body.contains("forewarn_detector_readings_total 2000")
                && body.contains(lastReading) && body.contains("forewarn_detector_partition_lag{") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(body.contains("forewarn_detector_alerts_total{"), "\(body)")
        #expect(body.contains(lastReading), "\(body)")
        #expect(body.hasSuffix("\n"))
        #expect(body.contains("forewarn_build_info{version=\"") && body.contains("service=\"detector\""))
        // The conventions both services follow: process metrics, HELP lines, every metric the dashboard queries, promtool.
        let conventions = try metricsConventionProblems(body, service: "detector", dashboard: repoRoot + "/deploy/grafana/forewarn.json",
                                                        otherServicePrefix: "forewarn_gateway_", minDashboardMetrics: 12, directory: dir)
        #expect(conventions.problems.isEmpty, "\(conventions.problems.joined(separator: "\n"))")
        if !conventions.promtoolChecked { print("promtool not installed (apt-get install prometheus): skipped the promtool part of this test") }
    }
}
