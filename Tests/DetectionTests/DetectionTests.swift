// Behavioural tests of the Detection models and the Evaluation scorers, each against a
// known answer. All randomness is seeded (SplitMix64 + Box-Muller), so results are exact.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Detection
@testable import Evaluation

private func gaussianSeries(_ n: Int, seed: UInt64, mean: Double = 0, sd: Double = 1) -> [Double] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in mean + sd * rng.nextGaussian() }
}

@Test func cusumDetectsThreeSigmaStepWithinSixSamples() {
    // The CUSUM's own speed: without the fast-stream outlier filter, which passes a step's first
    // two readings late when they are beyond its limit (tested on its own below).
    var params = UnivariateParameters()
    params.impulseFilterFastStreams = false
    var det = SensorDetector(spec: SensorSpec(name: "x"), params: params, warmupCount: 400)
    let noise = gaussianSeries(2000, seed: 1, mean: 10, sd: 1)
    for i in 0..<1500 {
        let o = det.observe(ts: Int64(i) * 1000, value: noise[i])
        if i >= 400 { #expect(o.cusumRatio < 1, "false CUSUM alarm at \(i)") }
    }
    // With k = 0.5 and h = 10, a 3 sigma shift adds ~2.5 per sample: the limit falls at sample 4-5.
    var detectedAfter: Int? = nil
    for j in 0..<20 {
        let o = det.observe(ts: Int64(1500 + j) * 1000, value: noise[1500 + j] + 3)
        if o.cusumRatio >= 1 { detectedAfter = j + 1; break }
    }
    let k = try! #require(detectedAfter)
    #expect(k <= 6)
}

@Test func linearRampTimeToThresholdWithinTenPercent() {
    let spec = SensorSpec(name: "temp_c", unit: "C", failureThreshold: 100)
    var det = SensorDetector(spec: spec, warmupCount: 400)
    var rng = SplitMix64(seed: 7)
    var last = SensorOutput()
    let slope = 0.01 // units per second at 1 Hz
    for t in 0..<3000 {
        last = det.observe(ts: Int64(t) * 1000, value: 20 + slope * Double(t) + 0.05 * rng.nextGaussian())
    }
    let truth = (100 - (20 + slope * 2999)) / slope
    let est = try! #require(last.timeToThresholdSeconds)
    #expect(abs(est - truth) / truth < 0.10, "estimate \(est) vs truth \(truth)")
    #expect(abs(last.slopePerSecond - slope) / slope < 0.10)
}

@Test func noAlertsOnStationaryNoise() {
    var rng = SplitMix64(seed: 2024)
    var single = MachineDetector(config: DetectorConfiguration(machine: "m1"))
    var events: [AlertEvent] = []
    for i in 0..<100_000 {
        events += single.observe(ts: Int64(i) * 1000, values: ["x": 5 + 0.3 * rng.nextGaussian()])
    }
    #expect(events.isEmpty, "univariate: \(events.first.map { "\($0.model) at \($0.ts)" } ?? "")")

    var multi = MachineDetector(config: DetectorConfiguration(machine: "m2"))
    events = []
    for i in 0..<100_000 {
        let a = rng.nextGaussian(), b = rng.nextGaussian()
        events += multi.observe(ts: Int64(i) * 1000, values: ["a": a, "b": a + 0.5 * b, "c": 3 + rng.nextGaussian()])
    }
    #expect(multi.isPCAFitted)
    #expect(events.isEmpty, "multivariate: \(events.first.map { "\($0.model) at \($0.ts)" } ?? "")")
}

@Test func stuckSensorRaisesSensorAlertNotMachineAlert() {
    var det = MachineDetector(config: DetectorConfiguration(machine: "pump1", site: "s1"))
    var rng = SplitMix64(seed: 3)
    var events: [AlertEvent] = []
    for i in 0..<1000 {
        events += det.observe(ts: Int64(i) * 1000, values: ["flow": 30 + rng.nextGaussian(), "vib": 2 + 0.1 * rng.nextGaussian()])
    }
    #expect(events.isEmpty)
    let frozen = 30.5
    for i in 1000..<1300 {
        events += det.observe(ts: Int64(i) * 1000, values: ["flow": frozen, "vib": 2 + 0.1 * rng.nextGaussian()])
    }
    let opens = events.filter { $0.state == .open }
    #expect(opens.count == 1)
    let e = try! #require(opens.first)
    #expect(e.kind == .sensor)
    #expect(e.model == "stuck")
    #expect(e.sensors == ["flow"])
    #expect(e.machine == "pump1" && e.site == "s1")
    #expect(!events.contains { $0.kind == .machine })
}

@Test func dropoutAndPhysicalSpikeAreSensorAlerts() {
    var spec = SensorSpec(name: "p", physicalMin: 0, physicalMax: 10)
    spec.unit = "bar"
    var det = SensorDetector(spec: spec, warmupCount: 50)
    for i in 0..<100 { _ = det.observe(ts: Int64(i) * 1000, value: 5) }
    #expect(det.observe(ts: 100_000, value: 50).health.spike)
    #expect(det.observe(ts: 200_000, value: 5).health.dropout)
    #expect(det.observe(ts: 201_000, value: 5.1).health.isHealthy)
}

/// A hold keeps an open episode from resolving however low the score; once it lifts, the close
/// count starts again from zero.
@Test func aHeldEpisodeResolvesOnlyAfterTheHoldLifts() {
    var p = LifecycleParameters()
    p.openThreshold = 0.5
    p.openCount = 1
    p.closeThreshold = 0.4
    p.closeCount = 5
    var life = AlertLifecycle(params: p, machine: "m", site: "s", kind: .machine)
    var states: [AlertState] = []
    var ts: Int64 = 0
    func feed(_ score: Double, _ n: Int, hold: Bool) {
        for _ in 0..<n {
            ts += 1000
            if let e = life.step(ts: ts, score: score, hold: hold, context: AlertContext(model: "likelihood")) { states.append(e.state) }
        }
    }
    feed(0.9, 1, hold: false)
    feed(0.1, 4, hold: false)   // four below the close line
    feed(0.1, 100, hold: true)  // held: none of these counts
    #expect(states == [.open] && life.isOpen)
    feed(0.1, 4, hold: false)   // the count restarted after the hold: four is not enough
    #expect(states == [.open])
    feed(0.1, 1, hold: false)
    #expect(states == [.open, .resolved] && !life.isOpen)
    // A hold never opens anything.
    feed(0.1, 10, hold: true)
    #expect(states == [.open, .resolved])
}

@Test func lifecycleOpenUpdateResolveShareOneIdWithHysteresis() {
    var p = LifecycleParameters()
    p.openThreshold = 0.5
    p.openCount = 3
    p.closeThreshold = 0.4
    p.closeCount = 5
    p.updateScoreDelta = 0.1
    p.minUpdateIntervalMs = 0
    p.criticalScore = 0.8
    var life = AlertLifecycle(params: p, machine: "m", site: "s", kind: .machine)
    var events: [AlertEvent] = []
    var ts: Int64 = 0
    func feed(_ score: Double, _ n: Int) {
        for _ in 0..<n {
            ts += 1000
            if let e = life.step(ts: ts, score: score, context: AlertContext(model: "pca", sensors: ["a"])) { events.append(e) }
        }
    }
    feed(0.1, 5)
    feed(0.6, 2)          // two exceedances: not yet
    #expect(events.isEmpty)
    feed(0.3, 1)          // streak broken
    feed(0.6, 3)          // opens on the third
    #expect(events.map(\.state) == [.open])
    #expect(events[0].ts == 11_000 && events[0].openedAt == 11_000)
    feed(0.62, 5)         // small moves: no update, no duplicate open
    #expect(events.count == 1)
    feed(0.9, 1)          // critical: update
    #expect(events.last?.state == .update && events.last?.severity == .critical)
    feed(0.45, 20)        // below open threshold but above the close line: stays open (hysteresis)
    #expect(!events.contains { $0.state == .resolved })
    feed(0.3, 4)
    #expect(!events.contains { $0.state == .resolved })
    feed(0.3, 1)          // fifth below the close line: resolved
    #expect(events.last?.state == .resolved)
    #expect(Set(events.map(\.alertId)).count == 1)
    #expect(events.filter { $0.state == .open }.count == 1)
    #expect(events[0].alertId == "m-11000-machine")
    let resolvedAt = events.last!.ts
    feed(0.7, 3)          // a new episode gets a new id
    #expect(events.last?.state == .open)
    #expect(events.last?.alertId == "m-\(resolvedAt + 3000)-machine")
}

@Test func pcaFlagsCorrelationBreakThatUnivariateLimitsMiss() {
    var rng = SplitMix64(seed: 11)
    var det = MachineDetector(config: DetectorConfiguration(machine: "m"))
    var uni = SensorDetector(spec: SensorSpec(name: "b"), warmupCount: 400)
    var events: [AlertEvent] = []
    for i in 0..<1000 {
        let a = rng.nextGaussian()
        let b = a + 0.1 * rng.nextGaussian()
        events += det.observe(ts: Int64(i) * 1000, values: ["a": a, "b": b])
        _ = uni.observe(ts: Int64(i) * 1000, value: b)
    }
    #expect(events.isEmpty)
    // Break: b now moves against a. Each marginal stays N(0, ~1).
    var maxUnivariate = 0.0
    for i in 1000..<1100 {
        let a = rng.nextGaussian()
        let b = -a + 0.1 * rng.nextGaussian()
        events += det.observe(ts: Int64(i) * 1000, values: ["a": a, "b": b])
        let o = uni.observe(ts: Int64(i) * 1000, value: b)
        maxUnivariate = max(maxUnivariate, o.robustZRatio, o.ewmaZRatio, o.cusumRatio, o.gaussianTailRatio)
    }
    #expect(maxUnivariate < 1, "univariate models should not see the break (max ratio \(maxUnivariate))")
    let open = try! #require(events.first { $0.state == .open })
    #expect(open.kind == .machine)
    #expect(open.model == "pca")
    #expect(open.ts - 1_000_000 <= 10_000, "opened \(open.ts - 1_000_000) ms after the break")
}

@Test func jacobiEigenDecomposition() {
    // [[2,1],[1,2]] has eigenvalues 3 and 1.
    let (vals, vecs) = SymmetricEigen.decompose([2, 1, 1, 2], dimension: 2)
    #expect(abs(vals[0] - 3) < 1e-12 && abs(vals[1] - 1) < 1e-12)
    #expect(abs(abs(vecs[0]) - 0.5.squareRoot()) < 1e-12)
}

@Test func nabScorerHandComputed() {
    let sigma = NABScorer.sigma
    #expect(abs(sigma(-1) - 0.98661) < 1e-5)
    #expect(sigma(0) == 0)
    #expect(sigma(3.5) == -1)
    let windows = [RowWindow(start: 100, end: 199), RowWindow(start: 400, end: 499)]
    // Detection at the end of the first window: sigma(-1/100)/sigma(-1) = 0.0249948/0.9866143.
    var t = NABScorer.score(detections: [199], windows: [windows[0]], probation: 0, profile: .standard)
    #expect(abs(t.raw - 0.0253339) < 1e-6)
    // At the window start a detection earns the full tpWeight; a second detection adds nothing.
    t = NABScorer.score(detections: [100, 150], windows: [windows[0]], probation: 0, profile: .standard)
    #expect(abs(t.raw - 1) < 1e-12)
    // FP before any window: -0.11. FP 50 rows after a width-100 window: sigma(50/99) * 0.11.
    t = NABScorer.score(detections: [10, 249], windows: [windows[0]], probation: 0, profile: .standard)
    let expected = -0.11 + (2 / (1 + exp(5 * 50.0 / 99)) - 1) * 0.11 - 1
    #expect(abs(t.raw - expected) < 1e-12)
    #expect(t.falsePositives == 2 && t.truePositives == 0)
    // Probation: the row-10 detection is ignored.
    t = NABScorer.score(detections: [10, 100], windows: windows, probation: 50, profile: .standard)
    #expect(abs(t.raw - 0) < 1e-12)  // +1 for window 1, -1 for missing window 2
    // Normalised: raw 0 over two windows is exactly halfway between null (-2) and perfect (2).
    #expect(abs(t.normalized(.standard) - 50) < 1e-12)
    let low = NABScorer.score(detections: [10, 100], windows: windows, probation: 50, profile: .rewardLowFN)
    #expect(abs(low.raw - (1 - 2)) < 1e-12)
    #expect(abs(low.normalized(.rewardLowFN) - 100 * (-1 + 4) / 6) < 1e-12)
}

@Test func skabScorerHandComputed() {
    var c = ConfusionCounts()
    c.add(predicted: [true, true, false, false, true], actual: [true, false, true, false, true])
    #expect(c.tp == 2 && c.fp == 1 && c.fn == 1 && c.tn == 1)
    #expect(abs(c.f1 - 2.0 / 3.0) < 1e-12)
    #expect(abs(c.far - 0.5) < 1e-12)
    #expect(abs(c.mar - 1.0 / 3.0) < 1e-12)
    // Changepoints at rows 2 and 30, 1 Hz: the first window stops before the second changepoint,
    // the second spans 60 s.
    let ts = (0..<200).map { Int64($0) * 1000 }
    var cp = [Bool](repeating: false, count: 200)
    cp[2] = true
    cp[30] = true
    let w = SKABScorer.changepointWindows(changepoint: cp, epochMs: ts)
    #expect(w == [RowWindow(start: 2, end: 29), RowWindow(start: 30, end: 90)])
}

@Test func csvFormatsAreToldByHeader() throws {
    let skab = try CSVLoader.parse("datetime;A;B;anomaly;changepoint\r\n2020-03-09 10:14:33;1.5;2;0.0;0.0\r\n2020-03-09 10:14:34;1.6;2;1.0;1.0\r\n")
    #expect(skab.format == .skab && skab.columns == ["A", "B"] && skab.anomaly == [false, true] && skab.changepoint == [false, true])
    #expect(skab.epochMs[1] - skab.epochMs[0] == 1000)
    let nab = try CSVLoader.parse("timestamp,value\n2014-04-01 00:00:00,-21.5\n2014-04-01 00:05:00,3\n")
    #expect(nab.format == .nab && nab.columns == ["value"] && nab.values[1] == [3])
    #expect(CSVLoader.parseTimestamp("1970-01-02 00:00:00.250000") == 86_400_250)
    // A machine's own export: several named columns after the timestamp, all sensors of one machine.
    let own = try CSVLoader.parse("timestamp,b1,b2,b3\n2004-02-12 10:32:39,0.058,0.071,0.083\n2004-02-12 10:42:39,0.059,,0.084\n")
    #expect(own.format == .nab && own.columns == ["b1", "b2", "b3"] && own.values[0] == [0.058, 0.071, 0.083])
    #expect(own.values[1][1].isNaN, "an empty field is a missing reading")
    #expect(own.epochMs[1] - own.epochMs[0] == 600_000)
    #expect(throws: DatasetError.self) { try CSVLoader.parse("time;value\n1;2\n") }
    #expect(DatasetError.unknownHeader("time;value").description
            == "unknown CSV header: time;value (expected SKAB's 'datetime;<column>;…' or 'timestamp,<column>,…' as in NAB)")
}

