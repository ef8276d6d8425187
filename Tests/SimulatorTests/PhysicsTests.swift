import Testing
@testable import Simulator

@Suite struct DeterminismTests {
    @Test func sameSeedGivesIdenticalReadingsAndTruth() throws {
        let scenario = try shippedScenario("default.yaml")
        var a = try FleetSimulator(scenario: scenario, seed: 42)
        var b = try FleetSimulator(scenario: scenario, seed: 42)
        let ra = a.run(for: 30 * minute)
        let rb = b.run(for: 30 * minute)
        #expect(ra.count == 6 * 4 * 1800)
        #expect(ra == rb)
        #expect(a.truth == b.truth)
        #expect(a.truth.count == 3)
    }

    @Test func differentSeedGivesDifferentNoiseOnTheSameClock() throws {
        let scenario = try shippedScenario("default.yaml")
        var a = try FleetSimulator(scenario: scenario, seed: 1)
        var b = try FleetSimulator(scenario: scenario, seed: 2)
        let ra = a.run(for: 10 * minute)
        let rb = b.run(for: 10 * minute)
        #expect(ra.map(\.ts) == rb.map(\.ts))
        let differing = zip(ra, rb).filter { $0.value != $1.value }.count
        #expect(differing > ra.count * 9 / 10)
    }

    @Test func randomFaultsFollowTheSeed() throws {
        let yaml = """
            machines: [{count: 20, prefix: p, site: s1}]
            random_faults: {count: 4, onset: [1h, 2h], time_to_failure: [2h, 3h]}
            """
        let scenario = try Scenario.parse(yaml: yaml)
        let a = try FleetSimulator(scenario: scenario, seed: 5)
        let b = try FleetSimulator(scenario: scenario, seed: 5)
        let c = try FleetSimulator(scenario: scenario, seed: 6)
        #expect(a.truth == b.truth)
        #expect(a.truth != c.truth)
        #expect(a.truth.count == 4)
        #expect(Set(a.truth.map(\.machine)).count == 4)
        for t in a.truth {
            #expect(t.kind.isDegradation)
            #expect((a.start + hour...a.start + 2 * hour).contains(t.onset))
            let failure = try #require(t.failure)
            // Calibrated to the drawn time to failure, to the sample.
            #expect((t.onset + 2 * hour - 1000...t.onset + 3 * hour + 1000).contains(failure))
        }
    }

    @Test func truthLineIsTheDocumentedJSON() {
        let t = FaultTruth(machine: "p2", kind: .bearingWear, onset: 10, failure: 20, sensors: ["vib_rms", "temp_c"])
        #expect(t.jsonLine() == #"{"machine":"p2","kind":"bearing-wear","onset":10,"failure":20,"sensors":["vib_rms","temp_c"]}"#)
        let s = FaultTruth(machine: "p3", kind: .stuck, onset: 10, failure: nil, sensors: ["temp_c"])
        #expect(s.jsonLine() == #"{"machine":"p3","kind":"stuck","onset":10,"failure":null,"sensors":["temp_c"]}"#)
    }
}

@Suite struct DegradationTests {
    /// Runs the scenario past its fault's failure and checks the primary sensor of the faulted
    /// machine: noise-free value healthy on every sample before `failure`, failed at `failure`,
    /// and the published (noisy) values visibly there too.
    @Test(arguments: [
        ("fault-bearing-wear.yaml", PumpSensor.vibration),
        ("fault-imbalance.yaml", .vibration),
        ("fault-overheating.yaml", .temperature),
        ("fault-friction.yaml", .current),
        ("fault-leak.yaml", .pressure),
    ])
    func crossesItsThresholdAtTheTruthFailureTime(file: String, primary: PumpSensor) throws {
        let scenario = try shippedScenario(file)
        var fleet = try FleetSimulator(scenario: scenario, seed: 7)
        #expect(fleet.truth.count == 1)
        let truth = try #require(fleet.truth.first)
        #expect(truth.kind.primary == primary)
        #expect(truth.sensors.first == primary.rawValue)
        let failure = try #require(truth.failure)
        #expect(failure > truth.onset)
        // time_to_failure is honoured to the sample, whatever the load and ambient do.
        if let ttf = scenario.faults[0].timeToFailure {
            #expect(abs(failure - (truth.onset + ttf)) <= 1000)
        }

        let m = fleet.index(of: truth.machine)
        let s = fleet.sensorIndex(m, primary)
        let readings = fleet.run(for: failure - fleet.start + 10 * minute).filter { $0.machine == m && $0.sensor == s }
        let threshold = primary.failureThreshold
        func failed(_ v: Double) -> Bool { primary.failsBelow ? v <= threshold : v >= threshold }

        let before = readings.filter { $0.ts < failure }
        #expect(!before.isEmpty)
        #expect(before.allSatisfy { !failed($0.clean) }, "noise-free value failed before the truth's failure time")
        let at = try #require(readings.first { $0.ts == failure })
        #expect(failed(at.clean))
        // Healthy before onset, with a clear margin.
        let healthy = before.filter { $0.ts < truth.onset }
        #expect(healthy.allSatisfy { primary.margin(from: $0.value) > 0.3 * primary.margin(from: primary.healthy) })
        // What goes on the wire shows it too: the mean of the ten minutes after failure is past the threshold.
        let after = readings.filter { $0.ts >= failure }.map(\.value)
        let mean = after.reduce(0, +) / Double(after.count)
        #expect(primary.failsBelow ? mean <= threshold + 0.02 : mean >= threshold - 0.02 * threshold)
    }

