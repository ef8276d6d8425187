import Detection
import ForewarnCore
import Foundation
import Kafka
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// The state that belongs to one readings partition: its machines' detectors, the next offset
/// to read, and the highest journal seq seen per gateway (for de-duplication by (gateway, seq)).
struct PartitionState: Codable, Sendable {
    var nextOffset: Int64?
    var gatewaySeq: [String: Int64] = [:]
    /// The partition's machines, in order of first reading; `machineIndex` finds one from the
    /// bytes of its id, where they lie in the record.
    private(set) var entries: [MachineEntry] = []
    private var machineIndex = ByteKeyIndex()
    var dirty = false
    /// Readings scored since the last one timed: one in `timedEvery` is timed (two clock reads
    /// and a summary update per reading were ~4% of the loop thread's samples).
    private var sinceTimed = 0
    static let timedEvery = 16

    /// One machine: its detector, its sensors' names found by their bytes (made into Strings
    /// once, on a sensor's first reading), and the newest reading time seen (for the
    /// last-reading gauge). Only the detector is checkpointed.
    struct MachineEntry: Sendable {
        let id: String
        var detector: MachineDetector
        private var sensorIndex = ByteKeyIndex()
        private var sensorNames: [String] = []
        var lastTs: Int64 = .min

        init(id: String, detector: MachineDetector) {
            self.id = id
            self.detector = detector
        }

        mutating func observe(_ f: CanonicalReadingFields) -> [AlertEvent] {
            let s: Int
            if let j = sensorIndex.find(f.sensor) { s = j } else {
                s = sensorIndex.insert(f.sensor)
                sensorNames.append(String(decoding: f.sensor, as: UTF8.self))
            }
            if f.ts > lastTs { lastTs = f.ts }
            return detector.observe(ts: f.ts, sensor: sensorNames[s], value: f.value)
        }
    }

    enum CodingKeys: String, CodingKey { case nextOffset = "next_offset", gatewaySeq = "gateway_seq", machines }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nextOffset = try c.decodeIfPresent(Int64.self, forKey: .nextOffset)
        gatewaySeq = try c.decode([String: Int64].self, forKey: .gatewaySeq)
        machines = try c.decode([String: MachineDetector].self, forKey: .machines)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(nextOffset, forKey: .nextOffset)
        try c.encode(gatewaySeq, forKey: .gatewaySeq)
        try c.encode(machines, forKey: .machines)
    }

    var machineCount: Int { entries.count }

    /// The machines' detectors by id (checkpoints, reloads, tests). Setting it keeps the entries
    /// of the ids that stay, in their order, and appends new ids in name order.
    var machines: [String: MachineDetector] {
        get { Dictionary(uniqueKeysWithValues: entries.map { ($0.id, $0.detector) }) }
        set {
            var kept: [MachineEntry] = []
            for var e in entries { if let d = newValue[e.id] { e.detector = d; kept.append(e) } }
            let known = Set(kept.map(\.id))
            for id in newValue.keys.sorted() where !known.contains(id) { kept.append(MachineEntry(id: id, detector: newValue[id]!)) }
            entries = kept
            machineIndex = ByteKeyIndex()
            for e in entries { machineIndex.insert(e.id) }
        }
    }

    /// What became of one consumed record.
    enum Outcome {
        case duplicate
        case unparseable(PayloadRejection)
        case scored(events: [AlertEvent])
    }

    /// One record of this partition, read in place (its headers and value are never copied):
    /// de-duplicated by (gateway, seq), decoded, then fed to its machine's detector (created from
    /// `models` on the machine's first reading). In place.
    mutating func take(_ r: KafkaRecordView, models: MachineModels, modelTimer: Timer) -> Outcome {
        let gateway = r.withHeader(literal: "gateway") { $0.map { String(decoding: $0, as: UTF8.self) } }
        let seq = r.withHeader(literal: "seq") { $0.flatMap(Self.decimal) }
        nextOffset = r.offset + 1
        dirty = true
        if let gateway, let seq, Self.isDuplicate(seq, last: &gatewaySeq[gateway]) { return .duplicate }
        return r.withValue { value in
            do throws(PayloadRejection) {
                return try Reading.withCanonicalFields(value) { feed($0, models: models, modelTimer: modelTimer) }
            } catch {
                return .unparseable(error)
            }
        }
    }

    /// Whether `seq` is at or below the gateway's last one; if not, it becomes the last one.
    /// One lookup of the gateway's entry (it is passed in place).
    private static func isDuplicate(_ seq: Int64, last: inout Int64?) -> Bool {
        if let l = last, seq <= l { return true }
        last = seq
        return false
    }

    private mutating func feed(_ f: CanonicalReadingFields, models: MachineModels, modelTimer: Timer) -> Outcome {
        let start: ContinuousClock.Instant? = sinceTimed == 0 ? .now : nil
        sinceTimed += 1
        if sinceTimed == Self.timedEvery { sinceTimed = 0 }
        let m: Int
        if let i = machineIndex.find(f.machine) { m = i } else {
            let id = String(decoding: f.machine, as: UTF8.self)
            m = machineIndex.insert(f.machine)
            entries.append(MachineEntry(id: id, detector: MachineDetector(config: models.configuration(machine: id, site: String(decoding: f.site, as: UTF8.self)))))
        }
        let events = entries[m].observe(f)
        if let start { modelTimer.recordNanoseconds((ContinuousClock.now - start).nanoseconds) }
        return .scored(events: events)
    }

    /// A header's decimal integer, as `Int64(String)` reads it (an optional sign, then digits;
    /// nil on anything else or on overflow), read from the bytes: up to 18 digits always fit,
    /// longer ones go through `Int64(String)`, which knows the exact bounds.
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        let n = bytes.count
        var j = 0
        var negative = false
        if n > 0, bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            negative = bytes[0] == UInt8(ascii: "-")
            j = 1
        }
        guard j < n else { return nil }
        guard n - j <= 18 else { return Int64(String(decoding: bytes, as: UTF8.self)) }
        var v: Int64 = 0
        while j < n {
            let d = bytes[j] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            v = v * 10 + Int64(d)
            j += 1
        }
        return negative ? -v : v
    }
}

