// libFuzzer entry point: FOREWARN_FUZZ_TARGET names the FuzzTarget (payload, topic-template,
// config, model-file, csv, http). Built with -parse-as-library; SwiftPM links an executable's entry
// point as `forewarn_fuzz_main`, which hands over to libFuzzer's driver.
import FuzzTargets
import Foundation

private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["FOREWARN_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTarget(rawValue: name) else {
        fatalError("FOREWARN_FUZZ_TARGET must be one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
    }
    return t
}()

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>,
               _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: FuzzCallback) -> CInt

@_cdecl("forewarn_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    _ = target
    return runDriver(&count, &vector) { start, n in
        target.run(start.map { Array(UnsafeBufferPointer(start: $0, count: n)) } ?? [])
        return 0
    }
}
