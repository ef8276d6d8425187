import MQTT
import Testing

/// When the MQTT loop reads the next packet at once, skipping libmosquitto's select and write pass.
@Suite struct ReadBurstTests {
    /// Feeds the reads' outcomes in order; returns each answer.
    private func answers(_ burst: inout ReadBurst, _ reads: [(qos: Int?, halted: Bool)]) -> [Bool] {
        reads.map { burst.readAgain(delivered: $0.qos, halted: $0.halted) }
    }

    @Test func qos0MessagesContinueUpToTheLimit() {
        var burst = ReadBurst(limit: 3)
        // The fourth stops: the next full loop writes and checks the keepalive.
        #expect(answers(&burst, Array(repeating: (0, false), count: 4)) == [true, true, true, false])
        #expect(burst.reads == 3)
    }

    @Test func aReadWithoutAMessageEndsIt() {
        var burst = ReadBurst(limit: 64)
        #expect(answers(&burst, [(0, false), (nil, false)]) == [true, false])
        #expect(burst.reads == 1)
    }

    @Test func aQoS1Or2MessageEndsItSoItsAcknowledgementIsWritten() {
        var burst = ReadBurst(limit: 64)
        #expect(answers(&burst, [(1, false), (2, false)]) == [false, false])
        #expect(burst.reads == 0)
    }

    @Test func aPauseOrStopEndsIt() {
        var burst = ReadBurst(limit: 64)
        #expect(answers(&burst, [(0, true)]) == [false])
    }

    @Test func aZeroLimitNeverBursts() {
        var burst = ReadBurst(limit: 0)
        #expect(answers(&burst, [(0, false)]) == [false])
    }
}
