import ArgumentParser
import Dispatch
import Foundation
import Kafka

struct DevKafkaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-kafka",
        abstract: "Run librdkafka's mock Kafka cluster for development, tests and demos (NOT for production).",
        discussion: """
        Speaks the real Kafka protocol over TCP on 127.0.0.1 and keeps data in memory only. Production uses \
        a real Kafka cluster (Apache Kafka or Redpanda). Prints the bootstrap address as the first line of \
        stdout. SIGUSR1 takes every broker down, SIGUSR2 brings them back (outage rehearsal); SIGTERM or \
        SIGINT stops it.
        """)

    @Option(help: "Number of brokers.") var brokers = 1
    @Option(help: "Partitions for the forewarn topics (and auto-created ones).") var partitions = 4
    @Option(name: .customLong("topic"), help: "Extra topic to create (repeatable).") var topics: [String] = []
    @Option(help: "Delay every broker response by this many milliseconds (a slow network, for tests).") var rtt = 0

    func validate() throws {
        guard (1...9).contains(brokers) else { throw ValidationError("--brokers must be 1...9") }
        guard (1...256).contains(partitions) else { throw ValidationError("--partitions must be 1...256") }
        guard (0...60_000).contains(rtt) else { throw ValidationError("--rtt must be 0...60000 milliseconds") }
    }

    func run() throws {
        let cluster: MockCluster
        do { cluster = try MockCluster(brokers: brokers) } catch { fail("dev-kafka: \(error)", status: .failure) }
        if rtt > 0 { cluster.setAllBrokers(rttMilliseconds: rtt) }
        let replication = min(3, brokers)
        for t in ["forewarn.readings", "forewarn.alerts", "forewarn.deadletter"] + topics {
            do { try cluster.createTopic(t, partitions: partitions, replicationFactor: replication) } catch {
                fail("dev-kafka: \(error)", status: .failure)
            }
        }
        // Unbuffered, so a parent reading our stdout through a pipe sees the address at once.
        FileHandle.standardOutput.write(Data((cluster.bootstrapServers + "\n").utf8))
        FileHandle.standardError.write(Data("dev-kafka: \(brokers) broker(s) at \(cluster.bootstrapServers), \(partitions) partitions per topic; in-memory, for development only\n".utf8))

        for sig in [SIGUSR1, SIGUSR2, SIGTERM, SIGINT] { signal(sig, SIG_IGN) }
        let done = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for (sig, action) in [(SIGUSR1, "down"), (SIGUSR2, "up"), (SIGTERM, "stop"), (SIGINT, "stop")] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                switch action {
                case "down":
                    cluster.setAllBrokers(up: false)
                    FileHandle.standardError.write(Data("dev-kafka: all brokers DOWN\n".utf8))
                case "up":
                    cluster.setAllBrokers(up: true)
                    FileHandle.standardError.write(Data("dev-kafka: all brokers UP\n".utf8))
                default:
                    done.signal()
                }
            }
            src.resume()
            sources.append(src)
        }
        done.wait()
        FileHandle.standardError.write(Data("dev-kafka: stopping\n".utf8))
        withExtendedLifetime(sources) {}
        withExtendedLifetime(cluster) {}
    }
}
