import ForewarnCore
import Testing
@testable import Simulator

@Suite struct ScenarioTests {
    @Test func defaultScenarioHasTwoDegradationsFailingWithinSixHours() throws {
        let scenario = try shippedScenario("default.yaml")
        #expect(scenario.machines.count >= 4 && scenario.machines.count <= 8)
        #expect(Set(scenario.machines.map(\.site)) == ["s1"])
        let fleet = try FleetSimulator(scenario: scenario, seed: scenario.seed ?? 1)
        let degradations = fleet.truth.filter { $0.kind.isDegradation }
        let failingEarly = degradations.filter { t in t.failure.map { $0 <= fleet.start + 6 * hour } ?? false }
        #expect(failingEarly.count >= 2)
        // A healthy first hour for warm-up, and healthy machines besides.
        #expect(fleet.truth.allSatisfy { $0.onset >= fleet.start + hour })
        #expect(Set(fleet.truth.map(\.machine)).count < scenario.machines.count)
        // Other seeds too: the failures are calibrated, not lucky.
        for seed in [1, 2, 3] as [UInt64] {
            let f = try FleetSimulator(scenario: scenario, seed: seed)
            #expect(f.truth.filter { $0.failure.map { $0 <= f.start + 6 * hour } ?? false }.count >= 2)
        }
    }

    @Test func everyShippedScenarioLoads() throws {
        let expected: [String: FaultKind] = [
            "fault-bearing-wear.yaml": .bearingWear, "fault-imbalance.yaml": .imbalance, "fault-overheating.yaml": .overheating,
            "fault-friction.yaml": .friction, "fault-leak.yaml": .leak, "fault-stuck-sensor.yaml": .stuck,
            "fault-dropout.yaml": .dropout, "fault-spikes.yaml": .spikes,
        ]
        for (file, kind) in expected {
            let s = try shippedScenario(file)
            #expect(s.faults.map(\.kind) == [kind], "\(file)")
            _ = try FleetSimulator(scenario: s, seed: 1)
        }
        let fleet = try shippedScenario("fleet-200.yaml")
        #expect(fleet.machines.count == 200)
        #expect(fleet.faults.isEmpty && fleet.randomFaults == nil)
        #expect(Set(fleet.machines.map(\.id)).count == 200)
    }

    /// The error names the key, so a typo is found at once.
    @Test(arguments: [
        ("machines: [{id: p1, site: s1}]\nfualts: []", "fualts"),
        ("machines: [{id: p1, site: s1, colour: red}]", "machines[0].colour"),
        ("machines: [{id: p1, site: s1}]\nfaults: [{machine: p1, kind: leak, onset: 1h, time_to_failure: 2h, step: 3}]", "faults[0].step"),
        ("machines: [{id: p1, site: s1}]\nfaults: [{machine: p1, kind: leak, onset: soon, time_to_failure: 2h}]", "faults[0].onset"),
        ("machines: [{id: p1, site: s1}]\nfaults: [{machine: p1, kind: melt, onset: 1h}]", "faults[0].kind"),
        ("machines: [{id: p1, site: s1}]\nfaults: [{machine: p9, kind: leak, onset: 1h, rate: 1}]", "faults[0].machine"),
        ("machines: [{id: p1, site: s1}]\nfaults: [{machine: p1, kind: stuck, onset: 1h, sensors: [flow]}]", "faults[0].sensors"),
        ("machines: [{id: p1, site: s1}]\npayload: xml", "payload"),
        ("machines: [{id: p1, type: turbine, site: s1}]", "machines[0].type"),
        ("machine_types: {pump: {sensors: {vib_rms: {sample_rate: fast}}}}\nmachines: [{id: p1, site: s1}]", "machine_types.pump.sensors.vib_rms.sample_rate"),
        ("machine_types: {pump: {sensors: {flow_lpm: {}}}}\nmachines: [{id: p1, site: s1}]", "machine_types.pump.sensors.flow_lpm"),
        ("sites: [s1]\nmachines: [{id: p1, site: s2}]", "machines[0].site"),
        ("machines: [{id: 'p 1', site: s1}]", "machines[0].id"),
        ("machines: [{id: p1, site: s1}]\nrandom_faults: {count: 2}", "random_faults.count"),
        ("load: {shifts: [{start: '25:00', load: 1}]}\nmachines: [{id: p1, site: s1}]", "load.shifts[0].start"),
        ("name: x", "machines"),
    ])
    func badScenarioNamesTheKey(yaml: String, key: String) {
        do {
            let s = try Scenario.parse(yaml: yaml)
            _ = try FleetSimulator(scenario: s, seed: 1)
            Issue.record("accepted a bad scenario; expected an error for \(key)")
        } catch {
            #expect(error.key == key)
            #expect(error.description.contains("'\(key)'"))
        }
    }

    @Test func durations() {
        #expect(parseSimDuration("90") == 90_000)
        #expect(parseSimDuration("30m") == 1_800_000)
        #expect(parseSimDuration("6h") == 21_600_000)
        #expect(parseSimDuration("1d") == 86_400_000)
        #expect(parseSimDuration("1h30m") == 5_400_000)
        #expect(parseSimDuration("1.5h") == 5_400_000)
        #expect(parseSimDuration("250ms") == 250)
        #expect(parseSimDuration("soon") == nil)
        #expect(parseSimDuration("5x") == nil)
        #expect(parseSimDuration("-3") == nil)
        #expect(formatSimDuration(5_400_000) == "1h30m")
    }

    @Test func loadProfileRampsBetweenShifts() {
        let p = LoadProfile.threeShifts
        let day = defaultSimulationStart // midnight UTC
        #expect(p.load(at: day + 3 * hour) == 0.55)
        #expect(p.load(at: day + 10 * hour) == 1.0)
        #expect(p.load(at: day + 18 * hour) == 0.85)
        let mid = p.load(at: day + 6 * hour + 7 * minute + 30_000)
        #expect(abs(mid - 0.775) < 1e-9)
    }
}

@Suite struct PayloadTests {
    /// What the simulator publishes is what the gateway accepts, in every form.
    @Test(arguments: PayloadForm.allCases)
    func gatewayParserAcceptsEveryForm(form: PayloadForm) throws {
        var fleet = try FleetSimulator(scenario: try shippedScenario("default.yaml"), seed: 42)
        let readings = fleet.run(for: 3000)
        let encoder = PayloadEncoder(fleet: fleet, form: form)
        let parser = PayloadParser(template: try TopicTemplate("factory/{site}/{machine}/{sensor}"))
        var parsed: [Reading] = []
        var messages = 0
        try encoder.encode(readings[...]) { topic, payload, n in
            let got = try #require(try? parser.parse(topic: topic, payload: payload, receivedAt: 5))
            #expect(got.count == n)
            parsed += got
            messages += 1
        }
        #expect(parsed.count == readings.count)
        #expect(messages == (form == .batch ? 6 * 3 : readings.count))
        for (r, p) in zip(readings, parsed) {
            #expect(p.site == "s1")
            #expect(p.machine == fleet.machineID(r))
            #expect(p.sensor == fleet.sensorName(r))
            #expect(p.value == r.value)
            #expect(p.ts == (form == .plain ? 5 : r.ts))
            if form == .object { #expect(p.unit == fleet.machines[r.machine].sensors[r.sensor].unit) }
        }
    }
}
