import ArgumentParser
import Dispatch
import ForewarnCore
import Foundation
import Logging
import MQTT
import Simulator

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate a fleet of machines with injected faults and publish their readings over MQTT.",
        discussion: """
        Readings carry simulated timestamps from --start, so a seed and a scenario always give the same \
        readings and the same truth. The run takes duration/speed of wall time (--speed 3600 plays one \
        simulated hour per second; --speed max goes as fast as the broker acknowledges). At the end it \
        waits for every PUBACK and prints `published N readings` on stdout; SIGINT or SIGTERM end the run \
        early and still print it. Progress and the measured throughput go to stderr.
        """)

    @Option(help: "Scenario YAML file (see simulators/).") var scenario: String
    @Option(help: "MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT.") var mqtt = "mqtt://127.0.0.1:1883"
    @Option(help: "Simulated time to run: 30m, 6h, 1d, 1h30m or seconds (default: the scenario's, else until stopped).")
    var duration: String?
    @Option(help: "Simulated seconds per wall second, or max.") var speed = "1"
    @Option(help: "Write one JSON line per injected fault to this file.") var truth: String?
    @Option(help: "Random seed (default: the scenario's, else 1).") var seed: UInt64?
    @Option(help: "Simulated start, epoch ms.") var start: Int64 = defaultSimulationStart
    @Option(help: "Payload form: object, batch or plain (default: the scenario's).") var payload: String?
    // 100, not more: libmosquitto walks its in-flight list on every PUBACK, so on a local broker
    // 1000 in flight measured 40k readings/s against 70k with 100. Raise it for a distant broker.
    @Option(name: .customLong("max-inflight"), help: "Unacknowledged QoS 1 messages allowed in flight (raise for high-latency brokers).")
    var maxInflight = 100
    @Option(name: .customLong("client-id"), help: "MQTT client id.") var clientID = "forewarn-sim-\(getpid())"
    @Option(help: "MQTT user name (password from $FOREWARN_MQTT_PASSWORD or --password-file).") var username: String?
    @Option(name: .customLong("password-file"), help: "File holding the MQTT password.") var passwordFile: String?
    @Option(name: .customLong("ca-file"), help: "CA certificate for mqtts:// (default: the system store).") var caFile: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Flag(help: "Print the truth (with failure times) for the scenario and seed, and exit without publishing.")
    var plan = false

    func run() throws {
        let scen: Scenario
        do { scen = try Scenario.load(path: scenario) } catch { fail("--scenario \(scenario): \(error)") }
        let url: MQTTURL
        do { url = try MQTTURL.parse(mqtt, key: "--mqtt") } catch { fail("--mqtt: \(error.message)") }
        var runDuration = scen.duration
        if let duration {
            guard let d = parseSimDuration(duration), d > 0 else { fail("--duration '\(duration)' must be a positive duration such as 30m, 6h, 1d or seconds") }
            runDuration = d
        }
        let pace: Double
        if speed == "max" { pace = .infinity } else {
            guard let s = Double(speed), s.isFinite, s > 0 else { fail("--speed '\(speed)' must be a positive number or max") }
            pace = s
        }
        var form = scen.payload
        if let payload {
            guard let p = PayloadForm(rawValue: payload) else { fail("--payload '\(payload)' must be one of object, batch, plain") }
            form = p
        }
        guard (1...65_535).contains(maxInflight) else { fail("--max-inflight must be 1...65535") }
        guard start >= 0, start < 4_102_444_800_000 else { fail("--start must be epoch milliseconds before 2100") }

        let fleet: FleetSimulator
        do { fleet = try FleetSimulator(scenario: scen, seed: seed ?? scen.seed ?? 1, start: start) } catch {
            fail("--scenario \(scenario): \(error)")
        }
        let truthLines = fleet.truth(forDuration: runDuration).map { $0.jsonLine() }
        if plan {
            for line in truthLines { print(line) }
            return
        }
        if let truth {
            let text = truthLines.map { $0 + "\n" }.joined()
            do { try text.write(toFile: truth, atomically: true, encoding: .utf8) } catch { fail("--truth \(truth): \(error.localizedDescription)") }
        }

        var password = ProcessInfo.processInfo.environment["FOREWARN_MQTT_PASSWORD"]
        if let passwordFile {
            do { password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                fail("--password-file \(passwordFile): \(error.localizedDescription)")
            }
        }
        let logger = Bootstrap.logging(level: logLevel, label: "forewarn.simulate")
        let options = MQTTOptions(host: url.host, port: url.port, clientID: clientID, cleanSession: true,
                                  username: username, password: username == nil ? nil : password, tls: url.tls, caFile: caFile,
                                  reconnectMin: .milliseconds(200), reconnectMax: .seconds(5), maxInflight: maxInflight)

        let stop = StopFlag()
        for sig in [SIGINT, SIGTERM] { signal(sig, SIG_IGN) }
        let sources = [SIGINT, SIGTERM].map { sig in
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { stop.stop() }
            src.resume()
            return src
        }
        defer { withExtendedLifetime(sources) {} }

        logger.info("scenario \(scen.name): \(fleet.machines.count) machines, \(fleet.truth.count) faults, payload \(form.rawValue), seed \(fleet.seed)")
        let runner = SimulationRunner(fleet: fleet, payload: form, mqtt: options, logger: logger)
        let summary: RunSummary
        do { summary = try runner.run(duration: runDuration, speed: pace, stop: stop) } catch {
            print("published 0 readings")
            fail("\(error)", status: .failure)
        }
        let rate = Int(summary.readingsPerSecond.rounded())
        FileHandle.standardError.write(Data(("simulate: \(summary.readings) readings in \(summary.messages) messages over \(formatSimDuration(summary.simulated)) simulated, "
            + "\(String(format: "%.2f", summary.wallSeconds)) s wall: \(rate) readings/s"
            + "\(summary.stoppedEarly ? " (stopped early)" : "")\(summary.acknowledged ? "" : " (NOT all acknowledged)")\n").utf8))
        print("published \(summary.readings) readings")
        if summary.error != nil || !summary.acknowledged { throw ExitCode(1) }
    }
}
