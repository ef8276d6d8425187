import ForewarnCore
import Foundation
import Journal
import Logging
import ServiceLifecycle
import ServiceSupport

/// The gateway's services in start order. A ServiceGroup shuts them down in reverse:
/// ingest stops taking MQTT and commits, then the forwarder drains to Kafka, then the
/// HTTP endpoint and systemd notifier stop.
public struct GatewayServices: Sendable {
    public let journal: Journal
    public let health: GatewayHealth
    public let ingest: IngestService
    public let forwarder: ForwarderService

    /// `heartbeats`: where the worker loops stamp their liveness (for the systemd watchdog).
    /// `injectFatalKafkaError`: a test hook, see `ForwarderService`.
    public init(config: GatewayConfiguration, logger: Logger, heartbeats: Heartbeats? = nil, injectFatalKafkaError: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        let j = config.journal
        journal = try Journal(options: JournalOptions(
            path: config.stateDirectory + "/journal.sqlite", commitEvery: j.commitEvery, commitInterval: j.commitInterval,
            commitWhenIdle: j.commitWhenIdle, commitMinGap: j.commitMinGap,
            maxBytes: j.maxBytes, maxAge: j.maxAge, fullPolicy: j.fullPolicy, synchronous: j.synchronous,
            minFreeBytes: j.minFreeBytes, firstSeq: JournalOptions.clockSeq(nowMs: Int64(Date().timeIntervalSince1970 * 1000))),
            logger: logger)
        health = GatewayHealth(grace: config.health.grace)
        forwarder = try ForwarderService(config: config, journal: journal, health: health, logger: logger,
                                         heartbeats: heartbeats, injectFatalError: injectFatalKafkaError)
        ingest = try IngestService(config: config, journal: journal, health: health, logger: logger, heartbeats: heartbeats)
    }

    /// Handles /healthz; everything else is for the caller (e.g. /metrics).
    public func healthResponse() -> HTTPResponse {
        let (ok, json) = health.report()
        return HTTPResponse(status: ok ? 200 : 503, contentType: "application/json", body: json)
    }
}
