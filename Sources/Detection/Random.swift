// Deterministic random numbers for tests, benchmarks and simulations (no global state).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (Steele, Lea, Flood 2014) with a Box-Muller Gaussian.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable {
    private var state: UInt64
    private var spare: Double? = nil

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    public mutating func nextUnit() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }

    /// Standard normal via Box-Muller (pairs cached).
    public mutating func nextGaussian() -> Double {
        if let s = spare { spare = nil; return s }
        let u1 = nextUnit(), u2 = nextUnit()
        let r = (-2 * log(u1)).squareRoot()
        spare = r * sin(2 * Double.pi * u2)
        return r * cos(2 * Double.pi * u2)
    }
}
