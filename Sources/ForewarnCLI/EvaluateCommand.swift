import ArgumentParser
import Detection
import Evaluation
import Foundation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score the detector on labelled data (SKAB, NAB) with fixed default parameters.",
        subcommands: [SKAB.self, NAB.self])

    struct SKAB: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SKAB protocol: F1, FAR, MAR over all files, plus changepoint NAB scores.")
        @Argument(help: "SKAB directory (with valve1/, valve2/, other/).") var directory: String
        @Flag(name: .shortAndLong, help: "One line per file.") var verbose = false

        func run() throws {
            let report = try Evaluator.evaluateSKAB(directory: directory)
            if verbose {
                for f in report.files {
                    let c = f.counts
                    print("\(f.file): F1 \(f3(c.f1)) FAR \(pct(c.far)) MAR \(pct(c.mar))")
                }
            }
            let t = report.total
            print("SKAB (\(report.files.count) files, \(t.tp + t.fp + t.fn + t.tn) scored rows, first 400 rows of each file are warm-up)")
            print("| group | F1 | FAR | MAR |")
            print("| --- | --- | --- | --- |")
            for g in report.groups {
                let c = report.group(g)
                print("| \(g) | \(f3(c.f1)) | \(pct(c.far)) | \(pct(c.mar)) |")
            }
            print("| **all** | **\(f3(t.f1))** | **\(pct(t.far))** | **\(pct(t.mar))** |")
            print("Leaderboard: Conv-AE 0.78 / 13.55% / 28.02%; MSET 0.78 / 39.73% / 14.13%; T²+Q (PCA) 0.76 / 26.62% / 24.92%")
            for p in NABProfile.all {
                let tally = report.changepoint(p)
                print("changepoint NAB \(p.name): \(String(format: "%.2f", tally.normalized(p))) (windows \(tally.windows), detected \(tally.truePositives), false \(tally.falsePositives))")
            }
        }
    }

    struct NAB: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "NAB protocol: standard, reward-low-FP and reward-low-FN profile scores.")
        @Argument(help: "NAB data directory (category/file.csv below it).") var directory: String
        @Option(help: "windows.json with the label windows.") var windows: String
        @Flag(name: .shortAndLong, help: "One line per file.") var verbose = false

        func run() throws {
            let report = try Evaluator.evaluateNAB(directory: directory, windowsPath: windows)
            if verbose {
                for f in report.files {
                    let t = f.tallies["standard"]!
                    print("\(f.file): detections \(f.detections) windows \(t.windows) detected \(t.truePositives) false \(t.falsePositives) score \(String(format: "%.1f", t.normalized(.standard)))")
                }
            }
            print("NAB (\(report.files.count) files)")
            for p in NABProfile.all {
                let t = report.total(p)
                print("\(p.name): \(String(format: "%.2f", t.normalized(p))) (windows \(t.windows), detected \(t.truePositives), false positives \(t.falsePositives))")
            }
            print("Published full-corpus standard: ARTime 74.9, HTM 70.1, CAD OSE 69.9, KNN CAD 58.0, Windowed Gaussian 39.6")
        }
    }
}

struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Replay a SKAB or NAB CSV through the detector: prints timestamp,score,alert,active per row.")
    @Option(help: "CSV file (SKAB ';' or NAB 'timestamp,value'; told by the header).") var replay: String

    func run() throws {
        let series = try CSVLoader.load(path: replay)
        let result = Replay.run(series)
        FileHandle.standardOutput.write(Data(result.csv().utf8))
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Micro-benchmarks. Build with -c release: swift run -c release forewarn bench detector")
    @Argument(help: "What to measure: detector.") var what: String = "detector"
    @Option(help: "Readings to run.") var readings = 20_000_000

    func run() throws {
        guard what == "detector" else { throw ValidationError("unknown benchmark '\(what)' (allowed: detector)") }
        DetectorBenchmark.run(readings: readings)
    }
}

func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
func f3(_ x: Double) -> String { String(format: "%.3f", x) }
