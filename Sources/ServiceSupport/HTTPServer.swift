// ServiceSupport owns what every Forewarn service binary shares: a tiny HTTP/1.1 endpoint
// for /metrics and /healthz on POSIX sockets (so the package needs no swift-nio), the
// systemd notify protocol (READY, WATCHDOG, STOPPING), and running a blocking C loop on a
// dedicated thread so it never blocks Swift's cooperative pool.
import Foundation
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }
}

/// The request line of an HTTP request head: method and path (the query dropped). Bytes from
/// the network, so any input must parse or be refused without trapping (fuzzed: `FuzzTarget.http`).
public struct HTTPRequestLine: Sendable, Equatable {
    public var method: String
    public var path: String

    /// Nil when the first line has fewer than two space-separated parts.
    public init?(_ head: [UInt8]) {
        let line = String(decoding: head.prefix(while: { $0 != 13 && $0 != 10 }), as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2 else { return nil }
        method = String(parts[0])
        path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
    }
}

public struct HTTPServerError: Error, CustomStringConvertible {
    public var description: String
    /// The setting is wrong (not an address), as opposed to the host refusing it (port taken).
    public var isConfiguration = false
}

/// Serves GET requests, one at a time, from a dedicated thread. Enough for scrapes and probes.
// @unchecked: every stored property is a `let`; the socket is used only by the serving thread.
public final class HTTPServer: Service, @unchecked Sendable {
    public typealias Handler = @Sendable (_ method: String, _ path: String) -> HTTPResponse
    private let fd: Int32
    private let handler: Handler
    private let logger: Logger
    private let heartbeats: Heartbeats?
    public let port: Int
    public let host: String

    /// Binds at once, so a taken port is a start-up error that names the setting.
    /// The serving loop beats as `http` in `heartbeats`.
    public init(host: String, port: Int, settingName: String = "http", logger: Logger, heartbeats: Heartbeats? = nil,
                handler: @escaping Handler) throws {
        self.handler = handler
        self.heartbeats = heartbeats
        self.logger = logger
        self.host = host
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard sock >= 0 else { throw HTTPServerError(description: "\(settingName): socket() failed: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let resolved = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, resolved, &addr.sin_addr) == 1 else {
            close(sock)
            throw HTTPServerError(description: "\(settingName): '\(host)' is not an IPv4 address", isConfiguration: true)
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(sock, 16) == 0 else {
            let e = String(cString: strerror(errno))
            close(sock)
            throw HTTPServerError(description: "\(settingName): cannot listen on \(host):\(port): \(e)")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        self.port = Int(UInt16(bigEndian: bound.sin_port))
    }

    deinit { close(fd) }

    /// Serves until graceful shutdown or task cancellation.
    public func run() async throws {
        let stop = StopFlag()
        let heartbeat = heartbeats?.register("http") ?? .none
        logger.info("HTTP endpoint listening", metadata: ["address": "\(host):\(port)"])
        await withTaskCancellationOrGracefulShutdownHandler {
            await runOnDedicatedThread(name: "http") { [self] in
                while !stop.isSet {
                    heartbeat.beat()
                    serveOne(pollMillis: 200)
                }
                heartbeat.retire()
            }
        } onCancelOrGracefulShutdown: {
            stop.set()
        }
    }

    /// How long one request may take, from accept to the last byte sent: a slow or stalled
    /// client holds the endpoint for at most this long.
    public static let requestDeadline: Duration = .seconds(1)

    private func serveOne(pollMillis: Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, pollMillis) > 0 else { return }
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return }
        defer { close(client) }
        let deadline = ContinuousClock.now + Self.requestDeadline
        guard let request = readRequest(client, deadline: deadline) else { return }
        let response: HTTPResponse
        var head = false
        if let line = HTTPRequestLine(request) {
            head = line.method == "HEAD"
            // HEAD is answered like GET, without the body.
            response = handler(head ? "GET" : line.method, line.path)
        } else {
            response = HTTPResponse(status: 400, body: "bad request\n")
        }
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][response.status] ?? "Status"
        var out = Array("HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n".utf8)
        if !head { out.append(contentsOf: response.body) }
        send(out, to: client, deadline: deadline)
    }

    /// The request head (up to the blank line, at most 16 KiB), or nil when the client sends
    /// nothing in time or goes away. Bounded by `deadline` as a whole, not per read.
    private func readRequest(_ client: Int32, deadline: ContinuousClock.Instant) -> [UInt8]? {
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            guard let wait = Self.millisecondsLeft(until: deadline) else { break }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, wait) > 0 else { break }
            let n = read(client, &buf, buf.count)
            if n <= 0 { break }
            request.append(contentsOf: buf[0..<n])
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { return request }
        }
        return request.isEmpty ? nil : request
    }

    private func send(_ out: [UInt8], to client: Int32, deadline: ContinuousClock.Instant) {
        var sent = 0
        while sent < out.count, let wait = Self.millisecondsLeft(until: deadline) {
            var pfd = pollfd(fd: client, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, wait) > 0 else { return }
            let n = out[sent...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Milliseconds to `deadline` for poll(2), or nil once it has passed.
    static func millisecondsLeft(until deadline: ContinuousClock.Instant) -> Int32? {
        let left = deadline - .now
        guard left > .zero else { return nil }
        return Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
    }
}

/// A thread-safe one-way flag.
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.lock(); value = true; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Runs `body` on a new thread and resumes when it returns. For blocking C loops.
public func runOnDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        let thread = Thread {
            setKernelThreadName(name)
            body()
            cont.resume()
        }
        thread.name = name
        thread.start()
    }
}

/// Names the calling thread for the kernel (top -H, `perf report --sort comm`, /proc/PID/task/*/comm;
/// at most 15 bytes): Foundation's `Thread.name` set before `start` does not reach it on Linux,
/// and Glibc's `pthread_setname_np` is not visible to Swift without _GNU_SOURCE.
func setKernelThreadName(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}