@Test func codableRoundTripGivesIdenticalScores() throws {
    var rng = SplitMix64(seed: 99)
    var a = MachineDetector(config: DetectorConfiguration(machine: "m", sensors: [SensorSpec(name: "t", failureThreshold: 90)]))
    func reading() -> [String: Double] {
        let x = rng.nextGaussian()
        return ["t": 60 + x, "v": 2 * x + rng.nextGaussian(), "c": 10 + rng.nextGaussian()]
    }
    for i in 0..<800 { _ = a.observe(ts: Int64(i) * 1000, values: reading()) }
    let data = try JSONEncoder().encode(a)
    var b = try JSONDecoder().decode(MachineDetector.self, from: data)
    var all: [AlertEvent] = []
    for i in 800..<1600 {
        var r = reading()
        if i > 1200 { r["v"]! += 6 } // a fault, so alerts are compared too
        let ea = a.observe(ts: Int64(i) * 1000, values: r)
        let eb = b.observe(ts: Int64(i) * 1000, values: r)
        #expect(a.score == b.score)
        #expect(ea == eb)
        all += ea
    }
    #expect(all.contains { $0.kind == .machine && $0.state == .open }, "\(all.map { "\($0.state) \($0.ts) \($0.model)" })")
}

@Test func singleSensorReadingsAlignIntoBuckets() {
    var det = MachineDetector(config: DetectorConfiguration(machine: "m"))
    var rng = SplitMix64(seed: 5)
    var events: [AlertEvent] = []
    for i in 0..<1000 {
        let a = rng.nextGaussian()
        events += det.observe(ts: Int64(i) * 1000, sensor: "a", value: a)
        events += det.observe(ts: Int64(i) * 1000 + 300, sensor: "b", value: a + 0.1 * rng.nextGaussian())
    }
    events += det.flush()
    #expect(det.isPCAFitted)
    #expect(events.isEmpty)
}

