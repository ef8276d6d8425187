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
        SIGINT stops it. With --control FIFO it also reads one command per line from that named pipe \
        (created if missing): \(MockControlCommand.usage).
        """)

    @Option(help: "Number of brokers.") var brokers = 1
    @Option(help: "Partitions for the forewarn topics (and auto-created ones).") var partitions = 4
    @Option(name: .customLong("topic"), help: "Extra topic to create (repeatable).") var topics: [String] = []
    @Option(help: "Delay every broker response by this many milliseconds (a slow network, for tests).") var rtt = 0
    @Option(help: "Named pipe to read control commands from, one per line (fault rehearsal).") var control: String?

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
        // The control FIFO is ready before the address is printed, so a parent may write to it at once.
        if let control { startControl(path: control, cluster: cluster) }
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

    /// Reads control lines from the FIFO on a thread of its own, for the life of the process.
    /// The FIFO is opened read-write, so it never reports end-of-file when a writer closes it.
    private func startControl(path: String, cluster: MockCluster) {
        if access(path, F_OK) != 0, mkfifo(path, 0o600) != 0 {
            fail("dev-kafka: cannot create the control FIFO \(path): \(String(cString: strerror(errno)))", status: .failure)
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else {
            fail("dev-kafka: --control \(path) exists and is not a named pipe (FIFO); remove it or name another path", status: .failure)
        }
        let fd = open(path, O_RDWR)
        guard fd >= 0 else {
            fail("dev-kafka: cannot open the control FIFO \(path): \(String(cString: strerror(errno)))", status: .failure)
        }
        let reader = Thread {
            guard let file = fdopen(fd, "r") else { return }
            while let line = readLine(from: file) {
                let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if text.isEmpty { continue }
                do {
                    try MockControlCommand.parse(text).apply(to: cluster)
                    FileHandle.standardError.write(Data("dev-kafka: control: \(text): done\n".utf8))
                } catch {
                    FileHandle.standardError.write(Data("dev-kafka: control: \(error)\n".utf8))
                }
            }
        }
        reader.start()
    }
}

/// One line from a C stream, without its newline; nil at end of file.
private func readLine(from file: UnsafeMutablePointer<FILE>) -> String? {
    var buffer: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(buffer) }
    guard getline(&buffer, &capacity, file) >= 0, let buffer else { return nil }
    return String(cString: buffer)
}
