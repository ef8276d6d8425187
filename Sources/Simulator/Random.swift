// Seeded randomness for the physics. Written here rather than borrowed so that the
// simulator's output for a seed never changes when another module changes its generator.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (Steele, Lea, Flood 2014) with Box-Muller Gaussians.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    private var spare: Double?

    public init(seed: UInt64) { state = seed }

    /// An independent stream for `name` under `seed` (a machine id, "random_faults", ...).
    /// Keyed by name, not position, so adding a machine does not change the others' noise.
    public init(seed: UInt64, stream name: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 // FNV-1a
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var mixer = SimulationRandom(seed: seed ^ h)
        state = mixer.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite.
    public mutating func unit() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * (unit() - 0x1p-53) }

    /// Standard normal (Box-Muller, the second value of each pair kept for the next call).
    public mutating func gaussian() -> Double {
        if let s = spare { spare = nil; return s }
        let r = (-2 * log(unit())).squareRoot()
        let theta = 2 * Double.pi * unit()
        spare = r * sin(theta)
        return r * cos(theta)
    }
}
