// The process's log output: one level shared by every logger, changeable while running
// (SIGHUP reload), so that a new `log-level` takes effect without a restart.
import Logging
import Synchronization

/// The level every `forewarn` logger of this process logs at.
public final class LogControl: Sendable {
    private let state: Mutex<Logger.Level>

    public init(level: Logger.Level) { state = Mutex(level) }

    public var level: Logger.Level {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

/// Writes like swift-log's `StreamLogHandler` to stderr, at the level that `control` holds now.
public struct ControlledLogHandler: LogHandler {
    private var inner: StreamLogHandler
    private let control: LogControl

    public init(label: String, control: LogControl) {
        inner = StreamLogHandler.standardError(label: label)
        inner.logLevel = .trace  // the level is decided here, from `control`
        self.control = control
    }

    public var logLevel: Logger.Level {
        get { control.level }
        set { control.level = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) { inner.log(event: event) }
}
