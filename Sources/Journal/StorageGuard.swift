// The journal's defences against a full, read-only or vanished disk, as pure decisions:
// `DiskGuard` says when to stop and restart MQTT intake from measured free space (with a
// reserve and hysteresis), `WriteRetry` says when to try a failed write again (exponential
// backoff), and `KeptWrites` holds what a failed transaction had to write, in order, so it
// can be written again. `BallastPolicy` says when to give up and when to take back the ballast
// file that keeps room for the drain's deletes and checkpoints. No I/O here; `Journal` and
// `BallastFile` measure and write.

/// What the journal's storage looks like now (measured by `Journal.probeStorage()`).
public struct StorageProbe: Sendable, Equatable {
    /// Free bytes on the file system for an unprivileged writer (statvfs f_bavail × f_frsize).
    public var filesystemFreeBytes: Int64
    /// Free pages inside the database file (freelist), which SQLite reuses before growing the file.
    public var reusableBytes: Int64
    /// The file system is mounted read-only.
    public var readOnly: Bool
    /// The journal file is no longer at its path (the state directory was removed or unmounted).
    public var vanished: Bool
    /// Non-zero after the ballast was deleted for a full disk and until it is made again: the
    /// file-system free space it waits for (`BallastPolicy.restoreAtBytes`). Intake waits too,
    /// else the next overrun would find no ballast.
    public var ballastOwedBytes: Int64 = 0
    /// The WAL's frames that no checkpoint has copied into the database file yet, in bytes: the
    /// most the next checkpoint can grow the file by. It needs that room on the file system on
    /// top of the floor kept for new WAL frames.
    public var pendingCheckpointBytes: Int64

    public init(filesystemFreeBytes: Int64, reusableBytes: Int64 = 0, pendingCheckpointBytes: Int64 = 0,
                readOnly: Bool = false, vanished: Bool = false) {
        self.filesystemFreeBytes = filesystemFreeBytes
        self.reusableBytes = reusableBytes
        self.pendingCheckpointBytes = pendingCheckpointBytes
        self.readOnly = readOnly
        self.vanished = vanished
    }

    /// Space new entries can take without the file system filling up.
    public var availableBytes: Int64 { filesystemFreeBytes + reusableBytes }
}

/// Why the disk guard holds intake.
public enum DiskPauseReason: Sendable, Equatable, CustomStringConvertible {
    case lowSpace(available: Int64, reserve: Int64)
    /// Free pages inside the journal would do, but the WAL and checkpoints need room on the file system itself.
    case lowFilesystemSpace(free: Int64, floor: Int64)
    /// The file system has room for the floor, but not also for what the WAL holds that a
    /// checkpoint has yet to copy into the database file.
    case checkpointPending(free: Int64, pending: Int64, floor: Int64)
    case readOnly
    case vanished
    /// The ballast was used and the file system has not yet the room to make it again.
    case ballastOwed(free: Int64, needed: Int64)

    /// A short label for metrics.
    public var label: String {
        switch self {
        case .lowSpace, .lowFilesystemSpace, .checkpointPending, .ballastOwed: "disk-low"
        case .readOnly: "disk-read-only"
        case .vanished: "journal-vanished"
        }
    }

    public var description: String {
        switch self {
        case let .lowSpace(available, reserve):
            "disk nearly full: \(available) bytes free for the journal, below the reserve journal.min-free-bytes=\(reserve)"
        case let .lowFilesystemSpace(free, floor):
            "disk nearly full: \(free) bytes free on the file system, below the \(floor) (half of journal.min-free-bytes) that SQLite's WAL and checkpoints need"
        case let .checkpointPending(free, pending, floor):
            "disk nearly full: \(free) bytes free on the file system, below the \(pending) bytes of WAL pages not yet checkpointed into the journal plus the \(floor) (half of journal.min-free-bytes) kept for the WAL"
        case let .ballastOwed(free, needed):
            "disk nearly full: the ballast (journal.ballast-bytes) was deleted to let the journal commit, and \(free) bytes are free on the file system, below the \(needed) needed to make it again"
        case .readOnly: "the journal's file system is read-only"
        case .vanished: "the journal file is gone from its path (state directory removed or unmounted)"
        }
    }
}

