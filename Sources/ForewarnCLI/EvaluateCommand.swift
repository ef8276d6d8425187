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
        static let configuration = CommandConfiguration(
            abstract: "SKAB protocol: point F1, FAR, MAR over the rows after each file's 400 training rows; changepoint NAB scores; false alert openings per stream-day.")
        @Argument(help: "SKAB directory (with valve1/, valve2/, other/).") var directory: String
        @Flag(name: .shortAndLong, help: "One line per file.") var verbose = false
        @Flag(help: "Leave one group out: pick a setting on the other groups, score the one left out.") var crossValidate = false
        @Option(help: "Write an HTML report (index.html, one chart per file) into this directory.") var report: String?

        func run() throws {
            let series = try Evaluator.loadSKAB(directory: directory)
            let result = Evaluator.evaluateSKAB(series, traces: report != nil)
            let lines = Self.summary(result)
            if verbose {
                for f in result.files {
                    let c = f.counts
                    print("\(f.file): F1 \(f3(c.f1)) FAR \(pct(c.far)) MAR \(pct(c.mar)) TP \(c.tp) FP \(c.fp) FN \(c.fn) TN \(c.tn) false openings \(f.budget.falseOpenings)")
                }
            }
            lines.forEach { print($0) }
            if crossValidate {
                let candidates = Candidates.skab()
                let cv = CrossValidation.skab(series: series, defaultReport: result, candidates: candidates)
                print("")
                print("Leave one group out (\(candidates.count) candidate settings; each group scored with the one that has the best F1 on the others)")
                print("| left out | in-sample F1 / FAR / MAR | chosen on the others | left-out F1 / FAR / MAR |")
                print("| --- | --- | --- | --- |")
                for f in cv.folds {
                    print("| \(f.group) | \(triple(f.inSample)) | \(f.chosen) | \(triple(f.leftOut)) |")
                }
                print("| **all** | **\(triple(cv.inSample))** | | **\(triple(cv.leftOut))** |")
            }
            if let report {
                let rows = result.files.map { f in
                    ReportRow(file: f.file.split(separator: "/").suffix(2).joined(separator: "/"), group: f.group, score: f.counts.f1,
                              falseOpenings: f.budget.falseOpenings, days: f.budget.days,
                              extra: [f3(f.counts.far), f3(f.counts.mar)], trace: f.trace!)
                }
                try writeReport(directory: report, HTMLReport.page(title: "Forewarn on SKAB", summary: lines, scoreName: "F1", extraColumns: ["FAR", "MAR"],
                                                                    rows: rows, threshold: DetectorConfiguration().lifecycle.openThreshold))
            }
        }

        static func summary(_ r: SKABReport) -> [String] {
            let t = r.total
            var out: [String] = []
            out.append("SKAB (\(r.files.count) files; the first \(SKABScorer.trainingRows) rows of each are its training part and are not scored; \(t.tp + t.fp + t.fn + t.tn) rows scored)")
            out.append("| group | F1 | FAR | MAR | TP | FP | FN | TN | false alert openings | per stream-day |")
            out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for g in r.groups {
                let c = r.group(g), b = r.budget(group: g)
                out.append("| \(g) | \(f3(c.f1)) | \(pct(c.far)) | \(pct(c.mar)) | \(c.tp) | \(c.fp) | \(c.fn) | \(c.tn) | \(b.falseOpenings) | \(f2(b.perStreamDay)) |")
            }
            let b = r.budget
            out.append("| **all** | **\(f3(t.f1))** | **\(pct(t.far))** | **\(pct(t.mar))** | \(t.tp) | \(t.fp) | \(t.fn) | \(t.tn) | \(b.falseOpenings) | \(f2(b.perStreamDay)) |")
            out.append("FAR = FP / (FP + TN), MAR = FN / (FN + TP); false alert openings: alerts that open outside every anomaly span, per day of scored data (each file one machine)")
            out.append("Leaderboard: Conv-AE 0.78 / 13.55% / 28.02%; MSET 0.78 / 39.73% / 14.13%; T²+Q (PCA) 0.76 / 26.62% / 24.92%")
            for p in NABProfile.all {
                let tally = r.changepoint(p)
                out.append("changepoint NAB \(p.name): \(f2(tally.normalized(p))) (windows \(tally.windows), detected \(tally.truePositives), false \(tally.falsePositives))")
            }
            return out
        }
    }

    struct NAB: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "NAB protocol over one or more NAB folders as one corpus (raw scores summed, normalised once): the three profiles, each group and category, false alert openings per stream-day.")
        @Argument(help: "NAB folders, each with windows.json and data/<category>/*.csv (e.g. nab nab-web).") var roots: [String]
        @Option(help: "windows.json, when a single data directory is given without one.") var windows: String?
        @Flag(name: .shortAndLong, help: "One line per file.") var verbose = false
        @Flag(help: "Leave one category out: pick a setting on the other categories, score the one left out.") var crossValidate = false
        @Option(help: "Write an HTML report (index.html, one chart per file) into this directory.") var report: String?
        @Option(help: "Score another detector's published NAB results instead of Forewarn: one detector's folder of NAB's results/ (e.g. NAB/results/numenta).") var publishedResults: String?
        @Option(help: "With --published-results: the anomaly_score at or above which a row is a detection (NAB's config/thresholds.json, standard profile).") var threshold: Double?

        func validate() throws {
            if windows != nil && roots.count != 1 { throw ValidationError("--windows applies to a single data directory") }
            if (publishedResults == nil) != (threshold == nil) { throw ValidationError("--published-results and --threshold go together") }
            if publishedResults != nil && (crossValidate || report != nil) { throw ValidationError("--published-results scores fixed detections: no --cross-validate or --report") }
        }

        func run() throws {
            let nabRoots: [NABRoot] = roots.map { r in
                if let windows { return NABRoot(name: URL(fileURLWithPath: r).lastPathComponent, dataDirectory: r, windowsPath: windows) }
                return NABRoot(directory: r)
            }
            for r in nabRoots where !FileManager.default.fileExists(atPath: r.windowsPath) {
                throw ValidationError("\(r.windowsPath) not found: give NAB folders holding windows.json, or --windows")
            }
            let files = try Evaluator.loadNAB(roots: nabRoots)
            if let publishedResults, let threshold {
                let published = try Evaluator.evaluatePublishedNAB(files, directory: publishedResults, threshold: threshold)
                print("Published results of \(URL(fileURLWithPath: publishedResults).lastPathComponent), detections where anomaly_score >= \(threshold), same scorer:")
                Self.summary(published).dropLast().forEach { print($0) }
                return
            }
            let result = Evaluator.evaluateNAB(files, traces: report != nil)
            if verbose {
                for f in result.files {
                    let t = f.tallies["standard"]!
                    print("\(f.group)/\(f.file): detections \(f.detections) windows \(t.windows) detected \(t.truePositives) false \(t.falsePositives) raw \(f2(t.raw)) score \(String(format: "%.1f", t.normalized(.standard)))")
                }
            }
            let lines = Self.summary(result)
            lines.forEach { print($0) }
            if crossValidate {
                let candidates = Candidates.nab()
                let cv = CrossValidation.nab(files: files, defaultReport: result, candidates: candidates)
                print("")
                print("Leave one category out (\(candidates.count) candidate settings; each category scored with the one that has the best standard score on the others)")
                print("| left out | windows | in-sample | chosen on the others | left-out |")
                print("| --- | --- | --- | --- | --- |")
                for f in cv.folds {
                    print("| \(f.category) | \(f.inSample.windows) | \(nabScore(f.inSample)) | \(f.chosen) | \(nabScore(f.leftOut)) |")
                }
                print("| **all** | \(cv.inSample.windows) | **\(nabScore(cv.inSample))** | | **\(nabScore(cv.leftOut))** |")
                print("(a category without windows shows its raw score: only false positives count there)")
            }
            if let report {
                let rows = result.files.map { f in
                    let t = f.tallies["standard"]!
                    return ReportRow(file: f.file, group: f.group, score: t.windows > 0 ? t.normalized(.standard) : t.raw,
                                     falseOpenings: f.budget.falseOpenings, days: f.budget.days,
                                     extra: ["\(t.windows)", "\(t.truePositives)", "\(f.detections)"], trace: f.trace!)
                }
                try writeReport(directory: report, HTMLReport.page(title: "Forewarn on NAB", summary: lines, scoreName: "standard score",
                                                                    extraColumns: ["windows", "detected", "detections"], rows: rows,
                                                                    threshold: DetectorConfiguration().lifecycle.openThreshold))
            }
        }

        static func summary(_ r: NABReport) -> [String] {
            var out: [String] = []
            out.append("NAB (\(r.files.count) files from \(r.groups.joined(separator: ", ")), scored as one corpus: raw scores summed over files, normalised once)")
            out.append("| part | files | windows | detected | false positives | standard | reward low FP | reward low FN | false alert openings | per stream-day |")
            out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            func line(_ name: String, _ filter: (NABFileResult) -> Bool) -> String {
                let t = NABProfile.all.map { r.total($0, where: filter) }
                let b = r.budget(where: filter)
                let n = r.files.filter(filter).count
                let scores = zip(NABProfile.all, t).map { p, x in x.windows > 0 ? f2(x.normalized(p)) : "—" }
                return "| \(name) | \(n) | \(t[0].windows) | \(t[0].truePositives) | \(t[0].falsePositives) | \(scores.joined(separator: " | ")) | \(b.falseOpenings) | \(f2(b.perStreamDay)) |"
            }
            for g in r.groups { out.append(line("group \(g)", { $0.group == g })) }
            for c in r.categories { out.append(line(c, { $0.category == c })) }
            out.append(line("**all**", { _ in true }))
            out.append("Published full-corpus standard: ARTime 74.9, HTM 70.1, CAD OSE 69.9, KNN CAD 58.0, Windowed Gaussian 39.6 (thresholds tuned on the corpus)")
            return out
        }
    }
}

