/// Whether the loop reads another packet straight away, without libmosquitto's select(), write
/// pass and keepalive check (`mosquitto_loop`), which cost a system call and locks per packet.
/// A burst follows one full loop and lasts while each read delivers a QoS 0 message: a read with
/// no message (nothing queued, a partial packet, a control packet) ends it, and so does a QoS 1
/// or 2 message, whose acknowledgement libmosquitto only queues (the next loop's write pass
/// sends it, and the broker's in-flight window waits on it). `limit` bounds how long the write
/// pass and the keepalive check can wait. Pure: the client feeds it what each read did.
public struct ReadBurst: Sendable, Equatable {
    public let limit: Int
    public private(set) var reads = 0

    public init(limit: Int) { self.limit = max(0, limit) }

    /// After a read (the full loop's, or a burst's): go on reading?
    /// - Parameters:
    ///   - delivered: the QoS of the message the read delivered, nil for none.
    ///   - halted: paused or stopped meanwhile (backpressure from the message callback or a tick).
    public mutating func readAgain(delivered qos: Int?, halted: Bool) -> Bool {
        guard let qos, qos == 0, !halted, reads < limit else { return false }
        reads += 1
        return true
    }
}
