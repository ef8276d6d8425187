import Foundation
@testable import Simulator

/// The repository's simulators/ directory, found from this file.
let scenariosDirectory: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("simulators").path
}()

func shippedScenario(_ name: String) throws -> Scenario {
    try Scenario.load(path: scenariosDirectory + "/" + name)
}

let hour: Int64 = 3_600_000
let minute: Int64 = 60_000

extension FleetSimulator {
    /// Runs `duration` more of simulated time and returns its readings.
    mutating func run(for duration: Int64) -> [SimReading] {
        var out: [SimReading] = []
        advance(until: now + duration, into: &out)
        return out
    }

    func index(of machine: String) -> Int { machines.firstIndex { $0.spec.id == machine }! }
    func sensorIndex(_ machine: Int, _ kind: PumpSensor) -> Int { machines[machine].sensors.firstIndex { $0.kind == kind }! }
}
