// The published benchmarks, scored by their own protocols with the default configuration: a
// regression guard on detection quality. The data sets are read from ../shared/datasets and
// never copied here. The bounds are today's measured figures (rounded against us), not the
// targets of issue 8, which are not met yet (SKAB FAR, NAB ≥ 70 on the whole corpus).
import Detection
import Evaluation
import Foundation
import Testing

let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets").path

struct BenchmarkDatasetTests {
    @Test("SKAB by protocol (rows after the 400 training rows): F1 ≥ 0.83, FAR ≤ 20.6 %, MAR ≤ 16 %")
    func skab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/skab"), "SKAB data expected at \(datasets)/skab")
        let report = try Evaluator.evaluateSKAB(directory: datasets + "/skab")
        let t = report.total
        #expect(report.files.count == 34)
        #expect(t.tp + t.fp + t.fn + t.tn == 23_801, "scored rows: 34 files minus 400 training rows each")
        #expect(t.f1 >= 0.83, "F1 \(t.f1)")
        #expect(t.far <= 0.206, "FAR \(t.far)")
        #expect(t.mar <= 0.16, "MAR \(t.mar)")
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
        let candidates = Candidates.grid()
        let reports = [report] + candidates.dropFirst().map { Evaluator.evaluateNAB(files, base: $0.config) }
        let loco = CrossValidation.nab(candidates: candidates, reports: reports).leftOut.normalized(.standard)
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
