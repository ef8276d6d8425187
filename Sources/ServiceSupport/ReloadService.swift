// SIGHUP: reload what can change safely while running. Without this service SIGHUP's default
// action would end the process; with it, each SIGHUP calls `reload` and the service goes on.
import Logging
import ServiceLifecycle
import UnixSignals

/// Calls `reload` on every SIGHUP, until graceful shutdown or cancellation.
public struct ReloadService: Service {
    let reload: @Sendable () -> Void

    public init(reload: @escaping @Sendable () -> Void) { self.reload = reload }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }
}