/// Decides, from storage probes, when MQTT intake must stop because the disk is (nearly) full,
/// read-only or gone, and when it may start again. Intake stops while at least `minFreeBytes`
/// are still free for the journal (the reserve covers the readings in flight, SQLite's WAL and
/// the deletes and checkpoints that drain the journal), or when the file system itself has
/// less than half of that (free pages inside the journal file cannot hold WAL frames). It
/// restarts only at one and a half times those levels, so it does not flap around a threshold.
public struct DiskGuard: Sendable, Equatable {
    public let minFreeBytes: Int64
    public let resumeFreeBytes: Int64
    /// The file system must keep this much free for the WAL, whatever the journal's free pages.
    public let filesystemFloorBytes: Int64
    public let filesystemResumeBytes: Int64
    /// Non-nil while intake is held.
    public private(set) var pausedFor: DiskPauseReason?

    public enum Change: Sendable, Equatable {
        case pause(DiskPauseReason)
        case resume
    }

    public init(minFreeBytes: Int64) {
        self.minFreeBytes = minFreeBytes
        resumeFreeBytes = minFreeBytes + minFreeBytes / 2
        filesystemFloorBytes = minFreeBytes / 2
        filesystemResumeBytes = filesystemFloorBytes + filesystemFloorBytes / 2
    }

    public var isPaused: Bool { pausedFor != nil }

    /// Takes a probe; returns what changed, if anything. A pause reason can change while paused
    /// (e.g. vanished, then low space): the new kind of reason is returned as a pause.
    public mutating func observe(_ probe: StorageProbe) -> Change? {
        let reason = holdReason(probe)
        defer { pausedFor = reason }
        switch (pausedFor, reason) {
        case (nil, nil): return nil
        case let (nil, r?): return .pause(r)
        case (_?, nil): return .resume
        case let (old?, r?): return old.label == r.label && old.isLowSpace == r.isLowSpace ? nil : .pause(r)
        }
    }

    private func holdReason(_ p: StorageProbe) -> DiskPauseReason? {
        if p.vanished { return .vanished }
        if p.readOnly { return .readOnly }
        let paused = isPaused
        if p.availableBytes < (paused ? resumeFreeBytes : minFreeBytes) {
            return .lowSpace(available: p.availableBytes, reserve: minFreeBytes)
        }
        let floor = paused ? filesystemResumeBytes : filesystemFloorBytes
        if p.filesystemFreeBytes < floor {
            return .lowFilesystemSpace(free: p.filesystemFreeBytes, floor: filesystemFloorBytes)
        }
        // A checkpoint copies the WAL's pages into the database file, which may grow by as many:
        // stop taking more before that growth and new frames together could fill the disk.
        if p.filesystemFreeBytes - p.pendingCheckpointBytes < floor {
            return .checkpointPending(free: p.filesystemFreeBytes, pending: p.pendingCheckpointBytes, floor: filesystemFloorBytes)
        }
        if p.ballastOwedBytes > 0 {
            return .ballastOwed(free: p.filesystemFreeBytes, needed: p.ballastOwedBytes)
        }
        return nil
    }
}

extension DiskPauseReason {
    /// Held for want of space (label `disk-low`), not for a read-only or vanished journal.
    public var isLowSpace: Bool {
        switch self {
        case .lowSpace, .lowFilesystemSpace, .checkpointPending, .ballastOwed: true
        case .readOnly, .vanished: false
        }
    }
}

