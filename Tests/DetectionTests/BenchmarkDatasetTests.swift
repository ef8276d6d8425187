// The published benchmarks, scored with the default configuration: a regression guard on
// detection quality. The data sets are read from ../shared/datasets and never copied here.
import Detection
import Evaluation
import Foundation
import Testing

let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets").path

struct BenchmarkDatasetTests {
    @Test("SKAB: F1 ≥ 0.82 with FAR ≤ 15% over all labelled files (leaderboard best: Conv-AE 0.78 / 13.6%)")
    func skab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/skab"), "SKAB data expected at \(datasets)/skab")
        let report = try Evaluator.evaluateSKAB(directory: datasets + "/skab")
        let t = report.total
        #expect(report.files.count == 34)
        #expect(t.f1 >= 0.82, "F1 \(t.f1)")
        #expect(t.far <= 0.15, "FAR \(t.far)")
        #expect(t.mar <= 0.25, "MAR \(t.mar)")
    }

    @Test("NAB: standard-profile score ≥ 70 on the files in shared/ (HTM 70.1 on the full corpus)")
    func nab() throws {
        try #require(FileManager.default.fileExists(atPath: datasets + "/nab"), "NAB data expected at \(datasets)/nab")
        let report = try Evaluator.evaluateNAB(directory: datasets + "/nab/data", windowsPath: datasets + "/nab/windows.json")
        let standard = report.total(.standard).normalized(.standard)
        #expect(report.files.count == 13)
        #expect(standard >= 70, "NAB standard \(standard)")
    }
}