/// What one checkpoint save did: the offsets to commit (partitions saved) and the failures.
struct CheckpointSave: Sendable {
    var offsets: [TopicPartition: Int64] = [:]
    var failures: [(TopicPartition, CheckpointError)] = []
}

/// What /healthz and the demo see of the detector.
public final class DetectorStatus: Sendable {
    struct State {
        var assigned: [TopicPartition] = []
        var lag: Int64 = 0
        var kafkaError: String?
        var readings = 0
        var alerts = 0
        var lastCheckpointOK = true
        var checkpointError: String?
    }
    private let state = Mutex(State())
    public init() {}

    func update(_ body: (inout State) -> Void) { state.withLock { body(&$0) } }

    public func report() -> (healthy: Bool, json: String) {
        let s = state.withLock { $0 }
        var w = JSONWriter()
        var problems: [String] = []
        if let e = s.checkpointError { problems.append(e) } else if !s.lastCheckpointOK { problems.append("checkpoint or offset commit failing") }
        if let e = s.kafkaError { problems.append(e) }
        w.beginObject()
        w.field("status", problems.isEmpty ? "ok" : "unhealthy")
        w.key("problems"); w.beginArray(); for p in problems { w.string(p) }; w.endArray()
        w.key("partitions"); w.beginArray(); for tp in s.assigned { w.string(tp.description) }; w.endArray()
        w.field("lag", s.lag)
        w.field("readings", Int64(s.readings))
        w.field("alerts", Int64(s.alerts))
        w.endObject()
        return (problems.isEmpty, w.string + "\n")
    }
}

/// Consumer group on the readings topic → models → alerts topic.
///
/// Offsets are committed only at checkpoints, after every alert produced so far is
/// acknowledged, and right after the state that the offsets correspond to is saved. A crash
/// therefore replays readings from the last checkpoint into the state saved with it, which
/// reproduces the same alerts with the same alert ids (consumers de-duplicate by alert_id and state).
// @unchecked: the mutable state (partitions, outstanding alerts, heartbeat, models, saveInFlight) is
// touched only by the loop's dedicated thread, and by init/run() before that thread starts; `status`,
// `pendingModels` and `saveResult` are behind a Mutex. The checkpoint queue reads only the snapshot
// it is handed (values) and writes only `saveResult`.
public final class DetectorService: Service, @unchecked Sendable {
    let settings: DetectorSettings
    /// The model files in force; replaced by `reload(models:)`, on the loop's thread.
    private(set) var models: MachineModels
    /// Models handed over by a SIGHUP reload, picked up by the loop on its next turn.
    private let pendingModels = Mutex<MachineModels?>(nil)
    let logger: Logger
    public let status = DetectorStatus()
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let checkpointDirectory: String
    private let heartbeats: Heartbeats?
    /// The loop's heartbeat; set in `run()` before the loop's thread starts, read only there.
    private var heartbeat = Heartbeat.none

