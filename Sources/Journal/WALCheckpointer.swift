// WALCheckpointer owns the journal's checkpointer thread (`wal-checkpoint`) and its own SQLite
// connection to the journal file. Woken by the committing connection's WAL hook once the WAL
// holds `CheckpointPolicy.wakeFrames` frames not yet copied, it runs PASSIVE checkpoints without
// the journal lock, so the ingest, forwarder and delete threads keep committing and reading
// while it copies pages into the database file and syncs it (docs/benchmarks.md, session 15).
// What is left to the commit is in CheckpointPolicy: the short tail that lets the WAL restart,
// and the fallback when this thread falls behind.
import Dispatch
import ForewarnCore
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Wakes the checkpointer: at most one wake-up pending, whatever the number of commits.
final class CheckpointSignal: Sendable {
    private let requested = Atomic<Bool>(false)
    private let semaphore = DispatchSemaphore(value: 0)

    func wake() {
        if requested.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged { semaphore.signal() }
    }

    /// Blocks until woken; a wake-up after this returns wakes the next call.
    func wait() {
        semaphore.wait()
        requested.store(false, ordering: .releasing)
    }
}

// @unchecked Sendable: `conn` and `lastFailure` are used only by the checkpointer thread while it
// runs (between `start` and `stop`, which joins it) and by init/deinit outside it; `thread` only
// by `start` and `stop`, which the journal calls once each from its init and deinit; the rest is Sendable.
final class WALCheckpointer: @unchecked Sendable {
    let signal = CheckpointSignal()
    private let conn: SQLiteConnection
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private var frames: WALFrames?
    private var thread: pthread_t?
    private var lastFailure: JournalError.Kind?
    /// Opens the checkpointer's connection to the journal at `path` (already in WAL mode); its
    /// checkpoints sync as the journal's commits do (`synchronous`).
    init(path: String, synchronous: JournalSynchronous, walBudgetBytes: Int64, logger: Logger) throws(JournalError) {
        conn = try SQLiteConnection(path: path, create: false)
        self.logger = logger
        try conn.exec("PRAGMA journal_mode=WAL")   // also opens the WAL: a checkpoint needs it
        try conn.exec("PRAGMA synchronous=\(synchronous == .full ? "FULL" : "NORMAL")")
        try conn.exec("PRAGMA journal_size_limit=\(walBudgetBytes)")
    }

    /// Starts the thread, which reports its checkpoints to `frames`.
    func start(frames: WALFrames) throws(JournalError) {
        self.frames = frames
        var t = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&t, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<WALCheckpointer>.fromOpaque(arg).takeRetainedValue().run()
            return nil
        }, me)
        guard rc == 0 else {
            Unmanaged<WALCheckpointer>.fromOpaque(me).release()
            throw JournalError(.other, path: conn.path, "cannot start the WAL checkpointer thread: \(String(cString: strerror(rc)))")
        }
        thread = t
    }

    /// Stops the thread and waits for it (a checkpoint under way finishes first).
    func stop() {
        guard let t = thread else { return }
        thread = nil
        stopping.store(true, ordering: .releasing)
        signal.wake()
        pthread_join(t, nil)
    }

    private func run() {
        Self.nameThread("wal-checkpoint")
        while true {
            signal.wait()
            if stopping.load(ordering: .acquiring) { return }
            checkpoint()
        }
    }

    /// One PASSIVE checkpoint: it copies what the WAL holds when it starts (frames committed
    /// meanwhile wait for the next wake-up, or for the commit's tail).
    private func checkpoint() {
        guard let frames else { return }
        do throws(JournalError) {
            let done = try frames.gate.withLock { (_: inout Void) throws(JournalError) in try conn.checkpointPassive() }
            guard let done else { return }   // busy, or not in WAL mode
            frames.checkpointed(inLog: done.log, copied: done.copied, concurrently: true)
            if lastFailure != nil { logger.notice("journal WAL checkpointer: checkpoints succeed again") }
            lastFailure = nil
        } catch {
            // Not the commits' error: they are durable. The WAL grows until the commit's
            // fallback checkpoints it, or the journal's own checkpoints report the cause.
            if lastFailure != error.kind { logger.warning("journal WAL checkpointer: checkpoint failed: \(error)") }
            lastFailure = error.kind
        }
    }

    /// Names the calling thread for the kernel (top -H, perf, /proc/PID/task/*/comm).
    private static func nameThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
