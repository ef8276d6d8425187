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
        for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"] {
            #expect(body.contains("\n\(name) "), "\(name) missing")
        }
        let families = metricFamilies(body)
        let helped = Set(body.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) })
        #expect(families.subtracting(helped).isEmpty, "no HELP: \(families.subtracting(helped).sorted())")
        // Every detector and process metric the Grafana dashboard queries exists in this output.
        let samples = metricSampleNames(body)
        let dashboard = try dashboardMetricNames(repoRoot + "/deploy/grafana/forewarn.json")
        let mine = dashboard.filter { !$0.hasPrefix("forewarn_gateway_") }
        #expect(mine.count >= 12, "\(mine.sorted())")
        #expect(mine.subtracting(samples).isEmpty, "the dashboard queries metrics the detector does not emit: \(mine.subtracting(samples).sorted())")
        guard let check = try promtoolCheckMetrics(body, directory: dir) else {
            print("promtool not installed (apt-get install prometheus): skipped the promtool part of this test")
            return
        }
        #expect(check.status == 0 && check.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                "promtool check metrics: exit \(check.status)\n\(check.output)")
    }
}
