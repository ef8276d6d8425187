// swift-tools-version: 6.1
// Forewarn: predictive-maintenance edge gateway. One executable product, `forewarn`,
// with subcommands; one module per role; only the wrapper modules import the C shims.
import PackageDescription

let package = Package(
    name: "forewarn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "forewarn", targets: ["ForewarnCLI"]),
        // For the libFuzzer package in Fuzz/ only.
        .library(name: "FuzzTargets", targets: ["FuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C shims: system libraries found through pkg-config, installed from Debian.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Domain types, codecs, topic mapping and configuration. No I/O beyond reading files.
        .target(name: "ForewarnCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // Swift faces on the C libraries: the only modules that import the shims.
        .target(name: "Kafka", dependencies: [
            "CRdKafka",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "MQTT", dependencies: [
            "CMosquitto",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Journal", dependencies: [
            "CSQLite", "ForewarnCore",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // What every service binary shares: the /metrics + /healthz endpoint (POSIX sockets, no swift-nio),
        // systemd notify and watchdog, and blocking loops on dedicated threads.
        .target(name: "ServiceSupport", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .target(name: "Gateway", dependencies: [
            "ForewarnCore", "Kafka", "MQTT", "Journal", "ServiceSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Pure anomaly models with no I/O, so the same code runs online and in offline evaluation.
        .target(name: "Detection"),
        // Offline evaluation: SKAB/NAB CSV loading, replay, scorers.
        .target(name: "Evaluation", dependencies: ["Detection"]),
        // The detector service: Kafka consumer group → models → alerts topic.
        .target(name: "Detector", dependencies: [
            "ForewarnCore", "Kafka", "Detection", "ServiceSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Fleet simulator: machine physics, faults, ground truth, MQTT publishing.
        .target(name: "Simulator", dependencies: [
            "ForewarnCore", "MQTT",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // Scenario → detectors in process, scored against the truth (evaluate simulation, tests).
        .target(name: "FleetEvaluation", dependencies: ["Simulator", "Detection", "Detector", "Evaluation"]),
        .executableTarget(name: "ForewarnCLI", dependencies: [
            "ForewarnCore", "Kafka", "Journal", "Gateway", "ServiceSupport", "Detection", "Evaluation", "Detector", "Simulator", "FleetEvaluation",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // Every outside input as a fuzz target, shared by Fuzz/ (libFuzzer) and the corpus replay test.
        .target(name: "FuzzTargets", dependencies: ["ForewarnCore", "Detector", "Evaluation", "ServiceSupport"]),

        .testTarget(name: "ForewarnCoreTests", dependencies: ["ForewarnCore"]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzTargets"], exclude: ["Corpus"]),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "ForewarnCore", "TestSupport"]),
        .testTarget(name: "DetectionTests", dependencies: ["Detection", "Evaluation"]),
        .testTarget(name: "DetectorTests", dependencies: ["Detector", "Detection", "ForewarnCore", "Kafka", "TestSupport"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "ForewarnCore", "TestSupport"]),
        .testTarget(name: "FleetEvaluationTests", dependencies: ["FleetEvaluation", "Simulator", "Detection", "Detector", "Evaluation", "ForewarnCore"],
                    exclude: ["shift-change.yaml", "slow-ramp.yaml"]),
        // The whole chain: simulator → mosquitto → gateway → dev-kafka → detector → alerts.
        .testTarget(name: "EndToEndTests", dependencies: ["Detection", "Evaluation", "Kafka", "TestSupport"], exclude: ["e2e-scenario.yaml"]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "ForewarnCore", "Journal", "Kafka", "MQTT", "ServiceSupport", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["Kafka", "MQTT", "Journal"], path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
