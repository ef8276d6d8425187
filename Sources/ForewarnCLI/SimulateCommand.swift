import ArgumentParser

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate", abstract: "Simulate a fleet of machines (under construction).")
    func run() async throws {}
}
