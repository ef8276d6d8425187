// MQTT is the Swift face on libmosquitto and the only module that imports CMosquitto.
// It owns one client type: connect with TLS and credentials, a persistent session
// (fixed client id, clean session off; MQTT 5 session expiry), subscriptions that are
// renewed on every reconnect, reconnect with exponential backoff, and QoS 1 publishing
// with PUBACK tracking. The network loop runs on a thread the caller owns (`run()`), so
// libmosquitto's callbacks fire on that thread and reach Swift through an Unmanaged context.
import CMosquitto
import Foundation
import Logging
import Synchronization

public enum MQTTVersion: Sendable {
    case v311
    case v5
}

public struct MQTTOptions: Sendable {
    public var host: String
    public var port: Int
    public var clientID: String
    /// false keeps a persistent session: the broker queues QoS 1 messages while we are away.
    public var cleanSession: Bool
    public var keepalive: Duration
    public var version: MQTTVersion
    public var username: String?
    public var password: String?
    public var tls: Bool
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var tlsInsecure: Bool
    public var reconnectMin: Duration
    public var reconnectMax: Duration
    /// Unacknowledged QoS 1 publishes allowed in flight (publisher side).
    public var maxInflight: Int

    public init(host: String = "127.0.0.1", port: Int = 1883, clientID: String, cleanSession: Bool = false,
                keepalive: Duration = .seconds(30), version: MQTTVersion = .v311, username: String? = nil,
                password: String? = nil, tls: Bool = false, caFile: String? = nil, certFile: String? = nil,
                keyFile: String? = nil, tlsInsecure: Bool = false, reconnectMin: Duration = .milliseconds(500),
                reconnectMax: Duration = .seconds(30), maxInflight: Int = 100) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.keepalive = keepalive
        self.version = version
        self.username = username
        self.password = password
        self.tls = tls
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.tlsInsecure = tlsInsecure
        self.reconnectMin = reconnectMin
        self.reconnectMax = reconnectMax
        self.maxInflight = maxInflight
    }
}

public struct MQTTError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    init(code: Int32, context: String) {
        message = "\(context): \(String(cString: mosquitto_strerror(code)))"
    }
    public var description: String { message }
}

/// A received message. The payload is copied out of libmosquitto's buffer.
public struct MQTTMessage: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int
    public var retain: Bool
}

/// A received message whose payload is libmosquitto's buffer, lent for one `onMessageView` call:
/// read it there, copy what must outlive the call (`message` copies it all).
public struct MQTTMessageView {
    public let topic: String
    public let payload: UnsafeRawBufferPointer
    public let qos: Int
    public let retain: Bool

    public init(topic: String, payload: UnsafeRawBufferPointer, qos: Int, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }

    public var message: MQTTMessage { MQTTMessage(topic: topic, payload: Array(payload), qos: qos, retain: retain) }
}

private let libraryInit: Void = { mosquitto_lib_init(); return () }()

// @unchecked: `state` is behind a Mutex, `tickMillis` is an atomic, `mosq` is libmosquitto's
// (it locks internally), the callbacks are set before `run()`, and `lastDelivered` and
// `readsNext` are plain fields that only the loop thread (`run()` and the callbacks and ticks
// it makes) reads or writes.
public final class MQTTClient: @unchecked Sendable {
    // `mosq` is used from the loop thread, and from publishers (libmosquitto locks internally).
    private let mosq: OpaquePointer
    public let options: MQTTOptions
    private let logger: Logger

