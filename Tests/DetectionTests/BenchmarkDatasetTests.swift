// The published benchmarks, scored by their own protocols with the default configuration: a
// regression guard on detection quality. The data sets are read from ../shared/datasets and
// never copied here. The SKAB bounds are issue 8's targets (met); the NAB bounds are today's
// measured figures (rounded against us), below the target of 70 on the whole corpus.
import Detection
import Evaluation
import Foundation
import Testing

let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets").path

struct BenchmarkDatasetTests {
    @Test("SKAB by protocol (rows after the 400 training rows): F1 ≥ 0.85, FAR ≤ 13.5 %, MAR ≤ 16.5 %, in-sample and leave-one-group-out")
    func skab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/skab"), "SKAB data expected at \(datasets)/skab")
        let series = try Evaluator.loadSKAB(directory: datasets + "/skab")
        let report = Evaluator.evaluateSKAB(series)
        let t = report.total
        #expect(report.files.count == 34)
        #expect(t.tp + t.fp + t.fn + t.tn == 23_801, "scored rows: 34 files minus 400 training rows each")
        #expect(t.f1 >= 0.85, "F1 \(t.f1)")
        #expect(t.far <= 0.135, "FAR \(t.far)")
        #expect(t.mar <= 0.165, "MAR \(t.mar)")
        let logo = CrossValidation.skab(series: series, defaultReport: report).leftOut
        #expect(logo.f1 >= 0.85, "leave-one-group-out F1 \(logo.f1)")
        #expect(logo.far <= 0.135, "leave-one-group-out FAR \(logo.far)")
    }

    @Test("NAB, nab/ and nab-web/ as one corpus: standard ≥ 66.5, nab/ ≥ 72.5, nab-web/ ≥ 63, leave-one-category-out ≥ 61.5")
    func nab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/nab-web"), "NAB data expected at \(datasets)/nab and nab-web")
        let files = try Evaluator.loadNAB(roots: [NABRoot(directory: datasets + "/nab"), NABRoot(directory: datasets + "/nab-web")])
        let report = Evaluator.evaluateNAB(files)
        #expect(report.files.count == 37)
        let all = report.total(.standard).normalized(.standard)
        let nab = report.total(.standard) { $0.group == "nab" }.normalized(.standard)
        let web = report.total(.standard) { $0.group == "nab-web" }.normalized(.standard)
        #expect(all >= 66.5, "NAB corpus \(all)")
        #expect(nab >= 72.5, "nab/ \(nab)")
        #expect(web >= 63, "nab-web/ \(web)")
        let loco = CrossValidation.nab(files: files, defaultReport: report).leftOut.normalized(.standard)
        #expect(loco >= 61.5, "leave-one-category-out \(loco)")
    }

    @Test("SKAB's training rows are not scored: alarms there would not change FAR, normal rows there add no true negatives")
    func skabTrainingRowsNotScored() throws {
        // 400 training rows then 100 scored rows; the last 50 scored rows are a level step labelled anomalous.
        var csv = "datetime;A;B;anomaly;changepoint\n"
        for i in 0..<500 {
            let t = String(format: "2020-01-01 00:%02d:%02d", i / 60, i % 60)
            let noise = Double((i * 7919) % 13) / 13.0
            let step = i >= 450 ? 40.0 : 0
            csv += "\(t);\(1 + noise + step);\(2 + noise * 0.5 + step);\(i >= 450 ? 1 : 0);0\n"
        }
        let s = try CSVLoader.parse(csv, name: "synthetic/0.csv")
        let r = Evaluator.scoreSKAB(s)
        let c = r.counts
        #expect(c.tp + c.fp + c.fn + c.tn == 100, "only the 100 rows after the training part are scored")
        #expect(c.fp + c.tn == 50)
        #expect(c.tp > 0)
    }
}

struct PublishedResultsTests {
    /// A NAB root with one 100-row file (window on rows 40...59) and a results folder for detector `det`.
    func fixture(scores: [Double]) throws -> (root: String, results: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("published-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/nab/data/cat", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/results/det/cat", withIntermediateDirectories: true)
        func stamp(_ i: Int) -> String { String(format: "2020-01-01 %02d:%02d:00", (i * 5) / 60, (i * 5) % 60) }
        var data = "timestamp,value\n"
        var results = "timestamp,value,anomaly_score,label\n"
        for i in 0..<100 { data += "\(stamp(i)),1.0\n" }
        for (i, s) in scores.enumerated() { results += "\(stamp(i)),1.0,\(s),0\n" }
        try data.write(toFile: dir + "/nab/data/cat/x.csv", atomically: true, encoding: .utf8)
        try results.write(toFile: dir + "/results/det/cat/det_x.csv", atomically: true, encoding: .utf8)
        try "{\"cat/x.csv\": [[\"\(stamp(40)).000000\", \"\(stamp(59)).000000\"]]}".write(toFile: dir + "/nab/windows.json", atomically: true, encoding: .utf8)
        return (dir + "/nab", dir + "/results/det")
    }

    @Test("Published NAB results are scored by the same rules: rows at or above the threshold are detections, probation rows are not scored")
    func scoresPublishedDetections() throws {
        var scores = [Double](repeating: 0.1, count: 100)
        scores[5] = 0.9   // in the probation period (15 rows): not scored
        scores[45] = 0.9  // in the window: the true positive
        scores[50] = 0.5  // at the threshold, later in the same window: ignored
        scores[80] = 0.6  // after the window: a false positive
        let f = try fixture(scores: scores)
        let files = try Evaluator.loadNAB(roots: [NABRoot(directory: f.root)])
        let r = try Evaluator.evaluatePublishedNAB(files, directory: f.results, threshold: 0.5)
        let t = try #require(r.files.first?.tallies["standard"])
        #expect(r.files.first?.detections == 3)
        #expect(t.windows == 1 && t.truePositives == 1 && t.falsePositives == 1)
        // Row 45 of window 40...59: sigma(-15/20)/sigma(-1) = 0.96699; row 80, 21 rows after the
        // window's end: 0.11 * sigma(21/19) = -0.10913.
        #expect(abs(t.raw - 0.85786) < 1e-4, "raw \(t.raw)")
    }

    @Test("A results file whose rows do not match the data file is refused, naming the file")
    func refusesMismatchedRows() throws {
        let f = try fixture(scores: [Double](repeating: 0.1, count: 99))
        let files = try Evaluator.loadNAB(roots: [NABRoot(directory: f.root)])
        let e = #expect(throws: DatasetError.self) { try Evaluator.evaluatePublishedNAB(files, directory: f.results, threshold: 0.5) }
        #expect(e.map { "\($0)" }?.contains("det_x.csv") == true)
        #expect(e.map { "\($0)" }?.contains("99 rows, but the data file has 100") == true)
    }
}