    private let readingsCounter = Counter(label: "forewarn_detector_readings_total")
    private let duplicatesCounter = Counter(label: "forewarn_detector_duplicate_readings_total")
    private let unparseableCounter = Counter(label: "forewarn_detector_unparseable_readings_total")
    private let lagGauge = Gauge(label: "forewarn_detector_consumer_lag")
    private let modelTimer = Timer(label: "forewarn_detector_model_seconds")
    private let machinesGauge = Gauge(label: "forewarn_detector_machines")
    private let staleCheckpoints = Counter(label: "forewarn_detector_stale_checkpoints_total")

    /// `heartbeats`: the consume loop beats as `detector` (for the systemd watchdog).
    public init(settings: DetectorSettings, models: MachineModels, logger: Logger, heartbeats: Heartbeats? = nil) throws {
        self.heartbeats = heartbeats
        self.settings = settings
        self.models = models
        self.logger = logger
        checkpointDirectory = settings.stateDirectory + "/detector-" + settings.group
        try FileManager.default.createDirectory(atPath: checkpointDirectory, withIntermediateDirectories: true)
        // A restarted or crashed instance's partitions move on within ~10 s rather than Kafka's 45 s default.
        // Catching up on a backlog, librdkafka 2.0.2's fetcher pauses whenever the consumer queue
        // holds `queued.min.messages` (default 100,000, counted over all partitions) and resumes
        // late: 200,000 took the detector from ~110k to ~200k readings/s catching up on 8
        // partitions, for ~45 MiB more at the peak (docs/benchmarks.md, "Session 10"). At 200,000
        // the loop still waited on the fetcher, not on its CPU: 400,000 took ~228k to ~290k, for
        // more memory at the peak of a catch-up (Session 13).
        var consumerProperties = ["session.timeout.ms": "10000", "heartbeat.interval.ms": "3000", "queued.min.messages": "400000"]
        consumerProperties.merge(settings.kafkaProperties) { _, configured in configured }
        consumer = try KafkaConsumer(bootstrap: settings.bootstrap, groupID: settings.group, properties: consumerProperties, logger: logger)
        producer = try KafkaProducer(bootstrap: settings.bootstrap, properties: settings.kafkaProperties, logger: logger)
    }

    /// Consumes until graceful shutdown or task cancellation (then checkpoints and leaves the
    /// group). A subscription librdkafka refuses (an invalid `^regex` topic) is thrown as a
    /// `ConfigError` naming `kafka.readings-topic`.
    public func run() async throws {
        let stop = StopFlag()
        do { try consumer.subscribe([settings.readingsTopic]) } catch {
            throw ConfigError(key: "kafka.readings-topic", "cannot subscribe to '\(settings.readingsTopic)': \(error.message)")
        }
        logger.info("detector starting", metadata: ["group": "\(settings.group)", "readings": "\(settings.readingsTopic)",
                                                    "alerts": "\(settings.alertsTopic)", "models": "\(settings.modelsDirectory ?? "built-in")"])
        heartbeat = heartbeats?.register("detector") ?? .none
        await withTaskCancellationOrGracefulShutdownHandler {
            await runOnDedicatedThread(name: "detector") { [self] in
                loop(stop: stop)
                heartbeat.retire()
            }
        } onCancelOrGracefulShutdown: {
            stop.set()
        }
        logger.info("detector stopped")
    }

    private var partitions: [TopicPartition: PartitionState] = [:]
    /// Whether a checkpoint save is running on `saveQueue`; its result lands in `saveResult`,
    /// then `saveDone` is signalled.
    private var saveInFlight = false
    private let saveQueue = DispatchQueue(label: "forewarn.detector.checkpoint")
    private let saveResult = Mutex<CheckpointSave?>(nil)
    private let saveDone = DispatchSemaphore(value: 0)
    /// Alerts produced and not yet acknowledged, by id; failed ones are produced again.
    private var outstanding: [UInt64: (key: String, value: [UInt8])] = [:]
    private var nextAlertID: UInt64 = 1
    private var loggedUnparseable = 0
    /// What was last published of each machine's newest reading timestamp (ms); the newest
    /// itself is kept with the machine's detector (`PartitionState.MachineEntry.lastTs`).
    private var publishedLastReading: [String: Int64] = [:]
    /// Readings scored since the counter and the status were last told (once per poll, not per reading).
    private var readingsScored = 0