func triple(_ c: ConfusionCounts) -> String { "\(f3(c.f1)) / \(pct(c.far)) / \(pct(c.mar))" }
func nabScore(_ t: NABTally) -> String { t.windows > 0 ? f2(t.normalized(.standard)) : "raw \(f2(t.raw))" }
func f2(_ x: Double) -> String { String(format: "%.2f", x) }

func writeReport(directory: String, _ html: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/index.html"
    try Data(html.utf8).write(to: URL(fileURLWithPath: path))
    print("report: \(path)")
}

struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Replay a SKAB or NAB CSV through the detector: prints timestamp,score,alert,active per row.")
    @Option(help: "CSV file (SKAB 'datetime;<column>;…', or NAB 'timestamp,value' and any 'timestamp,<column>,…'; told by the header).") var replay: String
    @Option(help: "Also write every alert event (open, update, resolve; with its model and evidence) to this file, one JSON object per line, as the detector publishes them.") var events: String?

    func run() throws {
        let series = try CSVLoader.load(path: replay)
        let result = Replay.run(series)
        if let events {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var lines = Data()
            for e in result.events {
                lines.append(try encoder.encode(e))
                lines.append(0x0A)
            }
            guard FileManager.default.createFile(atPath: events, contents: lines) else {
                throw ValidationError("--events: cannot write \(events)")
            }
        }
        FileHandle.standardOutput.write(Data(result.csv().utf8))
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Micro-benchmarks. Build with -c release: swift run -c release forewarn bench detector",
        discussion: """
        detector: the models in process (univariate chain, machine pipeline, and the fleet of \
        --machines x --sensors pumps, one reading at a time, with and without the JSON decoding). \
        detector-load: writes that fleet's readings to --kafka in the gateway's record format, for \
        the end-to-end figure (scripts/bench-detector). intake: the gateway's topic match, payload \
        parse and canonical JSON per message (--readings counts messages). journal: the journal's \
        append, commit, read and delete per entry (--entries, in --directory), against SQLite alone \
        doing the same on a bare table in the same run.
        """)
    @Argument(help: "What to measure: detector, detector-load, intake, journal.") var what: String = "detector"
    @Option(help: "Readings to run (univariate chain).") var readings = 20_000_000
    @Option(help: "Fleet: machines.") var machines = 100
    @Option(help: "Fleet: sensors per machine.") var sensors = 4
    @Option(name: .customLong("per-sensor"), help: "Fleet: readings per sensor (one a second).") var perSensor = 2000
    @Option(help: "Model files directory for the fleet (default ./models if present, else built-in).") var models: String?
    @Option(help: "detector-load: Kafka bootstrap servers.") var kafka: String?
    @Option(help: "detector-load: topic to write.") var topic = "forewarn.readings"
    @Option(help: "journal: entries to append, read and delete.") var entries = 200_000
    @Option(help: "journal: alternating runs of SQLite alone and the journal (medians are printed).") var repeats = 3
    @Option(help: "journal: directory for the two databases, removed afterwards (default: a new one in the temporary directory).") var directory: String?

    func validate() throws {
        guard entries > 0, repeats > 0 else { throw ValidationError("--entries and --repeats must be positive") }
        guard machines > 0, sensors > 0, perSensor > 0 else { throw ValidationError("--machines, --sensors and --per-sensor must be positive") }
        if what == "detector-load", kafka == nil { throw ValidationError("detector-load needs --kafka") }
    }

    func run() throws {
        let fleet = BenchFleet(machines: machines, sensors: sensors, perSensor: perSensor)
        switch what {
        case "detector":
            let dir = models ?? (FileManager.default.fileExists(atPath: "models") ? "models" : nil)
            let machineModels = try dir.map { try MachineModels(directory: $0) } ?? MachineModels()
            DetectorBenchmark.run(readings: readings)
            DetectorBenchmark.runFleet(fleet, models: machineModels, modelsName: dir ?? "built-in")
        case "detector-load":
            try DetectorBenchmark.load(fleet, bootstrap: kafka!, topic: topic)
        case "intake":
            try IntakeBenchmark.run(messages: readings)
        case "journal":
            try JournalBenchmark.run(entries: entries, repeats: repeats, directory: directory)
        default:
            throw ValidationError("unknown benchmark '\(what)' (allowed: detector, detector-load, intake, journal)")
        }
    }
}

func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }

extension Duration {
    /// The duration in seconds, for rates and timings the benchmarks print.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
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
            let seconds = elapsed.inSeconds
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