@Test func alertEventJSONUsesContractKeys() throws {
    let e = AlertEvent(alertId: "m-1-machine", machine: "m", site: "s", state: .open, severity: .warning, kind: .machine,
                       model: "pca", sensors: ["a"], score: 0.6, threshold: 0.5, openedAt: 1, ts: 1,
                       evidence: ["pca.q": 3], timeToThresholdS: nil)
    let obj = try JSONSerialization.jsonObject(with: JSONEncoder().encode(e)) as! [String: Any]
    for k in ["alert_id", "machine", "site", "state", "severity", "kind", "model", "sensors", "score", "threshold",
              "opened_at", "ts", "evidence", "time_to_threshold_s"] {
        #expect(obj[k] != nil, "missing \(k)")
    }
    #expect(obj["time_to_threshold_s"] is NSNull)
}

// MARK: - Operating-point changes

/// A pump-like machine: four sensors that all move with load (gain per unit load), plus noise.
private struct LoadedMachine {
    static let base = [2.5, 55, 20, 6.0], gain = [0.4, 10, 12, -0.4], noise = [0.15, 0.25, 0.2, 0.04]
    static let names = ["vib_rms", "temp_c", "current_a", "pressure_bar"]
    var rng = SplitMix64(seed: 77)

    mutating func values(load: Double, vibOffset: Double = 0) -> [String: Double] {
        var v: [String: Double] = [:]
        for i in 0..<4 { v[Self.names[i]] = Self.base[i] + Self.gain[i] * (load - 0.85) + Self.noise[i] * rng.nextGaussian() }
        v["vib_rms"]! += vibOffset
        return v
    }
}