/// When to release and when to recreate the ballast: a file of `bytes` in the state directory
/// that holds room back for SQLite. Intake can outrun the WAL budget (at ~46,000 readings/s
/// onto a 2 MiB disk the WAL grew 5 times over it), and then the file system has 0 bytes free:
/// neither the drain's deletes nor a checkpoint can commit, and nothing else would ever free
/// space. Deleting the ballast gives them that room.
///
/// - Release when a write, delete or checkpoint failed with SQLITE_FULL, or when intake is
///   paused and the file system has less than `releaseBelowBytes` free (less than one WAL
///   budget: the next delete or checkpoint may not fit). That level is kept so low that the
///   released space alone never lifts the file system to the guard's resume level, so a
///   release never restarts intake by itself.
/// - Recreate once the file system has `restoreAtBytes` free (the ballast, the guard's
///   file-system resume level and one WAL budget), so that taking the room back neither pauses
///   intake nor leaves the drain's WAL too little room, and only while no write is failing for
///   a full disk. (Without the WAL budget, a 256 KiB ballast on a 64 KiB reserve was made and
///   released again 126 times in one drain.)
public struct BallastPolicy: Sendable, Equatable {
    /// The ballast's size; 0 turns it off.
    public let bytes: Int64
    public let releaseBelowBytes: Int64
    public let restoreAtBytes: Int64

    public enum Action: Sendable, Equatable {
        case release(Trigger)
        case restore
    }

    public enum Trigger: Sendable, Equatable, CustomStringConvertible {
        /// A journal write, delete or checkpoint failed with SQLITE_FULL.
        case writeFailedFull
        /// Intake paused and the file system below `releaseBelowBytes`.
        case filesystemNearlyFull(free: Int64, below: Int64)

        public var description: String {
            switch self {
            case .writeFailedFull: "a journal write failed because the disk is full"
            case let .filesystemNearlyFull(free, below): "intake is paused and only \(free) bytes are free on the file system (below \(below), one WAL budget)"
            }
        }
    }

    /// `walBudgetBytes`: what the journal lets the WAL grow to before a checkpoint.
    public init(bytes: Int64, guard disk: DiskGuard, walBudgetBytes: Int64) {
        self.bytes = max(0, bytes)
        releaseBelowBytes = max(0, min(walBudgetBytes, disk.filesystemResumeBytes - self.bytes))
        restoreAtBytes = self.bytes + disk.filesystemResumeBytes + max(0, walBudgetBytes)
    }

    /// What to do with the ballast now, if anything.
    public func decide(present: Bool, filesystemFreeBytes free: Int64, intakePaused: Bool, failedFull: Bool) -> Action? {
        guard bytes > 0 else { return nil }
        if present {
            if failedFull { return .release(.writeFailedFull) }
            if intakePaused, free < releaseBelowBytes { return .release(.filesystemNearlyFull(free: free, below: releaseBelowBytes)) }
            return nil
        }
        return !failedFull && free >= restoreAtBytes ? .restore : nil
    }

    /// After the ballast was used: whether to compact the journal (VACUUM) to give its room back.
    /// SQLite never shrinks the database file, and the file may have grown into the ballast's
    /// room; a drained journal (no entries) compacts to a few pages at little cost.
    public func shouldCompact(owed: Bool, filesystemFreeBytes free: Int64, journalEntries: Int) -> Bool {
        owed && journalEntries == 0 && free < restoreAtBytes
    }
}

/// When to try a failed journal write again: 50 ms after the first failure, doubling to at most 5 s.
public struct WriteRetry: Sendable, Equatable {
    public let initialDelay: Duration
    public let maximumDelay: Duration
    public private(set) var failures = 0
    public private(set) var nextAttempt: ContinuousClock.Instant?

    public init(initialDelay: Duration = .milliseconds(50), maximumDelay: Duration = .seconds(5)) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    /// The delay after `failures` consecutive failures.
    public func delay(afterFailures n: Int) -> Duration {
        guard n > 0 else { return .zero }
        var d = initialDelay
        for _ in 1..<min(n, 64) where d < maximumDelay { d = d * 2 }
        return min(d, maximumDelay)
    }

    public mutating func failed(at now: ContinuousClock.Instant) {
        failures += 1
        nextAttempt = now + delay(afterFailures: failures)
    }

    public mutating func succeeded() {
        failures = 0
        nextAttempt = nil
    }

    public func isDue(at now: ContinuousClock.Instant) -> Bool { nextAttempt.map { now >= $0 } ?? false }
}