    @Test func bearingWearAcceleratesAndWarmsTheBearing() throws {
        let fleet = try FleetSimulator(scenario: try shippedScenario("fault-bearing-wear.yaml"), seed: 7)
        let truth = fleet.truth[0]
        let failure = try #require(truth.failure)
        let m = fleet.index(of: "m2")
        let vib = fleet.sensorIndex(m, .vibration), temp = fleet.sensorIndex(m, .temperature)
        let machine = fleet.machines[m]
        // Exponential: the last hour before failure adds more than the first two hours after onset.
        let firstTwo = machine.cleanValue(vib, at: truth.onset + 2 * hour) - machine.cleanValue(vib, at: truth.onset)
        let lastOne = machine.cleanValue(vib, at: failure) - machine.cleanValue(vib, at: failure - hour)
        #expect(lastOne > firstTwo)
        // The healthy twin m1 at the same instant shows how much warmer the worn bearing runs.
        let healthy = fleet.machines[fleet.index(of: "m1")]
        let warmer = machine.cleanValue(temp, at: failure) - healthy.cleanValue(temp, at: failure)
        #expect(warmer > 1.5 && warmer < 10)
    }

    @Test func imbalanceStepsAtOnsetAndANeverFailingOneHasNoFailure() throws {
        let yaml = """
            machines: [{id: a, site: s1}, {id: b, site: s1}]
            faults:
              - {machine: a, kind: imbalance, onset: 1h, step: 2.0}
              - {machine: b, kind: imbalance, onset: 1h, step: 2.0, rate: 0.5}
            """
        let fleet = try FleetSimulator(scenario: try Scenario.parse(yaml: yaml), seed: 3)
        #expect(fleet.truth[0].failure == nil)
        let failure = try #require(fleet.truth[1].failure)
        // 2.5 + 2.0 + 0.5/h reaches 7.1 after about 5.2 h (the machine's offset and load move it a little).
        #expect(abs(Double(failure - fleet.truth[1].onset) / Double(hour) - 5.2) < 0.6)
        let a = fleet.machines[0]
        let vib = fleet.sensorIndex(0, .vibration)
        let onset = fleet.truth[0].onset
        #expect(abs(a.cleanValue(vib, at: onset) - a.cleanValue(vib, at: onset - 1000) - 2.0) < 0.01)
    }
}

@Suite struct HealthyAndSensorFaultTests {
    @Test func healthyMachinesStayWellAwayFromTheThresholdsForADay() throws {
        let yaml = "machines: [{count: 4, prefix: h, site: s1}]"
        var fleet = try FleetSimulator(scenario: try Scenario.parse(yaml: yaml), seed: 11)
        var lo: [PumpSensor: Double] = [:], hi: [PumpSensor: Double] = [:]
        var count = 0
        for _ in 0..<24 {
            for r in fleet.run(for: hour) {
                let k = fleet.machines[r.machine].sensors[r.sensor].kind
                lo[k] = min(lo[k] ?? .infinity, r.value)
                hi[k] = max(hi[k] ?? -.infinity, r.value)
                count += 1
            }
        }
        #expect(count == 4 * 4 * 86_400)
        // Noisy values, including the night shift, the peak shift and the ambient swing.
        #expect(hi[.vibration]! < 4.0 && lo[.vibration]! > 1.0)
        #expect(hi[.temperature]! < 70 && lo[.temperature]! > 40)
        #expect(hi[.current]! < 25 && lo[.current]! > 13)
        #expect(lo[.pressure]! > 5.4 && hi[.pressure]! < 6.6)
        // The load and the day do move them: a flat line would not exercise a detector.
        #expect(hi[.temperature]! - lo[.temperature]! > 6)
        #expect(hi[.current]! - lo[.current]! > 4)
    }

