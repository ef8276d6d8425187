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

    @Test("NAB, nab/ and nab-web/ as one corpus: standard ≥ 59, nab/ ≥ 72, nab-web/ ≥ 52, leave-one-category-out ≥ 58")
    func nab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/nab-web"), "NAB data expected at \(datasets)/nab and nab-web")
        let files = try Evaluator.loadNAB(roots: [NABRoot(directory: datasets + "/nab"), NABRoot(directory: datasets + "/nab-web")])
        let report = Evaluator.evaluateNAB(files)
        #expect(report.files.count == 37)
        let all = report.total(.standard).normalized(.standard)
        let nab = report.total(.standard) { $0.group == "nab" }.normalized(.standard)
        let web = report.total(.standard) { $0.group == "nab-web" }.normalized(.standard)
        #expect(all >= 59, "NAB corpus \(all)")
        #expect(nab >= 72, "nab/ \(nab)")
        #expect(web >= 52, "nab-web/ \(web)")
        let loco = CrossValidation.nab(files: files, defaultReport: report).leftOut.normalized(.standard)
        #expect(loco >= 58, "leave-one-category-out \(loco)")
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