/// Night load (0.55) for an hour, a 15-minute ramp to full load, an hour at full load.
private func shiftChange(recognise: Bool, vibStepAt: Int? = nil) -> (events: [AlertEvent], followed: Int) {
    var config = DetectorConfiguration(machine: "m")
    config.enabledModels = [.pca, .limit]
    config.multivariate.operatingChangeRate = recognise ? 0.6 : 0
    var det = MachineDetector(config: config)
    var machine = LoadedMachine()
    var events: [AlertEvent] = []
    for t in 0..<(3600 + 900 + 3600) {
        let load = vibStepAt != nil ? 0.55 : (t < 3600 ? 0.55 : min(1.0, 0.55 + 0.45 * Double(t - 3600) / 900))
        let step = vibStepAt.map { t >= $0 ? 1.0 : 0 } ?? 0
        events += det.observe(ts: Int64(t) * 1000, values: machine.values(load: load, vibOffset: step))
    }
    return (events.filter { $0.kind == .machine }, det.operatingChangesFollowed)
}

@Test func shiftChangeIsFollowedNotAlerted() {
    let (events, followed) = shiftChange(recognise: true)
    #expect(events.isEmpty, "\(events.map { "\($0.state) \($0.model) at \($0.ts / 1000) s" })")
    #expect(followed == 1)
}

