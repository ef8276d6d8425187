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
