// The `forewarn` executable: one subcommand per role. Only this module bootstraps the
// logging and metrics backends; everything else takes an injected Logger and emits
// through swift-metrics.
import ArgumentParser

/// This build's version: `forewarn --version` and `forewarn_build_info{version}`.
let forewarnVersion = "0.1.0"

@main
struct Forewarn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forewarn",
        abstract: "Predictive-maintenance edge gateway: MQTT → journal → Kafka, anomaly detection, fleet simulation.",
        version: forewarnVersion,
        subcommands: [GatewayCommand.self, DetectorCommand.self, SimulateCommand.self, AlertsCommand.self, DevKafkaCommand.self,
                      EvaluateCommand.self, DetectCommand.self, BenchCommand.self])
}
