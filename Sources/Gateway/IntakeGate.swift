import ForewarnCore
import Journal

/// Why MQTT intake is paused (backpressure). Each one appears in /healthz and as a metric label.
public enum BackpressureReason: Sendable, Equatable, CustomStringConvertible {
    /// `journal.max-bytes` reached under `journal.full-policy=backpressure`.
    case journalFull(maxBytes: Int64)
    /// The disk guard: low free space, a read-only file system, or a vanished journal.
    case disk(DiskPauseReason)
    /// A journal write failed; accepted entries are kept in memory and retried.
    case writeFailing(String)

    /// Every label, for metrics that must also report the reasons that are off.
    public static let labels = ["journal-full", "disk-low", "disk-read-only", "journal-vanished", "write-failing"]

    public var label: String {
        switch self {
        case .journalFull: "journal-full"
        case let .disk(r): r.label
        case .writeFailing: "write-failing"
        }
    }

    public var description: String {
        switch self {
        case let .journalFull(max): "journal full (journal.max-bytes=\(max))"
        case let .disk(r): r.description
        case let .writeFailing(e): "journal write failing: \(e)"
        }
    }

    /// Reasons that make /healthz unhealthy (a full journal under backpressure is the policy working).
    public var isProblem: Bool {
        if case .journalFull = self { return false }
        return true
    }
}

/// Decides whether MQTT intake runs, from the journal's size, its storage and its last write,
/// and what to do with the ballast file (`BallastPolicy`). Pure: the ingest loop measures, calls
/// `update`, pauses or resumes the client, and deletes or recreates the ballast.
struct IntakeGate: Sendable {
    let fullPolicy: JournalFullPolicy
    let maxBytes: Int64
    let resumeFraction: Double
    private(set) var disk: DiskGuard
    let ballast: BallastPolicy
    private(set) var journalFull = false
    private(set) var reasons: [BackpressureReason] = []

    init(fullPolicy: JournalFullPolicy, maxBytes: Int64, resumeFraction: Double, minFreeBytes: Int64,
         ballastBytes: Int64 = 0, walBudgetBytes: Int64 = 64 << 10) {
        self.fullPolicy = fullPolicy
        self.maxBytes = maxBytes
        self.resumeFraction = resumeFraction
        disk = DiskGuard(minFreeBytes: minFreeBytes)
        ballast = BallastPolicy(bytes: ballastBytes, guard: disk, walBudgetBytes: walBudgetBytes)
    }

    /// After `update`: release the ballast (a write, delete or checkpoint failed for a full disk,
    /// or intake is paused with less than one WAL budget free), or recreate it (room is back).
    func ballastAction(present: Bool, probe: StorageProbe, failedFull: Bool) -> BallastPolicy.Action? {
        guard !probe.readOnly, !probe.vanished else { return nil }
        return ballast.decide(present: present, filesystemFreeBytes: probe.filesystemFreeBytes, intakePaused: isPaused, failedFull: failedFull)
    }

    var isPaused: Bool { !reasons.isEmpty }

    /// Takes the latest measurements; returns the disk guard's change, if any.
    @discardableResult
    mutating func update(journalBytes: Int64, probe: StorageProbe, writeFailure: String?) -> DiskGuard.Change? {
        if fullPolicy == .backpressure {
            if !journalFull, journalBytes >= maxBytes { journalFull = true }
            else if journalFull, Double(journalBytes) < Double(maxBytes) * resumeFraction { journalFull = false }
        }
        let change = disk.observe(probe)
        var r: [BackpressureReason] = []
        if journalFull { r.append(.journalFull(maxBytes: maxBytes)) }
        if let d = disk.pausedFor { r.append(.disk(d)) }
        if let e = writeFailure { r.append(.writeFailing(e)) }
        reasons = r
        return change
    }
}
