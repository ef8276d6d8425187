// SIGHUP: reload what can change safely while running. Without this service SIGHUP's default
// action would end the process; with it, each SIGHUP calls `reload` and the service goes on.
import Logging
import ServiceLifecycle
import UnixSignals

/// Calls `reload` on every SIGHUP, until graceful shutdown or cancellation, and tells systemd
/// `RELOADING=1` before and `READY=1` after, so that `systemctl status` shows the reload.
public struct ReloadService: Service {
    let reload: @Sendable () -> Void
    let notifier: SystemdNotifier

    public init(notifier: SystemdNotifier = SystemdNotifier(), reload: @escaping @Sendable () -> Void) {
        self.notifier = notifier
        self.reload = reload
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            notifier.notify("RELOADING=1")
            reload()
            notifier.notify("READY=1")
        }
    }
}
