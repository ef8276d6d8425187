// Replays the kept fuzz corpus (inputs the fuzzers found interesting, and hand-written hostile
// ones) through the same targets the libFuzzer binaries run, so every input that once crashed or
// hung stays in the suite. A crash here is a precondition failure in the target or the code.
import Foundation
import FuzzTargets
import Testing

let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")

@Suite("Fuzz corpus replay")
struct FuzzCorpusTests {
    @Test("every kept input runs through its target without a crash", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let dir = corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
        #expect(files.count >= 5, "corpus for \(target.rawValue) has \(files.count) inputs")
        for f in files {
            let data = try [UInt8](Data(contentsOf: dir.appendingPathComponent(f)))
            target.run(data)
        }
    }
}

@Suite("Hostile inputs too large to keep as files")
struct HostileInputTests {
    @Test("a 10 MB payload, a 10 MB CSV line and a 1 MB model file run through their targets")
    func largeInputs() {
        let topic = Array("\u{0}factory/s1/m1/temp\n".utf8)
        FuzzTarget.payload.run(topic + [UInt8](repeating: UInt8(ascii: "9"), count: 10 << 20))
        FuzzTarget.payload.run(topic + Array("{\"ts\":1700000000000,\"value\":1,\"unit\":\"".utf8) + [UInt8](repeating: 0x61, count: 10 << 20))
        FuzzTarget.csv.run(Array("timestamp,value\n2014-01-01 00:00:00,".utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 10 << 20))
        FuzzTarget.modelFile.run(Array("type: x\nmachines: ['*']\ndescription: \"".utf8) + [UInt8](repeating: 0x62, count: 1 << 20) + [0x22])
    }
}

@Suite("Payload scanner against the general parser")
struct PayloadScannerMutationTests {
    /// SplitMix64: the same inputs on every run.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("40,000 mutations of the usual payloads parse alike with and without the scanner")
    func mutations() {
        let seeds = [#"{"ts": 1796000000000, "value": 50.123, "unit": "mm/s"}"#, #"{"value":-0.5e-3,"seq":7,"x":null}"#,
                     " 3.25 ", #"{"ts":null,"value":12345678901234567890,"unit":"ünit"}"#]
        let alphabet = Array(#"{}[]":,.-+eE0123456789 nulltrue\"#.utf8) + [0x00, 0x0A, 0x1F, 0x7F, 0x80, 0xC3, 0xBC, 0xFF]
        var rng = Seeded(state: 11)
        for i in 0..<40_000 {
            var p = Array(seeds[i % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0...p.count, using: &rng)
                let c = alphabet.randomElement(using: &rng)!
                switch Int.random(in: 0..<3, using: &rng) {
                case 0 where at < p.count: p[at] = c
                case 1 where at < p.count: p.remove(at: at)
                default: p.insert(c, at: at)
                }
            }
            FuzzTarget.payload.run([0] + Array("factory/s1/m1/temp\n".utf8) + p)
        }
    }
}
