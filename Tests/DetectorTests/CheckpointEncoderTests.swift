// The streaming checkpoint encoder writes the document JSONEncoder writes: JSONDecoder reads it
// back to the same state, and a detector restored from it scores the next readings exactly as
// one that never stopped.
import Detection
import Foundation
import Kafka
import Testing
import TestSupport
@testable import Detector

@Suite struct CheckpointEncoderTests {
    /// A partition of three pumps (models/pump.yaml) past their warm-up: windows, profiles, PCA.
    static func warmedState(readings: Int = 700) throws -> (PartitionState, MachineModels) {
        let models = try MachineModels(directory: repoRoot + "/models")
        var state = PartitionState()
        state.nextOffset = 4242
        state.gatewaySeq = ["gw-1": 17, "gw \"2\"": -3]
        var rng = SplitMix64(seed: 5)
        for t in 0..<readings {
            for m in ["m1", "m2", "m3"] {
                for (s, level) in [("vib_rms", 2.0), ("temp_c", 60), ("current_a", 20), ("pressure_bar", 6)] {
                    let v = level * (1 + 0.01 * rng.nextGaussian()) + (t > 600 && m == "m2" ? Double(t - 600) * 0.05 : 0)
                    _ = state.machines[m, default: MachineDetector(config: models.configuration(machine: m, site: "s1"))]
                        .observe(ts: 1_700_000_000_000 + Int64(t) * 1000, sensor: s, value: v)
                }
            }
        }
        return (state, models)
    }

    @Test func readsBackToTheSameState() throws {
        let (state, _) = try Self.warmedState()
        let streamed = try CheckpointEncoder.encode(state)
        let back = try JSONDecoder().decode(PartitionState.self, from: Data(streamed))
        // (Sets, such as the enabled models, come back in another order, so the documents are compared per instance below.)
        for (id, m) in state.machines {
            #expect(back.machines[id]?.config == m.config && back.machines[id]?.score == m.score && back.machines[id]?.isPCAFitted == true)
        }
        #expect(back.nextOffset == 4242 && back.gatewaySeq == ["gw-1": 17, "gw \"2\"": -3] && back.machines.count == 3)
        // The same document as JSONEncoder's, member order aside.
        let foundation = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? NSDictionary
        #expect(try JSONSerialization.jsonObject(with: Data(streamed)) as? NSDictionary == foundation)
    }

    @Test func aRestoredDetectorScoresAsOneThatNeverStopped() throws {
        let (state, models) = try Self.warmedState(readings: 650)
        var restored = try JSONDecoder().decode(PartitionState.self, from: Data(CheckpointEncoder.encode(state)))
        var original = state
        var eventsOriginal: [AlertEvent] = [], eventsRestored: [AlertEvent] = []
        for t in 650..<900 {
            for (s, v) in [("vib_rms", 2.0 + Double(t - 600) * 0.05), ("temp_c", 60), ("current_a", 20), ("pressure_bar", 6)] {
                let ts = 1_700_000_000_000 + Int64(t) * 1000
                eventsOriginal += original.machines["m2"]!.observe(ts: ts, sensor: s, value: v)
                eventsRestored += restored.machines["m2"]!.observe(ts: ts, sensor: s, value: v)
            }
        }
        #expect(!eventsOriginal.isEmpty, "the drift on m2 raises alerts, so the comparison means something")
        #expect(eventsRestored == eventsOriginal)
        #expect(restored.machines["m2"]!.score == original.machines["m2"]!.score)
        _ = models
    }

    /// A machine keeps its sensors in slots, but the checkpoint keeps the layout written before
    /// the slots (one object per kind of state, keyed by sensor name), so checkpoints on disk from
    /// an earlier version still restore, and a restore keeps every sensor's state.
    @Test func machinesKeepTheCheckpointLayoutKeyedBySensorName() throws {
        let (state, _) = try Self.warmedState(readings: 450)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(CheckpointEncoder.encode(state))) as? [String: Any])
        let m1 = try #require((doc["machines"] as? [String: Any])?["m1"] as? [String: Any])
        let sensors: Set = ["vib_rms", "temp_c", "current_a", "pressure_bar"]
        for key in ["sensors", "lastValues", "lastOutputs", "healthAlerts"] {
            #expect(((m1[key] as? [String: Any]).map { Set($0.keys) }) == sensors, "\(key) is an object keyed by sensor name")
        }
        #expect(m1["trendBeyondSince"] is [String: Any])
        #expect(Set(m1.keys) == ["config", "sensors", "lastValues", "lastOutputs", "pca", "pcaOutput", "machineAlerts", "healthAlerts",
                                 "trendResetPending", "trendBeyondSince", "pendingBucket", "pendingTs", "score", "topModel", "topSensors"])
        // Dropping one sensor's entries from every object leaves a machine of three sensors.
        var edited = m1
        for key in ["sensors", "lastValues", "lastOutputs", "healthAlerts"] {
            var o = edited[key] as! [String: Any]
            o["temp_c"] = nil
            edited[key] = o
        }
        let back = try JSONDecoder().decode(MachineDetector.self, from: JSONSerialization.data(withJSONObject: edited))
        let again = try #require(try JSONSerialization.jsonObject(with: Data(CheckpointEncoder.encode(back))) as? [String: Any])
        #expect((again["sensors"] as? [String: Any]).map { Set($0.keys) } == sensors.subtracting(["temp_c"]))
    }

    @Test func alertsAndNullsAsJSONEncoderWritesThem() throws {
        let event = AlertEvent(alertId: "a-1", machine: "m\n1", site: "s1", state: .open, severity: .warning, kind: .machine, model: "pca",
                               sensors: ["vib_rms"], score: 0.75, threshold: 0.5, openedAt: 1, ts: 2, evidence: ["x": 1e-7, "y": 12345678.9],
                               timeToThresholdS: nil)
        let streamed = try CheckpointEncoder.encode(event)
        #expect(String(decoding: streamed, as: UTF8.self).contains(#""time_to_threshold_s":null"#))
        #expect(try JSONDecoder().decode(AlertEvent.self, from: Data(streamed)) == event)
    }

    @Test func integersAsStringWritesThem() {
        var rng = SplitMix64(seed: 9)
        var values: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, .max, .min, .max - 1, .min + 1, 999_999_999_999_999]
        for _ in 0..<10_000 { values.append(Int64(bitPattern: rng.next()) >> (rng.next() % 64)) }
        for v in values {
            var out: [UInt8] = []
            JSONStreamWriter.decimal(v, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(v))
        }
        var out: [UInt8] = []
        JSONStreamWriter.integer(UInt64.max, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(UInt64.max))
    }

    @Test func declinesWhatItCannotWrite() {
        #expect(throws: CheckpointEncodingError.self) { try CheckpointEncoder.encode([1.0, .infinity]) }
        #expect(throws: CheckpointEncodingError.self) { try CheckpointEncoder.encode(["at": Date()]) }
    }
}
