// The `forewarn` executable: one subcommand per role. Only this module bootstraps the
// logging and metrics backends; everything else takes an injected Logger and emits
// through swift-metrics.
import ArgumentParser

@main
struct Forewarn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forewarn",
        abstract: "Predictive-maintenance edge gateway: MQTT → journal → Kafka, anomaly detection, fleet simulation.",
        subcommands: [GatewayCommand.self, DetectorCommand.self, SimulateCommand.self, AlertsCommand.self, DevKafkaCommand.self,
                      EvaluateCommand.self, DetectCommand.self, BenchCommand.self])
}