@Test func shiftChangeAlertsWithoutRecognition() {
    // The same data with recognition off: the warm-up never saw full load, and the ramp alerts.
    let (events, followed) = shiftChange(recognise: false)
    let open = events.first { $0.state == .open }
    #expect(open?.model == "pca")
    #expect(open.map { $0.ts >= 3_600_000 && $0.ts < 4_500_000 } ?? false)
    #expect(followed == 0)
}

@Test func aOneSensorStepIsAnAnomalyNotAnOperatingChange() {
    // vib_rms steps by 1 mm/s (~7 sigma) on its own at constant load: a fault (e.g. imbalance).
    let (events, followed) = shiftChange(recognise: true, vibStepAt: 5400)
    let open = try! #require(events.first { $0.state == .open })
    #expect(open.model == "pca")
    #expect(open.sensors.first == "vib_rms")
    // Held for at most the decision time (180 s) plus the lifecycle's open-count.
    #expect(open.ts >= 5_400_000 && open.ts <= 5_400_000 + 210_000, "opened at \(open.ts / 1000) s")
    #expect(followed == 0)
}

@Suite("ScoreTail (peaks over threshold)")
struct ScoreTailTests {
    @Test("An exponential history gets an exponential tail: P(X > x) within a factor of 2 of e^-x")
    func exponentialTail() {
        var tail = ScoreTail(capacity: 2000)
        var g = UInt64(42)
        for _ in 0..<2000 {
            g = g &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(g >> 11) / Double(1 << 53)
            tail.push(-Foundation.log(1 - u))
        }
        tail.fit()
        let p = tail.tailProbability(6)!
        #expect(p > 0.00124 && p < 0.00496, "P(X > 6) = \(p), expected ≈ e^-6 = 0.00248")
        #expect(tail.tailProbability(0.1)! >= 0.05 - 1e-9)
    }

    @Test("A flat history: a value above it is rare, a value at it is not")
    func flatHistory() {
        var tail = ScoreTail(capacity: 100)
        for _ in 0..<100 { tail.push(1) }
        tail.fit()
        #expect(tail.tailProbability(1)! >= 0.05)
        #expect(tail.tailProbability(1.1)! < 1e-10)
    }
}

@Suite("HTML report")
struct HTMLReportTests {
    @Test("One chart per file with its signal, score, threshold, alert span and label window; each SVG is well-formed XML")
    func chartsHaveTheirElements() throws {
        var csv = "timestamp,value\n"
        for i in 0..<3000 {
            let t = String(format: "2020-01-%02d %02d:%02d:00", 1 + i / 288, (i % 288) / 12, (i % 12) * 5)
            csv += "\(t),\(i >= 2000 && i < 2100 ? 50.0 : Double((i * 7919) % 11))\n"
        }
        let s = try CSVLoader.parse(csv, name: "cat/file.csv")
        let file = Evaluator.NABFile(key: "cat/file.csv", group: "g", series: s, windows: [RowWindow(start: 1950, end: 2150)])
        let report = Evaluator.evaluateNAB([file, file], traces: true)
        #expect(report.files[0].tallies["standard"]!.truePositives == 1, "the step is detected, so an alert span is drawn")
        let rows = report.files.map { f in
            ReportRow(file: f.file, group: f.group, score: 1, falseOpenings: f.budget.falseOpenings, days: f.budget.days, extra: [], trace: f.trace!)
        }
        let html = HTMLReport.page(title: "t <&>", summary: ["a"], scoreName: "score", extraColumns: [], rows: rows, threshold: 0.5)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        #expect(html.contains("t &lt;&amp;&gt;"))
        #expect(html.components(separatedBy: "<tr><td><a href=\"#chart-").count - 1 == 2)
        let svgs = html.components(separatedBy: "<svg").dropFirst().map { "<svg" + $0.components(separatedBy: "</svg>")[0] + "</svg>" }
        #expect(svgs.count == 2)
        for svg in svgs {
            for element in ["class=\"signal\"", "class=\"score\"", "class=\"threshold\"", "class=\"label\"", "class=\"alert\"", "class=\"unscored\""] {
                #expect(svg.contains(element), "chart lacks \(element)")
            }
            let parser = XMLParser(data: Data(svg.utf8))
            #expect(parser.parse(), "SVG is not well-formed: \(String(describing: parser.parserError))")
        }
    }
}