/// What the journal has accepted but not yet committed: the appends of the open (or failed)
/// transaction, in order, and the seqs whose deletes are not yet durable. After a failed
/// write SQLite's state is the last commit, and this is the rest of the truth: it is written
/// again in order (deletes first, since they make room), and read filters skip the deletes.
public struct KeptWrites: Sendable {
    public struct Append: Sendable {
        public var entries: [NewJournalEntry]
        public var digest: Int64?
    }

    public private(set) var appends: [Append] = []
    public private(set) var deletes: Set<Int64> = []
    /// Range deletes of the open transaction, as ranges: a drain deletes ~1,000,000 seqs, and a
    /// hash insert for each was a few percent of it. Only a failed write needs them one by one
    /// (`expandRanges`); until then `isDeleted` looks here too.
    private var deletedRanges: [ClosedRange<Int64>] = []
    /// No seq above this is deleted (a bound: reads after the forwarder's cursor skip the lookups).
    private var highestDeleted = Int64.min

    public init() {}

    public var isEmpty: Bool { appends.isEmpty && deletes.isEmpty && deletedRanges.isEmpty }
    /// Entries kept (not message count).
    public var entryCount: Int { appends.reduce(0) { $0 + $1.entries.count } }
    /// Deletes kept (a seq in two ranges counts twice: it only bounds a transaction's size).
    public var deleteCount: Int { deletedRanges.reduce(deletes.count) { $0 + $1.count } }

    public mutating func append(_ entries: [NewJournalEntry], digest: Int64?) {
        appends.append(Append(entries: entries, digest: digest))
    }

    /// Records a delete; false if it was recorded before.
    @discardableResult
    public mutating func delete(_ seq: Int64) -> Bool {
        if isDeleted(seq) { return false }
        highestDeleted = max(highestDeleted, seq)
        return deletes.insert(seq).inserted
    }

    /// Records the deletes of every seq in `range`.
    public mutating func delete(range: ClosedRange<Int64>) {
        deletedRanges.append(range)
        highestDeleted = max(highestDeleted, range.upperBound)
    }

    public func isDeleted(_ seq: Int64) -> Bool {
        if seq > highestDeleted { return false }
        return deletes.contains(seq) || deletedRanges.contains { $0.contains(seq) }
    }

    /// Turns the kept ranges into single seqs (after a failed write: they are written again in chunks).
    public mutating func expandRanges() {
        for r in deletedRanges { for seq in r { deletes.insert(seq) } }
        deletedRanges.removeAll()
    }

    /// The deletes in rising seq order, in chunks of at most `size`, so each chunk's WAL growth is
    /// bounded (call `expandRanges` first).
    public func deleteChunks(size: Int) -> [[Int64]] {
        let sorted = deletes.sorted()
        return stride(from: 0, to: sorted.count, by: max(1, size)).map { Array(sorted[$0..<min($0 + max(1, size), sorted.count)]) }
    }

    /// Forgets deletes that are durable now.
    public mutating func deletesWritten(_ seqs: [Int64]) { for s in seqs { deletes.remove(s) } }

    /// Forgets everything (after a successful commit).
    public mutating func clear() {
        appends.removeAll(keepingCapacity: true)
        deletes.removeAll(keepingCapacity: true)
        deletedRanges.removeAll(keepingCapacity: true)
        highestDeleted = .min
    }
}

/// Delivered seqs as runs of consecutive numbers, rising, each at most `maxRun` long. A run of at
/// least `rangeMin` is deleted with one range statement: every seq in it was delivered, so every
/// entry in that range may go, and the statement costs a fraction of one delete per entry.
public struct DeliveredRuns: Sendable, Equatable {
    public static let rangeMin = 8
    public private(set) var runs: [ClosedRange<Int64>] = []

    public init(_ seqs: [Int64], maxRun: Int) {
        let sorted = seqs.sorted()
        let cap = Int64(max(1, maxRun))
        var i = 0
        while i < sorted.count {
            let lo = sorted[i]
            var hi = lo
            i += 1
            while i < sorted.count, sorted[i] <= hi + 1, hi - lo + 1 < cap || sorted[i] == hi {
                hi = sorted[i]
                i += 1
            }
            runs.append(lo...hi)
        }
    }
}