    private struct State {
        var connected = false
        /// Subscriptions acknowledged (SUBACK) on the current connection.
        var subscribed = false
        var pendingSubscribeMids: Set<Int32> = []
        var stop = false
        var paused = false
        var subscriptions: [(String, Int)] = []
        var inflight: Set<Int32> = []
        var lastError: String?
        /// The last error libmosquitto logged (OpenSSL's reason for a failed handshake, say),
        /// added to the next connect or connection-lost message, then cleared.
        var libraryError: String?
    }
    private let state = Mutex(State())
    private let inflightChanged = NSCondition()
    /// How long one loop iteration waits for network activity before `onTick`, in ms. An
    /// atomic: the loop's own tick sets it after every packet, and a lock cost more.
    private let tickMillis = Atomic<Int32>(10)
    /// The QoS of the last message delivered by a read; set and cleared on the loop thread only.
    private var lastDelivered: Int?
    /// True during a tick after which the burst reads again at once (loop thread only).
    private var readsNext = false
    /// Packets read back to back after one `mosquitto_loop` (see `ReadBurst`).
    static let burstLimit = 64

    /// Called on the loop thread for every message, after libmosquitto has acknowledged it.
    /// Keep it short: it is the window between PUBACK and the journal.
    public var onMessage: (@Sendable (MQTTMessage) -> Void)?
    /// The same, with the payload lent rather than copied; when set, `onMessage` is not called.
    public var onMessageView: (@Sendable (MQTTMessageView) -> Void)?
    /// Called on the loop thread when the connection comes up (true) or goes down (false).
    public var onConnectionChange: (@Sendable (Bool, String?) -> Void)?
    /// Called on the loop thread after every loop iteration: after each packet read, and after
    /// `tickInterval` without network activity.
    public var onTick: (@Sendable () -> Void)?
    /// Called on the loop's thread just before a (blocking) connect; `onTick` follows it.
    public var onConnectStart: (@Sendable () -> Void)?