    @Test func stuckSensorRepeatsOneValue() throws {
        var fleet = try FleetSimulator(scenario: try shippedScenario("fault-stuck-sensor.yaml"), seed: 7)
        let t = fleet.truth[0]
        #expect(t.kind == .stuck && t.failure == nil && t.sensors == ["temp_c"])
        let m = fleet.index(of: "m2"), s = fleet.sensorIndex(m, .temperature)
        let readings = fleet.run(for: 3 * hour).filter { $0.machine == m && $0.sensor == s }
        let during = readings.filter { $0.ts >= t.onset && $0.ts < t.onset + hour }
        #expect(during.count == 3600)
        #expect(Set(during.map(\.value)).count == 1)
        // It freezes at the last value it reported.
        #expect(during[0].value == readings.last { $0.ts < t.onset }!.value)
        let beforeValues = readings.filter { $0.ts >= t.onset - hour && $0.ts < t.onset }.map(\.value)
        let afterValues = readings.filter { $0.ts >= t.onset + hour }.map(\.value)
        #expect(Set(beforeValues).count > 100)
        #expect(Set(afterValues).count > 100)
    }

    @Test func dropoutLeavesAGap() throws {
        var fleet = try FleetSimulator(scenario: try shippedScenario("fault-dropout.yaml"), seed: 7)
        let t = fleet.truth[0]
        #expect(t.kind == .dropout && t.failure == nil && t.sensors.count == 4)
        let m = fleet.index(of: "m2")
        let readings = fleet.run(for: 2 * hour)
        let mine = readings.filter { $0.machine == m }
        #expect(mine.filter { $0.ts >= t.onset && $0.ts < t.onset + 15 * minute }.isEmpty)
        #expect(mine.contains { $0.ts == t.onset - 1000 })
        #expect(mine.contains { $0.ts == t.onset + 15 * minute })
        #expect(mine.count == 4 * (7200 - 900))
        // Only m2 drops out.
        #expect(readings.filter { $0.machine != m }.count == 2 * 4 * 7200)
    }

    @Test func spikesAreImpossibleValuesOnlyInTheirWindow() throws {
        var fleet = try FleetSimulator(scenario: try shippedScenario("fault-spikes.yaml"), seed: 7)
        let t = fleet.truth[0]
        #expect(t.kind == .spikes && t.failure == nil && t.sensors == ["vib_rms"])
        let m = fleet.index(of: "m2"), s = fleet.sensorIndex(m, .vibration)
        let readings = fleet.run(for: 4 * hour).filter { $0.machine == m && $0.sensor == s }
        func impossible(_ v: Double) -> Bool { v < 0 || v > 15 }
        let inside = readings.filter { $0.ts >= t.onset && $0.ts < t.onset + 2 * hour }
        let spikes = inside.filter { impossible($0.value) }
        // About 1 % of 7200 readings.
        #expect(spikes.count > 30 && spikes.count < 130)
        #expect(spikes.contains { $0.value < 0 } && spikes.contains { $0.value > 15 })
        #expect(!readings.filter { $0.ts < t.onset || $0.ts >= t.onset + 2 * hour }.contains { impossible($0.value) })
        // The noise-free value underneath is healthy.
        #expect(spikes.allSatisfy { $0.clean < 4 })
    }

    @Test func sampleRatesArePerSensor() throws {
        let yaml = """
            machine_types:
              slowpump:
                sample_rate: 0.2
                sensors: {vib_rms: {sample_rate: 10}, temp_c: ~}
            machines: [{id: a, type: slowpump, site: s1}]
            """
        var fleet = try FleetSimulator(scenario: try Scenario.parse(yaml: yaml), seed: 1)
        let readings = fleet.run(for: 60_000)
        #expect(readings.filter { $0.sensor == 0 }.count == 600)
        #expect(readings.filter { $0.sensor == 1 }.count == 12)
        #expect(readings.map(\.ts) == readings.map(\.ts).sorted())
    }
}
