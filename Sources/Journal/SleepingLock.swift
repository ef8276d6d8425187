#if canImport(Glibc)
import Glibc
#endif

/// A value behind a plain pthread mutex: a thread that finds it taken sleeps in the kernel.
///
/// The journal's lock is held for whole batches of deletes (milliseconds) while the ingest and
/// forwarder threads want it. `Synchronization.Mutex` is a priority-inheritance futex on Linux,
/// and the kernel spins a PI waiter for as long as the owner runs on another CPU: in a drain,
/// those two threads spent 8-10 % of their CPU spinning on it (docs/benchmarks.md, session 14),
/// on a 2-core machine where that CPU is the drain's.
// @unchecked: `value` is only reached inside `withLock`, under the mutex.
final class SleepingLock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)   // PTHREAD_MUTEX_NORMAL: no priority inheritance, no spinning
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