/// Drives a lifecycle with one excursion of `length` steps (1 min apart) starting at each of `starts` (ms);
/// returns the starts of the excursions that opened an alert.
private func openings(_ p: LifecycleParameters, excursionsAt starts: [Int64], length: Int = 10) -> (opened: [Int64], resolved: Int, life: AlertLifecycle) {
    var life = AlertLifecycle(params: p, machine: "m", site: "s", kind: .machine)
    var opened: [Int64] = [], resolved = 0
    let step: Int64 = 60_000
    var ts = starts.first.map { $0 - 100 * step } ?? 0
    for start in starts {
        // Quiet until the excursion, then `length` steps above the open line, then quiet again.
        while ts < start + Int64(length + 30) * step {
            ts += step
            let score = ts >= start && ts < start + Int64(length) * step ? 0.9 : 0.1
            if let e = life.step(ts: ts, score: score, context: AlertContext(model: "m")) {
                if e.state == .open { opened.append(start) }
                if e.state == .resolved { resolved += 1 }
                #expect(e.state != .update || opened.count > resolved, "no update outside a raised episode")
            }
        }
    }
    return (opened, resolved, life)
}

@Test("recurrence: an excursion at the same time each day alerts on the first day only; other days' times still alert")
func recurringExcursionsAreHeld() {
    let day: Int64 = 86_400_000, minute: Int64 = 60_000
    let p = LifecycleParameters()   // one day, two periods back, 15 minutes
    // A nightly job at 02:00, jittering by up to 10 minutes, for a week.
    let nightly = (0..<7).map { d in Int64(d) * day + 2 * 60 * minute + Int64([0, 7, -5, 10, -10, 3, 0][d]) * minute }
    let run = openings(p, excursionsAt: nightly)
    #expect(run.opened == [nightly[0]], "one alert, on the first night")
    #expect(run.resolved == 1, "the raised alert resolves; held ones send nothing")
    #expect(run.life.recurrencesHeld == 6)
    #expect(!run.life.isOpen)
    // The same job, then something at 14:00 on day 3: that is not the schedule.
    let other = [nightly[0], nightly[1], 3 * day + 14 * 60 * minute, nightly[4]]
    #expect(openings(p, excursionsAt: other).opened == [nightly[0], other[2], nightly[4]],
            "a new time of day alerts; the job on day 4 has no opening 1 or 2 days before at its time (day 2 and 3 had none at 02:00)")
}

@Test("recurrence: off with 0 periods, a 3-day gap breaks a 2-period memory, and it never traps on wild timestamps")
func recurrenceBounds() {
    let day: Int64 = 86_400_000
    var off = LifecycleParameters()
    off.recurrencePeriods = 0
    let daily = (0..<4).map { Int64($0) * day }
    #expect(openings(off, excursionsAt: daily).opened == daily, "every day alerts without the test")
    // Days 0 and 3: three periods apart, beyond the two looked back.
    #expect(openings(LifecycleParameters(), excursionsAt: [0, 3 * day]).opened == [0, 3 * day])
    // 20 minutes late is beyond the 15-minute tolerance.
    #expect(openings(LifecycleParameters(), excursionsAt: [0, day + 20 * 60_000]).opened.count == 2)
    // Extreme timestamps (differences that wrap) neither trap nor hold.
    var life = AlertLifecycle(params: LifecycleParameters(), machine: "m", site: "s", kind: .machine)
    var opens = 0
    for ts in [Int64.min + 10, Int64.min + 1_000, 0, Int64.max - 1_000, Int64.max - 50] {
        for i in 0..<30 {
            let e = life.step(ts: ts + Int64(i), score: i < 10 ? 0.9 : 0.1, context: AlertContext(model: "m"))
            if e?.state == .open { opens += 1 }
        }
    }
    #expect(opens == 5)
}

@Test("recurrence: a held excursion still above the open line after the hold (1 h) is raised: a fault at the job's time is not lost")
func aHeldRecurrenceThatPersistsIsRaised() {
    let day: Int64 = 86_400_000, minute: Int64 = 60_000
    // Day 0: a 10-minute excursion at 02:00 (raised). Day 1 at 02:05: it starts again and stays.
    let short = openings(LifecycleParameters(), excursionsAt: [2 * 60 * minute, day + 2 * 60 * minute + 5 * minute], length: 10)
    #expect(short.opened.count == 1, "the short repeat is held")
    let long = openings(LifecycleParameters(), excursionsAt: [2 * 60 * minute, day + 2 * 60 * minute + 5 * minute], length: 90)
    #expect(long.opened.count == 2, "the repeat that outlasts the hold is raised")
    #expect(long.resolved == 2 && long.life.recurrencesHeld == 1)
}

