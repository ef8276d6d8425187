// The width-4 novelty match (one SIMD4 compare per shape) finds the same shape as the scalar
// loop, in the same order from the last match, on random streams with repeats and NaNs.
import Testing
@testable import Detection

@Suite struct NoveltyMemorySIMDTests {
    @Test func simdMatchEqualsTheScalarLoop() {
        var rng = SplitMix64(seed: 11)
        for trial in 0..<20 {
            var memory = NoveltyMemory(width: 4, capacity: 1 + trial * 10, vigilance: 0.5, restReadings: 3, holdReadings: 2, minLevels: 1)
            memory.learn(warmup: (0..<50).map { _ in rng.nextUnit() })
            for k in 0..<2_000 {
                // Few levels so shapes repeat; now and then a NaN or a far value.
                var v = Double(Int(rng.nextUnit() * 6)) / 6
                if k % 97 == 0 { v = .nan } else if k % 89 == 0 { v = 40 * rng.nextUnit() }
                _ = memory.observe(v)
                for limit in [0.0, 0.1, 0.25, 0.5, 2.0] {
                    #expect(memory.firstWithin4(limit) == memory.firstWithinScalar(limit))
                }
            }
        }
    }
}
