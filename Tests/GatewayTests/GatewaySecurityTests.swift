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
}
