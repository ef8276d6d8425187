import ArgumentParser
import Detection
import Detector
import Evaluation
import FleetEvaluation
import ForewarnCore
import Foundation
import Kafka
import Logging
import Simulator

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score the detector on labelled data (SKAB, NAB) with fixed default parameters.",
        subcommands: [SKAB.self, NAB.self, Simulation.self, Truth.self])

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

extension EvaluateCommand {
    /// Runs the simulator's physics straight into the detector models, in process, and scores
    /// the alerts against the truth: the offline twin of the demo's MQTT → Kafka chain.
    struct Simulation: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score the detector on a simulated fleet: detection before failure, lead time, false alerts per machine-day.")
        @Option(help: "Scenario file (simulators/*.yaml).") var scenario: String
        @Option(help: "Simulated duration, e.g. 6h, 1d (default: the scenario's).") var duration: String?
        @Option(help: "Seed (default: the scenario's).") var seed: UInt64?
        @Option(help: "Model files directory.") var models: String = "models"
        @Flag(name: .shortAndLong, help: "Print every alert event.") var verbose = false

        func run() throws {
            let sc = try Scenario.load(path: scenario)
            let durationMs: Int64
            if let duration {
                guard let d = ConfigReader.parseDuration(duration) else { throw ValidationError("--duration '\(duration)' is not a duration") }
                durationMs = d.components.seconds * 1000
            } else { durationMs = sc.duration ?? 6 * 3_600_000 }
            let machineModels = try MachineModels(directory: models)
            let clock = ContinuousClock()
            let began = clock.now
            let result = try FleetEvaluation.run(scenario: sc, models: machineModels, seed: seed ?? sc.seed ?? 1, durationMs: durationMs)
            let elapsed = clock.now - began
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let count = result.readings
            print("simulation \(sc.name): \(result.machines.count) machines, \(durationMs / 60_000) min simulated, \(count) readings in \(String(format: "%.1f", seconds)) s (\(Int(Double(count) / max(seconds, 1e-9))) readings/s)")
            let start = result.start
            if verbose {
                for a in result.alerts {
                    print("  event \(a.machine) +\((a.ts - start) / 1000)s \(a.kind.rawValue) \(a.state.rawValue) \(a.severity.rawValue) \(a.model) \(a.sensors) score \(String(format: "%.2f", a.score)) \(a.evidence.sorted { $0.key < $1.key }.prefix(12).map { "\($0.key)=\(String(format: "%.2f", $0.value))" }.joined(separator: " "))")
                }
            }
            let followed = result.operatingChanges.values.reduce(0, +)
            print("operating-point changes followed: \(followed) over \(result.machines.count) machines")
            let report = result.report
            print(TruthScorer.table(report, start: start))
        }
    }

    /// Scores the alerts on a Kafka alerts topic against a truth file (the demo's summary).
    struct Truth: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score alerts from Kafka against a simulator truth file.")
        @Option(help: "Truth file written by `forewarn simulate --truth`.") var truth: String
        @Option(help: "Kafka bootstrap servers.") var kafka: String
        @Option(help: "Alerts topic.") var topic = "forewarn.alerts"
        @Option(help: "Machines in the fleet (for false alerts per machine-day).") var machines: Int
        @Option(help: "Simulated duration, e.g. 6h.") var duration: String
        @Option(help: "Simulation start, epoch ms.") var start: Int64 = 1_767_225_600_000
        @Option(help: "Readings the simulator published: counts distinct readings on the readings topic against it.") var published: Int?
        @Option(help: "Readings topic.") var readingsTopic = "forewarn.readings"

        func run() throws {
            guard let d = ConfigReader.parseDuration(duration) else { throw ValidationError("--duration '\(duration)' is not a duration") }
            let faults = try readTruthFile(truth)
            var logger = Logger(label: "forewarn.evaluate")
            logger.logLevel = .error
            let events = try readAlerts(bootstrap: kafka, topic: topic, logger: logger)
            let report = TruthScorer.score(truth: faults, alerts: events, machines: machines, durationMs: d.components.seconds * 1000)
            print(TruthScorer.table(report, start: start))
            if let published {
                let distinct = try countDistinctReadings(bootstrap: kafka, topic: readingsTopic, logger: logger)
                if distinct.truncated {
                    print("")
                    print("note: the broker no longer holds the oldest readings (dev-kafka keeps at most 100,000 records or 5 MB")
                    print("per partition), so they cannot be recounted here; count them as they are consumed instead")
                    print("(the detector's readings counter does, de-duplicated by gateway and seq).")
                    return
                }
                print("")
                print("| readings | count |")
                print("| --- | --- |")
                print("| published by the simulator (each PUBACKed by the broker) | \(published) |")
                print("| distinct in Kafka, by (gateway, seq) | \(distinct.distinct) |")
                print("| duplicates in Kafka (same gateway, seq) | \(distinct.records - distinct.distinct) |")
                print("| lost | \(published - distinct.distinct) |")
            }
        }
    }
}

/// Parses a truth file (one JSON object per line).
func readTruthFile(_ path: String) throws -> [TruthFault] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var out: [TruthFault] = []
    for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let machine = o["machine"] as? String, let kind = o["kind"] as? String,
              let onset = (o["onset"] as? NSNumber)?.int64Value else {
            throw ValidationError("\(path):\(n + 1): not a truth line {\"machine\",\"kind\",\"onset\",\"failure\",\"sensors\"}")
        }
        out.append(TruthFault(machine: machine, kind: kind, onset: onset, failure: (o["failure"] as? NSNumber)?.int64Value,
                              sensors: o["sensors"] as? [String] ?? []))
    }
    return out
}

/// Every alert event on the topic now, de-duplicated by (alert_id, state, ts).
func readAlerts(bootstrap: String, topic: String, logger: Logger) throws -> [AlertEvent] {
    let consumer = try KafkaConsumer(bootstrap: bootstrap, groupID: "forewarn-evaluate-\(getpid())", logger: logger)
    defer { consumer.close() }
    var seen = Set<String>()
    var out: [AlertEvent] = []
    let decoder = JSONDecoder()
    try consumer.readToEnd(topic: topic, timeout: .seconds(60)) { m in
        guard let a = try? decoder.decode(AlertEvent.self, from: Data(m.value)) else { return }
        if seen.insert("\(a.alertId)|\(a.state.rawValue)|\(a.ts)").inserted { out.append(a) }
    }
    return out
}

/// Records on a readings topic now, and how many distinct (gateway, seq) among them; `truncated`
/// when the broker no longer holds the oldest records, so they cannot be recounted.
func countDistinctReadings(bootstrap: String, topic: String, logger: Logger) throws -> (records: Int, distinct: Int, truncated: Bool) {
    let consumer = try KafkaConsumer(bootstrap: bootstrap, groupID: "forewarn-evaluate-\(getpid())-r", logger: logger)
    defer { consumer.close() }
    var seen = Set<String>()
    var records = 0
    let marks = try consumer.readToEnd(topic: topic, timeout: .seconds(120)) { m in
        records += 1
        seen.insert("\(m.header("gateway") ?? "")|\(m.header("seq") ?? "\(m.partition)@\(m.offset)")")
    }
    return (records, seen.count, marks.values.contains { $0.low > 0 })
}