    private func countScored() {
        guard readingsScored > 0 else { return }
        let n = readingsScored
        readingsScored = 0
        readingsCounter.increment(by: Int64(n))
        status.update { $0.readings += n }
    }

    private func loop(stop: StopFlag) {
        var lastCheckpoint = ContinuousClock.now
        var lastLag = ContinuousClock.now
        while !stop.isSet {
            heartbeat.beat()
            if let new = pendingModels.withLock({ p in defer { p = nil }; return p }) { apply(models: new) }
            consumer.pollEach(timeout: .milliseconds(100), max: 10_000) { polled in
                switch polled {
                case let .record(r): process(r)
                case .event(.message): break  // pollEach hands records over as views, never as copies
                case let .event(.assigned(tps)): assign(tps)
                case let .event(.revoked(tps)): revoke(tps)
                case .event(.partitionEOF): break
                case let .event(.error(e)):
                    logger.warning("\(e)")
                    status.update { $0.kafkaError = e.message }
                }
            }
            countScored()
            pollAlerts(timeout: .zero)
            let now = ContinuousClock.now
            finishSave(wait: false)
            if now - lastCheckpoint >= settings.checkpointInterval && !saveInFlight {
                checkpoint(Array(partitions.keys), wait: false)
                lastCheckpoint = now
            }
            if now - lastLag >= .seconds(5) {
                updateLag()
                lastLag = now
            }
        }
        checkpoint(Array(partitions.keys), wait: true)
        consumer.close()
    }

    private func process(_ r: KafkaRecordView) {
        let tp = TopicPartition(topic: r.topic, partition: r.partition)
        // The partition's state and the machine's detector are mutated in place, through the
        // dictionaries: a copy taken out and put back copied every machine of the partition (and
        // each window of the machine being fed) on every reading (copy on write).
        let outcome = partitions[tp, default: PartitionState()].take(r, models: models, modelTimer: modelTimer)
        switch outcome {
        case .duplicate:
            duplicatesCounter.increment()
        case let .unparseable(error):
            unparseableCounter.increment()
            if loggedUnparseable < 100 {
                loggedUnparseable += 1
                logger.warning("skipping unparseable reading at \(tp)@\(r.offset): \(error)")
            }
        case let .scored(events):
            readingsScored += 1
            for e in events { publish(e) }
        }
    }