/// A bucket learns from earlier periods only. Within one visit (a 5-minute bucket read every
/// second) the residuals are against the earlier days' value, so an outlier does not move the
/// value the next readings of the same visit are judged against; the visit's mean folds in once
/// the readings move on.
@Test func seasonalProfileLearnsFromEarlierPeriodsOnly() {
    let day: Int64 = 86_400_000
    var profile = SeasonalProfile(periodMs: day, buckets: 288)
    // Day 0, bucket 0: no earlier period, so no residual, however many readings.
    for s in 0..<300 { #expect(profile.update(ts: Int64(s) * 1000, value: 10, alpha: 0.2) == nil) }
    // Later in day 0: another bucket. Bucket 0's visit (mean 10) has been folded in.
    #expect(profile.update(ts: 3_600_000, value: 99, alpha: 0.2) == nil)
    // Day 1, bucket 0: judged against day 0's 10. An outlier of 50 leaves the next reading's
    // residual against 10 too (folding each reading in at 0.2 had moved it to 18).
    #expect(profile.update(ts: day, value: 50, alpha: 0.2) == 40)
    #expect(profile.update(ts: day + 1000, value: 10, alpha: 0.2) == 0)
    #expect(profile.update(ts: day + 2000, value: 12, alpha: 0.2) == 2)
    // Day 2: day 1's visit (mean 24) folded in at 0.2: 10 + 0.2 * (24 - 10) = 12.8.
    let r = profile.update(ts: 2 * day, value: 12.8, alpha: 0.2)
    #expect(r.map { abs($0) < 1e-9 } == true, "residual \(String(describing: r))")
}

/// A sensor's checkpoint from before session 14 (no reference interval in its parameters, no
/// pooled visit, no first reading time, no constant-warm-up flag) is refused, so the detector
/// warms that machine up again rather than half-restoring it; today's checkpoint reads back.
@Test func aSensorCheckpointFromBeforeTheStreamTimeChangesIsRefused() throws {
    var det = SensorDetector(spec: SensorSpec(name: "x"), warmupCount: 50)
    var rng = SplitMix64(seed: 8)
    for i in 0..<200 { _ = det.observe(ts: Int64(i) * 1000, value: rng.nextGaussian()) }
    let current = try JSONEncoder().encode(det)
    _ = try JSONDecoder().decode(SensorDetector.self, from: current)
    let added: Set<String> = ["referenceIntervalMs", "poolBucket", "poolPeriod", "poolSum", "poolCount", "firstTs", "constantWarmup"]
    func strip(_ v: Any) -> Any {
        if let d = v as? [String: Any] { return d.filter { !added.contains($0.key) }.mapValues(strip) }
        if let a = v as? [Any] { return a.map(strip) }
        return v
    }
    let old = try JSONSerialization.data(withJSONObject: strip(JSONSerialization.jsonObject(with: current)))
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(SensorDetector.self, from: old) }
}

/// The seasonal profile's cached bucket agrees with the computed one for readings in order
/// (1 s apart, with gaps), jumps back and forth, negative times and odd bucket counts.
@Test func seasonalBucketCacheMatchesDivision() {
    var rng = SplitMix64(seed: 13)
    for (period, n) in [(Int64(86_400_000), 288), (604_800_000, 2016), (1000, 7), (999, 1000), (5, 3)] {
        var profile = SeasonalProfile(periodMs: period, buckets: n)
        var ts = Int64(rng.next() % 4_000_000_000_000) - 2_000_000_000_000
        for _ in 0..<20_000 {
            switch rng.next() % 10 {
            case 0: ts = Int64(rng.next() % 4_000_000_000_000) - 2_000_000_000_000
            case 1: ts -= Int64(rng.next() % 10_000)
            case 2: ts += Int64(rng.next() % 1_000_000)
            default: ts += Int64(rng.next() % 2000)
            }
            let direct = SeasonalProfile.directBucket(ts, buckets: n, period: period)
            let found = profile.bucket(ts, buckets: n)
            #expect(found.bucket == direct.bucket && found.period == (ts - direct.phase) / period, "ts \(ts)")
        }
    }
}

/// The likelihood tests' limit is stated per 5-minute reading: a stream read every second gets a
/// limit 300 times smaller per reading (the same false alerts per day), a slower stream keeps it,
/// and so does a stream whose interval is not known yet, or with the scaling off.
@Test func theTailLimitIsABudgetPerFiveMinutesOfStream() {
    let p = UnivariateParameters()
    #expect(p.likelihoodTailLimit == 1e-6 && p.referenceIntervalMs == 300_000)
    func limit(_ p: UnivariateParameters, _ intervalMs: Double) -> Double { exp(SensorDetector.logTailLimit(p, meanIntervalMs: intervalMs)) }
    func near(_ a: Double, _ b: Double) -> Bool { abs(a / b - 1) < 1e-9 }
    #expect(near(limit(p, 1000), 1e-6 / 300))
    #expect(near(limit(p, 60_000), 1e-6 / 5))
    #expect(near(limit(p, 300_000), 1e-6))
    #expect(near(limit(p, 3_600_000), 1e-6))
    #expect(near(limit(p, 0), 1e-6))
    var off = p
    off.referenceIntervalMs = 0
    #expect(near(limit(off, 1000), 1e-6))
}

