// swift-tools-version: 6.1
// libFuzzer binary over Forewarn's outside inputs (Sources/FuzzTargets in the parent package).
// Built only by scripts/fuzz, with -sanitize=fuzzer,address: a separate package so the main
// build and the test suite never see the sanitizer flags.
import PackageDescription

let package = Package(
    name: "forewarn-fuzz",
    dependencies: [.package(name: "forewarn", path: "..")],
    targets: [
        .executableTarget(name: "forewarn-fuzz", dependencies: [.product(name: "FuzzTargets", package: "forewarn")]),
    ],
    swiftLanguageModes: [.v6]
)