    private func publish(_ event: AlertEvent) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(event) else { return }
        let id = nextAlertID
        nextAlertID += 1
        outstanding[id] = (event.machine, Array(data))
        produce(id)
        Counter(label: "forewarn_detector_alerts_total", dimensions: [("severity", event.severity.rawValue), ("state", event.state.rawValue), ("kind", event.kind.rawValue)]).increment()
        status.update { $0.alerts += 1 }
        logger.notice("alert \(event.state.rawValue)", metadata: ["alert_id": "\(event.alertId)", "machine": "\(event.machine)",
                                                                  "severity": "\(event.severity.rawValue)", "model": "\(event.model)",
                                                                  "sensors": "\(event.sensors.joined(separator: ","))"])
    }

    private func produce(_ id: UInt64) {
        guard let a = outstanding[id] else { return }
        for _ in 0..<100 {
            do {
                try producer.produce(topic: settings.alertsTopic, key: Array(a.key.utf8), value: a.value, headers: [], id: id)
                return
            } catch {
                if error.kind == .queueFull { pollAlerts(timeout: .milliseconds(10)); continue }
                logger.error("cannot produce alert: \(error)")
                return  // stays outstanding; a checkpoint will not commit past it
            }
        }
    }

    private func pollAlerts(timeout: Duration) {
        for e in producer.poll(timeout: timeout) {
            switch e {
            case let .delivered(id, _, _): outstanding.removeValue(forKey: id)
            case let .failed(id, error):
                logger.warning("alert delivery failed, retrying: \(error)")
                produce(id)
            case let .error(error, _):
                logger.warning("\(error)")
            }
        }
    }

    /// Waits for alerts to be acknowledged, takes a snapshot of the partitions' state, saves it
    /// durably, then commits the offsets of the partitions whose state was saved (never of one
    /// whose checkpoint failed). The save runs on the checkpoint queue while the loop goes on
    /// consuming (the state is a value: the snapshot costs nothing until a machine is fed again);
    /// with `wait` (revocation, shutdown) it is finished before this returns. One save at a time.
    private func checkpoint(_ tps: [TopicPartition], wait: Bool) {
        finishSave(wait: true)
        let deadline = ContinuousClock.now + .seconds(10)
        while !outstanding.isEmpty && ContinuousClock.now < deadline {
            heartbeat.beat()
            pollAlerts(timeout: .milliseconds(50))
        }
        guard outstanding.isEmpty else {
            logger.warning("\(outstanding.count) alerts not yet acknowledged by Kafka; offsets not committed")
            status.update { $0.lastCheckpointOK = false; $0.kafkaError = "alerts not acknowledged by Kafka" }
            return
        }
        var snapshot: [(tp: TopicPartition, path: String, state: PartitionState, next: Int64)] = []
        for tp in tps {
            guard let state = partitions[tp], state.dirty, let next = state.nextOffset else { continue }
            partitions[tp]?.dirty = false
            snapshot.append((tp, checkpointPath(tp), state, next))
        }
        guard !snapshot.isEmpty else { apply(CheckpointSave()); return }
        saveInFlight = true
        saveQueue.async { [self, snapshot] in
            var result = CheckpointSave()
            for s in snapshot {
                do throws(CheckpointError) {
                    try CheckpointFile.write(Self.encodeCheckpoint(s.state, path: s.path), to: s.path)
                    result.offsets[s.tp] = s.next
                } catch {
                    result.failures.append((s.tp, error))
                }
            }
            saveResult.withLock { $0 = result }
            saveDone.signal()
        }
        if wait { finishSave(wait: true) }
    }

    /// Collects the running save's result, if it is done (or, with `wait`, once it is), and commits.
    private func finishSave(wait: Bool) {
        guard saveInFlight else { return }
        if wait {
            heartbeat.suspend()  // bounded by the save of one snapshot
            saveDone.wait()
            heartbeat.beat()
        } else if saveDone.wait(timeout: .now()) == .timedOut {
            return
        }
        saveInFlight = false
        if let result = saveResult.withLock({ r in defer { r = nil }; return r }) { apply(result) }
    }

    private func apply(_ result: CheckpointSave) {
        for (tp, error) in result.failures {
            // No offset is committed for this partition: a restart replays into the last saved state.
            partitions[tp]?.dirty = true  // saved again at the next checkpoint
            logger.error("\(error); offsets for \(tp) not committed")
            status.update { $0.lastCheckpointOK = false; $0.checkpointError = error.description }
        }
        do {
            try consumer.commit(result.offsets.filter { partitions[$0.key] != nil })
            if result.failures.isEmpty { status.update { $0.lastCheckpointOK = true; $0.kafkaError = nil; $0.checkpointError = nil } }
        } catch {
            logger.warning("offset commit failed (readings since the last commit will be replayed): \(error)")
            status.update { $0.lastCheckpointOK = false }
        }
        machinesGauge.record(partitions.values.reduce(0) { $0 + $1.machineCount })
    }

    /// The partition's state as JSON: streamed (CheckpointEncoder), or through JSONEncoder when
    /// the streaming encoder declines a value. Same document either way.
    private static func encodeCheckpoint(_ state: PartitionState, path: String) throws(CheckpointError) -> Data {
        if let bytes = try? CheckpointEncoder.encode(state) { return Data(bytes) }
        do { return try JSONEncoder().encode(state) } catch {
            throw CheckpointError(path: path, step: "encode", reason: "\(error)")
        }
    }

    private func checkpointPath(_ tp: TopicPartition) -> String { "\(checkpointDirectory)/\(tp.topic)-\(tp.partition).json" }

    private func assign(_ tps: [TopicPartition]) {
        let fresh = tps.filter { partitions[$0] == nil }
        let committed = committedOffsets(fresh)
        for tp in fresh {
            partitions[tp] = restore(tp, committed: committed[tp])
        }
        status.update { $0.assigned = Array(partitions.keys).sorted { $0.partition < $1.partition } }
        logger.info("assigned \(tps.map(\.description).joined(separator: ", "))")
    }

    /// The group's committed offsets, to check checkpoints against; empty (so every checkpoint
    /// is treated as stale) when Kafka does not answer within 10 s.
    private func committedOffsets(_ tps: [TopicPartition]) -> [TopicPartition: Int64] {
        guard !tps.isEmpty, tps.contains(where: { FileManager.default.fileExists(atPath: checkpointPath($0)) }) else { return [:] }
        heartbeat.suspend()  // bounded by the timeout
        defer { heartbeat.beat() }
        do { return try consumer.committed(tps, timeout: .seconds(10)) } catch {
            logger.warning("cannot read the group's committed offsets (\(error)); checkpoints cannot be checked and are not used")
            return [:]
        }
    }

    /// The partition's state from its checkpoint, when that is where the group is; else a fresh one.
    private func restore(_ tp: TopicPartition, committed: Int64?) -> PartitionState {
        let path = checkpointPath(tp)
        guard let data = FileManager.default.contents(atPath: path) else { return PartitionState() }
        var state: PartitionState
        do { state = try JSONDecoder().decode(PartitionState.self, from: data) } catch {
            logger.error("checkpoint \(path) unreadable (\(error)); warming up from scratch")
            return PartitionState()
        }
        switch CheckpointMatch.compare(checkpointOffset: state.nextOffset, committed: committed) {
        case let .stale(reason):
            staleCheckpoints.increment()
            logger.warning("checkpoint \(path) is stale (\(reason)); warming up \(tp) from scratch")
            return PartitionState()
        case .ahead:
            logger.notice("checkpoint \(path) is ahead of the committed offset \(committed ?? -1) (its commit was lost); replayed readings are de-duplicated")
        case .current:
            break
        }
        // A machine whose model file changed since the checkpoint starts afresh.
        for (id, det) in state.machines where det.config != models.configuration(machine: id, site: det.config.site) {
            state.machines.removeValue(forKey: id)
            logger.notice("model for \(id) changed since the checkpoint; warming up again")
        }
        logger.info("restored \(tp): \(state.machines.count) machines, next offset \(state.nextOffset ?? -1)")
        return state
    }

    /// New model files (SIGHUP): they apply from the loop's next turn. Machines whose
    /// configuration changed (thresholds, sensors, models, lifecycle) warm up again with it.
    public func reload(models new: MachineModels) {
        pendingModels.withLock { $0 = new }
    }

    private func apply(models new: MachineModels) {
        models = new
        var restarted: [String] = []
        for (tp, var state) in partitions {
            for (id, det) in state.machines where det.config != new.configuration(machine: id, site: det.config.site) {
                state.machines.removeValue(forKey: id)
                restarted.append(id)
            }
            state.dirty = true
            partitions[tp] = state
        }
        machinesGauge.record(partitions.values.reduce(0) { $0 + $1.machineCount })
        logger.notice("model files applied: \(new.types.count) machine types; \(restarted.isEmpty ? "no machine's model changed" : "model changed for \(restarted.sorted().joined(separator: ", ")), warming up again")")
    }

    private func revoke(_ tps: [TopicPartition]) {
        checkpoint(tps, wait: true)
        for tp in tps { partitions.removeValue(forKey: tp) }
        status.update { $0.assigned = Array(partitions.keys).sorted { $0.partition < $1.partition } }
        logger.info("revoked \(tps.map(\.description).joined(separator: ", "))")
    }

    private func updateLag() {
        let tps = Array(partitions.keys)
        guard !tps.isEmpty else { return }
        // From fetch responses, not a broker query: librdkafka 2.0.2's watermark query can block
        // forever while the broker is down (librdkafka#2588), which froze this loop, SIGTERM included.
        let highs = consumer.cachedHighWatermarks(tps)
        var total: Int64 = 0
        for tp in tps {
            guard let high = highs[tp] else { continue }
            let lag = max(0, high - (partitions[tp]?.nextOffset ?? 0))
            Gauge(label: "forewarn_detector_partition_lag", dimensions: [("partition", String(tp.partition))]).record(lag)
            total += lag
        }
        lagGauge.record(total)
        status.update { $0.lag = total }
        publishLastReadings()
    }

    /// `forewarn_detector_machine_last_reading_timestamp_seconds{machine}`: the newest reading
    /// timestamp per machine, published with the lag (every 5 s) rather than per reading.
    private func publishLastReadings() {
        var lastReading: [String: Int64] = [:]
        for state in partitions.values {
            for e in state.entries where e.lastTs > lastReading[e.id, default: .min] { lastReading[e.id] = e.lastTs }
        }
        for (machine, ts) in lastReading where publishedLastReading[machine] != ts {
            Gauge(label: "forewarn_detector_machine_last_reading_timestamp_seconds", dimensions: [("machine", machine)]).record(Double(ts) / 1000)
            publishedLastReading[machine] = ts
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
