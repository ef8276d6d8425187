// MQTT over TLS with a password file, and with client certificates, against a real mosquitto.
import Foundation
import Testing
import TestSupport

@Suite("Gateway security: TLS and authentication", .serialized)
struct GatewaySecurityTests {
    @Test("TLS with username and password file: readings flow, the password is never logged")
    func tlsWithPassword() throws {
        let dir = TestEnvironment.temporaryDirectory("tls")
        let certs = try TestCertificates(directory: dir)
        let broker = try MosquittoBroker(directory: dir, tls: .init(caFile: certs.caFile, certFile: certs.serverCert, keyFile: certs.serverKey),
                                         users: ["gw": "gw-pass-7781", "sensor": "sensor-pass-1234"])
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop(); broker.stop() }
        let passwordFile = dir + "/mqtt.password"
        try "gw-pass-7781\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let gateway = try GatewayProcess(directory: dir, mqtt: "mqtts://127.0.0.1:\(broker.port)", kafka: kafka.bootstrap, stateDir: dir + "/state",
                                         settings: ["mqtt.tls.ca-file=\(certs.caFile)", "mqtt.username=gw", "mqtt.password-file=\(passwordFile)", "log-level=debug"])
        defer { gateway.child.stop() }
        let (_, health) = gateway.waitForHealth(timeout: 15) { _, b in b.contains("\"subscribed\":true") }
        #expect(health.contains("\"subscribed\":true"))

        let publisher = try TestPublisher(url: "mqtt://127.0.0.1:\(broker.port)", username: "sensor", password: "sensor-pass-1234", tls: true, caFile: certs.caFile)
        let published = try publishReadings(publisher, count: 200, machines: 2)
        #expect(publisher.finish())
        let received = parseReceived(try consumeAll(bootstrap: kafka.bootstrap, topic: "forewarn.readings", expect: 200, timeout: 30))
        #expect(missing(published, received) == 0)
        #expect(!gateway.child.stderr.contains("gw-pass-7781"), "the password must never reach the logs")
    }

    @Test("a wrong password is refused: health reports MQTT unreachable with the broker's reason, and no secret is logged")
    func wrongPassword() throws {
        let dir = TestEnvironment.temporaryDirectory("tls-bad")
        let certs = try TestCertificates(directory: dir)
        let broker = try MosquittoBroker(directory: dir, tls: .init(caFile: certs.caFile, certFile: certs.serverCert, keyFile: certs.serverKey),
                                         users: ["gw": "right-password"])
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop(); broker.stop() }
        let gateway = try GatewayProcess(directory: dir, mqtt: "mqtts://127.0.0.1:\(broker.port)", kafka: kafka.bootstrap, stateDir: dir + "/state",
                                         settings: ["mqtt.tls.ca-file=\(certs.caFile)", "mqtt.username=gw", "log-level=debug"],
                                         environment: ["FOREWARN_MQTT_PASSWORD": "wrong-password-5521"])
        defer { gateway.child.stop() }
        let (status, body) = gateway.waitForHealth(timeout: 15) { s, _ in s == 503 }
        #expect(status == 503)
        #expect(body.contains("mqtt unreachable"))
        #expect(gateway.child.stderr.contains("not authorised") || gateway.child.stderr.contains("Not authorized"), "the reason is logged")
        #expect(!gateway.child.stderr.contains("wrong-password-5521"))
    }

    @Test("TLS with a client certificate required by the broker")
    func clientCertificate() throws {
        let dir = TestEnvironment.temporaryDirectory("tls-cert")
        let certs = try TestCertificates(directory: dir)
        let broker = try MosquittoBroker(directory: dir, tls: .init(caFile: certs.caFile, certFile: certs.serverCert, keyFile: certs.serverKey,
                                                                    requireClientCertificate: true))
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop(); broker.stop() }
        let gateway = try GatewayProcess(directory: dir, mqtt: "mqtts://127.0.0.1:\(broker.port)", kafka: kafka.bootstrap, stateDir: dir + "/state",
                                         settings: ["mqtt.tls.ca-file=\(certs.caFile)", "mqtt.tls.cert-file=\(certs.clientCert)", "mqtt.tls.key-file=\(certs.clientKey)"])
        defer { gateway.child.stop() }
        let (_, health) = gateway.waitForHealth(timeout: 15) { _, b in b.contains("\"subscribed\":true") }
        #expect(health.contains("\"subscribed\":true"), "\(gateway.child.stderr.suffix(600))")
    }

    enum BadClientCertificate: String, CaseIterable, Sendable {
        case none, foreignCA = "foreign-ca", expired
    }

    @Test("a client certificate the broker refuses (none, another CA, expired): no connection, health 503, the broker's reason, no crash",
          arguments: BadClientCertificate.allCases)
    func refusedClientCertificate(_ bad: BadClientCertificate) throws {
        let dir = TestEnvironment.temporaryDirectory("tls-cert-\(bad.rawValue)")
        let certs = try TestCertificates(directory: dir)
        let broker = try MosquittoBroker(directory: dir, tls: .init(caFile: certs.caFile, certFile: certs.serverCert, keyFile: certs.serverKey,
                                                                    requireClientCertificate: true))
        let kafka = try DevKafka(directory: dir)
        defer { kafka.stop(); broker.stop() }
        var settings = ["mqtt.tls.ca-file=\(certs.caFile)"]
        // What mosquitto says when it refuses the handshake, and what openssl says of the certificate itself.
        let brokerReason: String
        // OpenSSL's alert as the client sees it, which the gateway must pass on.
        let gatewayReason: String
        switch bad {
        case .none:
            brokerReason = "peer did not return a certificate"
            gatewayReason = "certificate required"
        case .foreignCA:
            settings += ["mqtt.tls.cert-file=\(certs.foreignClientCert)", "mqtt.tls.key-file=\(certs.foreignClientKey)"]
            brokerReason = "certificate verify failed"
            gatewayReason = "unknown ca"
            #expect(try opensslVerify(certs.foreignClientCert, ca: certs.caFile).contains("unable to get local issuer certificate"))
        case .expired:
            settings += ["mqtt.tls.cert-file=\(certs.expiredClientCert)", "mqtt.tls.key-file=\(certs.expiredClientKey)"]
            brokerReason = "certificate verify failed"
            gatewayReason = "certificate expired"
            #expect(try opensslVerify(certs.expiredClientCert, ca: certs.caFile).contains("certificate has expired"))
        }
        let gateway = try GatewayProcess(directory: dir, mqtt: "mqtts://127.0.0.1:\(broker.port)", kafka: kafka.bootstrap, stateDir: dir + "/state",
                                         settings: settings)
        defer { gateway.child.stop() }
        // Health turns 503 before the first handshake fails; wait until it says why.
        let (status, body) = gateway.waitForHealth(timeout: 15) { s, b in s == 503 && b.contains(gatewayReason) }
        #expect(status == 503)
        #expect(body.contains("mqtt unreachable"), "\(body)")
        #expect(body.contains("\"connected\":false"))
        #expect(broker.waitForLog(brokerReason), "the broker refused the handshake for the expected reason: \(broker.log.suffix(600))")
        #expect(!broker.log.contains("New client connected"), "no MQTT session was opened")
        #expect(gateway.child.stderr.contains("MQTT connection lost"), "the gateway logs that it cannot hold a connection")
        #expect(gateway.child.isRunning, "a refused certificate must not crash the gateway")
        // The reason is OpenSSL's alert, which libmosquitto logs; the wrapper adds it to the error.
        #expect(gateway.child.stderr.contains(gatewayReason), "the log names the certificate problem: \(gateway.child.stderr.suffix(600))")
        #expect(body.contains(gatewayReason), "/healthz names the certificate problem: \(body)")
    }
}

/// `openssl verify -CAfile ca cert`: its output (stdout and stderr).
func opensslVerify(_ cert: String, ca: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    p.arguments = ["verify", "-CAfile", ca, cert]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
