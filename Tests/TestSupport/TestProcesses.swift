// TestSupport starts and stops the real parts that integration tests need — a mosquitto
// broker, `forewarn dev-kafka`, `forewarn gateway` — on free loopback ports, and checks
// results with real clients (librdkafka consumer, libmosquitto publisher). Everything a
// test starts is stopped by the test, and every wait is bounded in time.
import Foundation
import Kafka
import Logging
import MQTT

public enum TestEnvironment {
    /// The built `forewarn` binary: $FOREWARN_BIN, or next to the test bundle.
    public static var forewarnBinary: String {
        if let bin = ProcessInfo.processInfo.environment["FOREWARN_BIN"] { return bin }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("forewarn").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/forewarn"
        return fallback
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "forewarn-test-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public static let logger: Logger = {
        var l = Logger(label: "forewarn.test")
        l.logLevel = .warning
        return l
    }()
}

/// A free TCP port on 127.0.0.1 (bound to port 0 and released).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Polls `condition` every `interval` until it holds or `timeout` passes; its last answer.
public func waitUntil(timeout: TimeInterval, every interval: TimeInterval = 0.05, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return condition()
}

/// True once something accepts TCP connections on 127.0.0.1:port (bounded by `timeout`).
public func waitForPort(_ port: Int, timeout: TimeInterval = 10) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if rc == 0 { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return false
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A child process with its output in files.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let stdoutPath: String
    public let stderrPath: String

    public init(executable: String, arguments: [String], directory: String, name: String, environment: [String: String] = [:]) throws {
        stdoutPath = directory + "/\(name).out"
        stderrPath = directory + "/\(name).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    public func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    /// Waits for exit up to `timeout`; returns the exit status, or nil if still running.
    @discardableResult
    public func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// SIGTERM, then SIGKILL after `grace`.
    public func stop(grace: TimeInterval = 10) {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeout: grace) == nil {
            signal(SIGKILL)
            waitForExit(timeout: 5)
        }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A real mosquitto broker on a free loopback port, optionally with TLS and a password file.
public final class MosquittoBroker: @unchecked Sendable {
    public let port: Int
    public let directory: String
    var child: ChildProcess

    public struct TLS: Sendable {
        public var caFile: String
        public var certFile: String
        public var keyFile: String
        /// Clients must present a certificate signed by the CA.
        public var requireClientCertificate = false
        public init(caFile: String, certFile: String, keyFile: String, requireClientCertificate: Bool = false) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.requireClientCertificate = requireClientCertificate
        }
    }

    /// `users`: name → password for a password file (anonymous access is then refused).
    /// `persistence`: sessions and queued messages survive a restart, in `directory/mosquitto-data`
    /// (owned by the `mosquitto` user, which the broker drops to when started as root).
    public init(directory: String, tls: TLS? = nil, users: [String: String] = [:], persistence: Bool = false) throws {
        self.directory = directory
        port = freePort()
        var persistenceConf = "persistence false"
        if persistence {
            let data = directory + "/mosquitto-data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            if getuid() == 0, let user = getpwnam("mosquitto") {
                guard chown(data, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else { throw TestFailure("cannot chown \(data) to mosquitto") }
                chmod(directory, 0o755)
            }
            persistenceConf = "persistence true\npersistence_location \(data)/\nautosave_interval 1"
        }
        var conf = """
            listener \(port) 127.0.0.1
            \(persistenceConf)
            max_queued_messages 1000000
            max_inflight_messages 100
            log_dest stderr
            log_type error
            log_type warning
            log_type notice
            connection_messages true

            """
        if users.isEmpty {
            conf += "allow_anonymous true\n"
        } else {
            let pwfile = directory + "/passwords"
            _ = FileManager.default.createFile(atPath: pwfile, contents: nil)
            for (user, pass) in users {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_passwd")
                p.arguments = ["-b", pwfile, user, pass]
                try p.run()
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw TestFailure("mosquitto_passwd failed") }
            }
            conf += "allow_anonymous false\npassword_file \(pwfile)\n"
        }
        if let tls {
            conf += "cafile \(tls.caFile)\ncertfile \(tls.certFile)\nkeyfile \(tls.keyFile)\n"
            if tls.requireClientCertificate { conf += "require_certificate true\n" }
        }
        let confPath = directory + "/mosquitto.conf"
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
        let binary = FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "/usr/bin/mosquitto"
        child = try ChildProcess(executable: binary, arguments: ["-c", confPath], directory: directory, name: "mosquitto")
        guard waitForPort(port) else { throw TestFailure("mosquitto did not start: \(child.stderr)") }
    }

    public var url: String { "mqtt://127.0.0.1:\(port)" }

    /// What the running broker has logged (connections, with `connection_messages true`).
    public var log: String { child.stderr }

    /// Polls the broker's log until it contains `text`, up to `timeout`.
    public func waitForLog(_ text: String, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return log.contains(text)
    }

    public func stop() { child.stop(grace: 5) }

    /// Starts the broker again on the same port with the same configuration (after `stop()`).
    public func restart() throws {
        child.stop(grace: 5)
        let binary = child.process.executableURL!.path
        child = try ChildProcess(executable: binary, arguments: ["-c", directory + "/mosquitto.conf"], directory: directory, name: "mosquitto-restarted")
        guard waitForPort(port) else { throw TestFailure("mosquitto did not restart: \(child.stderr)") }
    }
    deinit { child.stop(grace: 2) }
}

/// `forewarn dev-kafka` in its own process.
public final class DevKafka: @unchecked Sendable {
    public let bootstrap: String
    let child: ChildProcess

