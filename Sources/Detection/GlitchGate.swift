// Glitches: one machine vector far out of limits, with the next one back in limits and no
// other such vector in the readings before it, is a measurement glitch (a bad snapshot, a
// sensor that read once out of range), not the machine. The PCA monitor's input smoothing
// would otherwise spread it over several readings and open an alert. So an out-of-limits
// vector is held for one reading: if the next is out of limits too, both are fed (a real
// change, one reading late); if not, and no other vector was out of limits in the last
// `isolation` readings, the held one is dropped. A fault that shows itself as intermittent
// bursts gets its first burst dropped and the later ones fed. Pure value type, O(1) per step.

public struct GlitchGate: Codable, Sendable, Equatable {
    /// Readings before an out-of-limits vector that must have none, for it to count as a
    /// glitch (0 = never hold anything).
    public let isolation: Int
    /// Glitches dropped so far (for evidence and tests).
    public private(set) var dropped = 0
    private var readings = 0
    private var lastOutlier: Int? = nil
    private var holding = false

    public init(isolation: Int) {
        self.isolation = max(0, isolation)
    }

    /// What the monitor does with the vector it has just been given.
    public enum Action: Sendable, Equatable {
        /// Feed it.
        case feed
        /// Keep it back until the next vector says whether it was a glitch.
        case hold
        /// Feed the held vector, then this one.
        case feedHeldThenThis
        /// Forget the held vector (a glitch), and feed this one.
        case dropHeldThenFeed
    }

    /// One vector; `outOfLimits` is whether it alone (unsmoothed) is beyond the monitor's limits.
    public mutating func step(outOfLimits: Bool) -> Action {
        readings += 1
        defer { if outOfLimits { lastOutlier = readings } }
        if holding {
            holding = false
            if outOfLimits { return .feedHeldThenThis }
            dropped += 1
            return .dropHeldThenFeed
        }
        guard outOfLimits, isolation > 0 else { return .feed }
        if let last = lastOutlier, readings - last <= isolation { return .feed }
        holding = true
        return .hold
    }
}