    public init(options: MQTTOptions, logger: Logger) throws(MQTTError) {
        _ = libraryInit
        self.options = options
        self.logger = logger
        guard let m = mosquitto_new(options.clientID, options.cleanSession, nil) else {
            throw MQTTError("cannot create MQTT client '\(options.clientID)' (a persistent session needs a client id)")
        }
        mosq = m
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())
        // Our own thread runs the loop: publishes from other threads must queue, not write the socket.
        _ = mosquitto_threaded_set(mosq, true)
        _ = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, options.version == .v5 ? Int32(MQTT_PROTOCOL_V5) : Int32(MQTT_PROTOCOL_V311))
        _ = mosquitto_max_inflight_messages_set(mosq, UInt32(options.maxInflight))
        // Nagle's algorithm off on our socket: the PUBACKs this client writes are 4-byte
        // segments, and with Nagle on, each waits until the broker has acknowledged the last one.
        // A broker with Nagle on its side too (mosquitto's default, set_tcp_nodelay false) then
        // holds its next PUBLISH for that same acknowledgement, and both wait for the kernel's
        // delayed ACK: 40 ms stalls, several per 3 s at 10,000 readings/s (docs/benchmarks.md,
        // session 16).
        _ = mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1)
        if let user = options.username {
            let rc = mosquitto_username_pw_set(mosq, user, options.password)
            if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: "MQTT credentials") }
        }
        if options.tls {
            let capath: String? = options.caFile == nil ? "/etc/ssl/certs" : nil
            let rc = mosquitto_tls_set(mosq, options.caFile, capath, options.certFile, options.keyFile, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: "MQTT TLS settings (ca/cert/key files)") }
            if options.tlsInsecure { _ = mosquitto_tls_insecure_set(mosq, true) }
        }
        mosquitto_connect_callback_set(mosq) { _, obj, rc in
            MQTTClient.from(obj).handleConnect(rc)
        }
        mosquitto_disconnect_callback_set(mosq) { _, obj, rc in
            MQTTClient.from(obj).handleDisconnect(rc)
        }
        mosquitto_message_callback_set(mosq) { _, obj, msg in
            guard let msg else { return }
            MQTTClient.from(obj).handleMessage(msg)
        }
        mosquitto_subscribe_callback_set(mosq) { _, obj, mid, _, _ in
            MQTTClient.from(obj).handleSubscribed(mid)
        }
        mosquitto_publish_callback_set(mosq) { _, obj, mid in
            MQTTClient.from(obj).handlePublished(mid)
        }
        // Runs on the loop's own thread, like the callbacks above (mosquitto_loop calls it).
        // Only with TLS: libmosquitto 2.0.11 logs errors (OpenSSL's, certificate files) only
        // there, bar an unknown packet type (MOSQ_ERR_PROTOCOL says as much), and with a log
        // callback set it formats a debug line into a fresh buffer for every received message.
        if options.tls {
            mosquitto_log_callback_set(mosq) { _, obj, level, text in
                guard level & Int32(MOSQ_LOG_ERR) != 0, let text else { return }
                let message = String(cString: text)
                MQTTClient.from(obj).state.withLock { $0.libraryError = message }
            }
        }
    }

    deinit {
        // Detach every callback first: libmosquitto may log or call back while it tears the
        // connection down, and a callback must never reach an object being deinitialised.
        mosquitto_log_callback_set(mosq, nil)
        mosquitto_connect_callback_set(mosq, nil)
        mosquitto_disconnect_callback_set(mosq, nil)
        mosquitto_message_callback_set(mosq, nil)
        mosquitto_subscribe_callback_set(mosq, nil)
        mosquitto_publish_callback_set(mosq, nil)
        mosquitto_destroy(mosq)
    }

    /// libmosquitto's text for `rc`, with the error it logged meanwhile (taken once).
    private func failureText(_ rc: Int32) -> String {
        let base = String(cString: mosquitto_strerror(rc))
        guard let logged = state.withLock({ s -> String? in defer { s.libraryError = nil }; return s.libraryError }) else { return base }
        return "\(base) (\(logged))"
    }

    private static func from(_ obj: UnsafeMutableRawPointer?) -> MQTTClient {
        Unmanaged<MQTTClient>.fromOpaque(obj!).takeUnretainedValue()
    }

    /// Adds a subscription, made on every (re)connect.
    public func subscribe(_ filter: String, qos: Int = 1) {
        state.withLock { $0.subscriptions.append((filter, qos)) }
    }

    public var isConnected: Bool { state.withLock { $0.connected } }
    /// Connected, and every subscription acknowledged by the broker.
    public var isSubscribed: Bool { state.withLock { $0.connected && $0.subscribed } }
    public var lastError: String? { state.withLock { $0.lastError } }

    /// True when more input is already waiting on the socket: bytes the kernel has received
    /// that libmosquitto has not read yet. libmosquitto reads one packet at a time and buffers
    /// nothing beyond it (without TLS), so false means the next message is not here yet. With TLS,
    /// records OpenSSL has already decrypted are not seen, so this can say false early; unknown
    /// (no socket) counts as true. Call it from the loop thread (callbacks, `onTick`).
    /// In a tick after which a read burst reads again at once it is true without asking the
    /// kernel: that read finds what is queued, and if nothing is, the tick after it asks.
    public var hasQueuedInput: Bool {
        if readsNext { return true }
        return forewarn_socket_unread_bytes(mosquitto_socket(mosq)) != 0
    }

    /// The longest the loop waits for network activity before the next `onTick` (1 ms ... 10 s,
    /// whole milliseconds; default 10 ms). A caller with work due soon (a deferred commit) shortens it.
    public func setTickInterval(_ d: Duration) {
        let ms = Int32(clamping: max(1, min(10_000, d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)))
        tickMillis.store(ms, ordering: .relaxed)
    }

    /// Ends `run()` soon, from any thread.
    public func stop() { state.withLock { $0.stop = true } }

    /// Paused: disconnect and stay away (backpressure). The broker keeps the session's messages.
    public func setPaused(_ paused: Bool) { state.withLock { $0.paused = paused } }
    public var isPaused: Bool { state.withLock { $0.paused } }

    /// Runs the network loop on the calling thread until `stop()`: connects, reconnects with
    /// backoff, honours pauses, and disconnects cleanly at the end.
    public func run() {
        var backoff = options.reconnectMin
        var nextAttempt = ContinuousClock.now
        var socketOpen = false
        while true {
            let (stop, paused, connected) = state.withLock { ($0.stop, $0.paused, $0.connected) }
            if stop { break }
            if paused {
                if socketOpen {
                    logger.notice("pausing MQTT intake (backpressure): disconnecting, the broker holds the session")
                    mosquitto_disconnect(mosq)
                    _ = mosquitto_loop(mosq, 10, 1)
                    socketOpen = false
                }
                onTick?()
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            if !socketOpen {
                if ContinuousClock.now < nextAttempt { onTick?(); Thread.sleep(forTimeInterval: 0.01); continue }
                onConnectStart?()
                let rc = connect()
                if rc == MOSQ_ERR_SUCCESS.rawValue {
                    socketOpen = true
                } else {
                    let text = failureText(rc) + (rc == MOSQ_ERR_ERRNO.rawValue ? " (\(String(cString: strerror(errno))))" : "")
                    state.withLock { $0.lastError = text }
                    onConnectionChange?(false, text)
                    logger.warning("MQTT connect to \(options.host):\(options.port) failed: \(text); retrying in \(backoff)")
                    nextAttempt = .now + backoff
                    backoff = min(backoff * 2, options.reconnectMax)
                    continue
                }
            }
            lastDelivered = nil
            var rc = mosquitto_loop(mosq, tickMillis.load(ordering: .relaxed), 1)
            if rc == MOSQ_ERR_SUCCESS.rawValue { rc = readBurst() } else { onTick?() }
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                socketOpen = false
                let text = failureText(rc)
                if connected { state.withLock { $0.connected = false; $0.subscribed = false } }
                onConnectionChange?(false, text)
                state.withLock { $0.lastError = text }
                logger.warning("MQTT connection lost: \(text); reconnecting in \(backoff)")
                nextAttempt = .now + backoff
                backoff = min(backoff * 2, options.reconnectMax)
            } else if connected {
                backoff = options.reconnectMin
            }
        }
        if socketOpen {
            mosquitto_disconnect(mosq)
            for _ in 0..<10 where mosquitto_loop(mosq, 10, 1) == MOSQ_ERR_SUCCESS.rawValue {}
        }
        state.withLock { $0.connected = false }
        inflightChanged.lock(); inflightChanged.broadcast(); inflightChanged.unlock()
    }

    /// Ticks after the loop's read and, while `ReadBurst` says so, reads on (a tick after each
    /// read, as after a full loop). The next `mosquitto_loop` writes and checks the keepalive.
    /// A read that fails closes the socket; its code is returned.
    private func readBurst() -> Int32 {
        var burst = ReadBurst(limit: Self.burstLimit)
        while true {
            let delivered = lastDelivered
            lastDelivered = nil
            let again = burst.readAgain(delivered: delivered, halted: state.withLock { $0.paused || $0.stop })
            readsNext = again
            onTick?()
            readsNext = false
            // A tick may pause intake (backpressure): the burst ends before the next read.
            guard again, !state.withLock({ $0.paused || $0.stop }) else { return MOSQ_ERR_SUCCESS.rawValue }
            let rc = mosquitto_loop_read(mosq, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue { return rc }
        }
    }

    private func connect() -> Int32 {
        let keepalive = Int32(options.keepalive.components.seconds)
        if options.version == .v5 {
            // Without a session expiry interval an MQTT 5 broker discards the session on disconnect.
            var props: OpaquePointer?
            if !options.cleanSession {
                _ = mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), UInt32.max)
            }
            defer { mosquitto_property_free_all(&props) }
            return mosquitto_connect_bind_v5(mosq, options.host, Int32(options.port), keepalive, nil, props)
        }
        return mosquitto_connect(mosq, options.host, Int32(options.port), keepalive)
    }

    private func handleConnect(_ rc: Int32) {
        if rc != 0 {
            let reason = String(cString: mosquitto_connack_string(rc))
            state.withLock { $0.lastError = reason }
            logger.error("MQTT broker refused the connection: \(reason)")
            return
        }
        let subs = state.withLock { s in
            s.connected = true
            s.lastError = nil
            s.libraryError = nil
            return s.subscriptions
        }
        var mids: Set<Int32> = []
        for (filter, qos) in subs {
            var mid: Int32 = 0
            let r = mosquitto_subscribe(mosq, &mid, filter, Int32(qos))
            if r != MOSQ_ERR_SUCCESS.rawValue { logger.error("MQTT subscribe to \(filter) failed: \(String(cString: mosquitto_strerror(r)))") }
            else { mids.insert(mid) }
        }
        state.withLock { $0.pendingSubscribeMids = mids; $0.subscribed = mids.isEmpty }
        logger.info("MQTT connected to \(options.host):\(options.port) as \(options.clientID)", metadata: ["subscriptions": "\(subs.map(\.0))"])
        onConnectionChange?(true, nil)
    }

    private func handleSubscribed(_ mid: Int32) {
        state.withLock { s in
            s.pendingSubscribeMids.remove(mid)
            if s.pendingSubscribeMids.isEmpty { s.subscribed = true }
        }
    }

    private func handleDisconnect(_ rc: Int32) {
        let was = state.withLock { s in
            let was = s.connected
            s.connected = false
            s.subscribed = false
            if rc != 0 { s.lastError = "disconnected (\(rc))" }
            return was
        }
        if was { onConnectionChange?(false, rc == 0 ? nil : "disconnected (\(rc))") }
    }

    private func handleMessage(_ msg: UnsafePointer<mosquitto_message>) {
        let m = msg.pointee
        let topic = m.topic.map { String(cString: $0) } ?? ""
        lastDelivered = Int(m.qos)
        let view = MQTTMessageView(topic: topic, payload: UnsafeRawBufferPointer(start: m.payload, count: m.payload == nil ? 0 : Int(m.payloadlen)),
                                   qos: Int(m.qos), retain: m.retain)
        if let onMessageView { onMessageView(view) } else { onMessage?(view.message) }
    }

    private func handlePublished(_ mid: Int32) {
        inflightChanged.lock()
        state.withLock { _ = $0.inflight.remove(mid) }
        inflightChanged.broadcast()
        inflightChanged.unlock()
    }

    /// Publishes; for QoS 1 the message counts as in flight until its PUBACK arrives.
    /// Waits (up to `timeout`) while `options.maxInflight` messages are unacknowledged.
    /// Callable from any thread while `run()` loops on another.
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false, timeout: Duration = .seconds(30)) throws(MQTTError) {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        inflightChanged.lock()
        while state.withLock({ $0.inflight.count >= options.maxInflight || !$0.connected }) {
            if state.withLock({ $0.stop }) || !inflightChanged.wait(until: deadline) {
                inflightChanged.unlock()
                throw MQTTError("publish to \(topic): timed out waiting for the broker (connected: \(isConnected))")
            }
        }
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { buf in
            mosquitto_publish(mosq, &mid, topic, Int32(buf.count), buf.baseAddress, Int32(qos), retain)
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue, qos > 0 {
            // The PUBACK may already have been handled; only count it if it has not.
            state.withLock { _ = $0.inflight.insert(mid) }
        }
        inflightChanged.unlock()
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError(code: rc, context: "publish to \(topic)") }
    }

    /// Waits until every QoS 1 publish is acknowledged, or `timeout` passes. Returns true if all were.
    public func waitForAcknowledgements(timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        inflightChanged.lock()
        defer { inflightChanged.unlock() }
        while !state.withLock({ $0.inflight.isEmpty }) {
            if !inflightChanged.wait(until: deadline) { return state.withLock { $0.inflight.isEmpty } }
        }
        return true
    }
}
