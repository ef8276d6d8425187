// The HTTP endpoint (issue 9): a deadline per request, not per read, so a slow client cannot
// stall /healthz; HEAD without a body; a listen address is IPv4 or refused at validation.
import Foundation
import Logging
import ServiceSupport
import Testing
import TestSupport

@Suite(.serialized) struct HTTPEndpointTests {
    /// Runs an endpoint that answers /healthz with a fixed body, for the duration of `body`.
    func withServer(_ body: (Int) throws -> Void) async throws {
        let port = freePort()
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let server = try HTTPServer(host: "127.0.0.1", port: port, logger: logger) { method, path in
            guard method == "GET" else { return HTTPResponse(status: 405, body: "only GET\n") }
            return path == "/healthz" ? HTTPResponse(status: 200, contentType: "application/json", body: "{\"status\":\"ok\"}\n")
                : HTTPResponse(status: 404, body: "not found\n")
        }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        try #require(waitForPort(port))
        try body(port)
        task.cancel()
        _ = await task.result
    }

    @Test func headAnswersLikeGetWithoutTheBody() async throws {
        try await withServer { port in
            let get = String(decoding: rawHTTPRequest(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), as: UTF8.self)
            let head = String(decoding: rawHTTPRequest(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), as: UTF8.self)
            #expect(get.hasPrefix("HTTP/1.1 200 OK\r\n") && get.hasSuffix("\r\n\r\n{\"status\":\"ok\"}\n"), "\(get)")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(head)")
            #expect(head.contains("Content-Length: 16\r\n"), "HEAD reports the GET body's length: \(head)")
            #expect(head.hasSuffix("\r\n\r\n"), "HEAD has no body: \(head.debugDescription)")
        }
    }

    @Test func aClientSendingOneByteAtATimeDoesNotStallHealthzPastTheRequestDeadline() async throws {
        try await withServer { port in
            // The slow client: a byte every 300 ms, never a complete request (bounded to 10 s).
            let slow = connectLoopback(port)
            try #require(slow >= 0)
            let stopSlow = StopFlag()
            let slowDone = DispatchSemaphore(value: 0)
            Thread {
                let until = Date().addingTimeInterval(10)
                while !stopSlow.isSet && Date() < until {
                    _ = send(slow, "G", 1, Int32(MSG_NOSIGNAL))
                    Thread.sleep(forTimeInterval: 0.3)
                }
                close(slow)
                slowDone.signal()
            }.start()
            defer { stopSlow.set(); slowDone.wait() }
            Thread.sleep(forTimeInterval: 0.1)  // the slow client is accepted first
            let start = Date()
            let (status, body) = httpGet(port: port, path: "/healthz")
            let elapsed = Date().timeIntervalSince(start)
            #expect(status == 200 && body == "{\"status\":\"ok\"}\n", "\(status) \(body)")
            let deadline = Double(HTTPServer.requestDeadline.components.seconds)
            // Waits at most for the slow client's deadline (plus scheduling slack).
            #expect(elapsed < deadline + 1.5, "/healthz took \(elapsed) s behind a slow client (request deadline \(deadline) s)")
            print("/healthz behind a client sending a byte every 300 ms: answered after \(String(format: "%.2f", elapsed)) s (deadline \(deadline) s)")
        }
    }
}