/// A stream is fast when five readings span at most the 5-minute reference (read every minute or
/// more often); there a reading further than the limit from the median of five is replaced by it,
/// and every other reading passes unchanged.
@Test func fastStreamsReplaceAnOutlierAloneByTheMedianOfFive() {
    let p = UnivariateParameters()
    #expect(p.impulseFilterFastStreams && !p.impulseFilter)
    #expect(SensorDetector.isFastStream(p, meanIntervalMs: 1000))
    #expect(SensorDetector.isFastStream(p, meanIntervalMs: 60_000))
    #expect(!SensorDetector.isFastStream(p, meanIntervalMs: 60_001))
    #expect(!SensorDetector.isFastStream(p, meanIntervalMs: 300_000))
    #expect(!SensorDetector.isFastStream(p, meanIntervalMs: 0))   // interval not known yet
    var off = p
    off.impulseFilterFastStreams = false
    #expect(!SensorDetector.isFastStream(off, meanIntervalMs: 1000))
    #expect(SensorDetector.isBeyondMedianOfFive([10, 9, 11, 10, 20], limit: 4))
    #expect(!SensorDetector.isBeyondMedianOfFive([10, 9, 11, 10, 14], limit: 4))
    #expect(SensorDetector.isBeyondMedianOfFive([10, 9, 11, 10, 5.5], limit: 4))
    #expect(!SensorDetector.isBeyondMedianOfFive([10, 9, 11, 10, 6], limit: 4))
    // The third reading of a step moves the median: it passes.
    #expect(SensorDetector.isBeyondMedianOfFive([10, 10, 10, 20, 20], limit: 4))
    #expect(!SensorDetector.isBeyondMedianOfFive([10, 10, 20, 20, 20], limit: 4))
    // The same answer as comparing with the sorted median, on random windows.
    var r = SplitMix64(seed: 9)
    for _ in 0..<20_000 {
        let w = (0..<5).map { _ in (r.nextGaussian() * 3).rounded() }
        let median = w.sorted()[2]
        #expect(SensorDetector.isBeyondMedianOfFive(w, limit: 2) == (abs(w[4] - median) > 2), "window \(w)")
    }

    // On a 1 s stream a lone reading 30 sd out reaches neither the statistical models nor the
    // PCA input replaced, and the static limit still judges it raw.
    var det = SensorDetector(spec: SensorSpec(name: "x", limits: [StaticLimit(max: 70, severity: .critical)]), warmupCount: 400)
    var rng = SplitMix64(seed: 4)
    for i in 0..<1000 { _ = det.observe(ts: Int64(i) * 1000, value: 50 + rng.nextGaussian()) }
    let out = det.observe(ts: 1_000_000, value: 80)
    #expect(out.limitSeverity == .critical && out.modelValue == 80)
    #expect(out.robustZRatio < 1 && out.ewmaZRatio < 1, "robust z \(out.robustZ), EWMA z \(out.ewmaZ)")
    var unfiltered = SensorDetector(spec: SensorSpec(name: "x"), params: off, warmupCount: 400)
    rng = SplitMix64(seed: 4)
    for i in 0..<1000 { _ = unfiltered.observe(ts: Int64(i) * 1000, value: 50 + rng.nextGaussian()) }
    #expect(unfiltered.observe(ts: 1_000_000, value: 80).ewmaZRatio > 1)
}

/// Novelty learns over the warm-up's span of stream time at the 5-minute reference (399 × 5 min):
/// a stream read every 5 minutes is tested right after its 400-reading warm-up, one read every
/// second only after as much stream time, so a spike 10 ranges out is novel at once in the first
/// and is learned in the second until then.
@Test func noveltyLearnsOverTheWarmupsSpanOfStreamTime() {
    func noveltyAt(intervalMs: Int64, spikeAt: Int) -> Double {
        var rng = SplitMix64(seed: 21)
        // A one-reading spike on a 1 s stream is an outlier the fast-stream filter replaces
        // before any model sees it; this test is of novelty's learning span, so the filter is off.
        var params = UnivariateParameters()
        params.impulseFilterFastStreams = false
        var det = SensorDetector(spec: SensorSpec(name: "x"), params: params, warmupCount: 400)
        var ratio = 0.0
        for i in 0...spikeAt {
            let out = det.observe(ts: Int64(i) * intervalMs, value: i == spikeAt ? 50 : 5 * rng.nextUnit())
            if i == spikeAt { ratio = out.noveltyRatio }
        }
        return ratio
    }
    let span = 399 * 300
    #expect(noveltyAt(intervalMs: 300_000, spikeAt: 450) > 1)
    #expect(noveltyAt(intervalMs: 1000, spikeAt: 450) == 0)
    #expect(noveltyAt(intervalMs: 1000, spikeAt: span - 1) == 0)
    #expect(noveltyAt(intervalMs: 1000, spikeAt: span + 10) > 1)
}