    /// `rttMilliseconds` delays every broker response (a slow network).
    public init(directory: String, partitions: Int = 4, rttMilliseconds: Int = 0) throws {
        child = try ChildProcess(executable: TestEnvironment.forewarnBinary,
                                 arguments: ["dev-kafka", "--partitions", String(partitions), "--rtt", String(rttMilliseconds)],
                                 directory: directory, name: "dev-kafka")
        let deadline = Date().addingTimeInterval(10)
        var line = ""
        while Date() < deadline {
            if let first = child.stdout.split(separator: "\n").first { line = String(first); break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        guard !line.isEmpty else { throw TestFailure("dev-kafka printed no bootstrap address: \(child.stderr)") }
        bootstrap = line
    }

    public func brokersDown() { child.signal(SIGUSR1) }
    public func brokersUp() { child.signal(SIGUSR2) }
    public func stop() { child.stop(grace: 5) }
    deinit { child.stop(grace: 2) }
}

/// `forewarn gateway` in its own process.
public final class GatewayProcess: @unchecked Sendable {
    public let child: ChildProcess
    public let httpPort: Int

    public init(directory: String, name: String = "gateway", mqtt: String, kafka: String, stateDir: String,
                settings: [String] = [], extraArguments: [String] = [], environment: [String: String] = [:], httpPort: Int? = nil) throws {
        let port = httpPort ?? freePort()
        self.httpPort = port
        var args = ["gateway", "--mqtt", mqtt, "--kafka", kafka, "--state-dir", stateDir, "--http", "127.0.0.1:\(port)",
                    "--set", "gateway.id=gw-test", "--set", "health.grace=2s"]
        for s in settings { args += ["--set", s] }
        args += extraArguments
        child = try ChildProcess(executable: TestEnvironment.forewarnBinary, arguments: args, directory: directory, name: name, environment: environment)
        guard waitForPort(port) else { throw TestFailure("gateway did not start: \(child.stderr)") }
    }

    /// GET a path on the gateway's HTTP endpoint: (status, body).
    public func get(_ path: String) -> (Int, String) {
        httpGet(port: httpPort, path: path)
    }

    /// Polls /healthz until `predicate` holds on (status, body), up to `timeout`.
    public func waitForHealth(timeout: TimeInterval, _ predicate: (Int, String) -> Bool) -> (Int, String) {
        let deadline = Date().addingTimeInterval(timeout)
        var last = (0, "")
        while Date() < deadline {
            last = get("/healthz")
            if predicate(last.0, last.1) { return last }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return last
    }

    /// The value of a Prometheus sample line that starts with `prefix`, summed over matches.
    public func metric(_ prefix: String) -> Double { metricSum(port: httpPort, prefix: prefix) }
}

/// A TCP connection to 127.0.0.1:port, or -1.
public func connectLoopback(_ port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if rc != 0 { close(fd); return -1 }
    return fd
}

/// Sends `request` as is to 127.0.0.1:port and reads the whole response (each read bounded to
/// 5 s); empty when nothing accepts the connection.
public func rawHTTPRequest(_ port: Int, _ request: String) -> [UInt8] {
    let fd = connectLoopback(port)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let bytes = Array(request.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        data.append(contentsOf: buf[0..<n])
    }
    return data
}

/// A minimal HTTP GET over a raw socket (no dependencies), bounded to 5 s.
/// The value of the Prometheus sample lines on 127.0.0.1:port/metrics that start with `prefix`, summed.
public func metricSum(port: Int, prefix: String) -> Double {
    httpGet(port: port, path: "/metrics").1.split(separator: "\n").filter { $0.hasPrefix(prefix) }
        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
}

public func httpGet(port: Int, path: String) -> (Int, String) {
    let data = rawHTTPRequest(port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    let text = String(decoding: data, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n") else { return (0, text) }
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, String(text[headerEnd.upperBound...]))
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
public struct TestCertificates: Sendable {
    public let caFile: String
    public let serverCert: String
    public let serverKey: String
    public let clientCert: String
    public let clientKey: String
    /// A client certificate signed by another CA than `caFile`.
    public let foreignClientCert: String
    public let foreignClientKey: String
    /// A client certificate from `caFile` whose validity ended at its creation.
    public let expiredClientCert: String
    public let expiredClientKey: String

    public init(directory: String) throws {
        foreignClientCert = directory + "/foreign-client.crt"
        foreignClientKey = directory + "/foreign-client.key"
        expiredClientCert = directory + "/expired-client.crt"
        expiredClientKey = directory + "/expired-client.key"
        caFile = directory + "/ca.crt"
        serverCert = directory + "/server.crt"
        serverKey = directory + "/server.key"
        clientCert = directory + "/client.crt"
        clientKey = directory + "/client.key"
        let d = directory
        let script = """
            set -e
            cd \(d)
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=forewarn-test-ca -keyout ca.key -out ca.crt
            openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt
            openssl req -newkey rsa:2048 -nodes -subj /CN=gateway -keyout client.key -out client.csr
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt
            openssl req -newkey rsa:2048 -nodes -subj /CN=gateway -keyout expired-client.key -out expired-client.csr
            openssl x509 -req -in expired-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 0 -out expired-client.crt
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=forewarn-foreign-ca -keyout foreign-ca.key -out foreign-ca.crt
            openssl req -newkey rsa:2048 -nodes -subj /CN=gateway -keyout foreign-client.key -out foreign-client.csr
            openssl x509 -req -in foreign-client.csr -CA foreign-ca.crt -CAkey foreign-ca.key -CAcreateserial -days 2 -out foreign-client.crt
            chmod 644 *.key
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("openssl could not make test certificates") }
    }
}
