// Alert events and the pure lifecycle state machine that turns a score stream into
// open / update / resolved events with hysteresis, de-duplication and rate limits.

public enum AlertState: String, Codable, Sendable { case open, update, resolved }
public enum AlertKind: String, Codable, Sendable { case machine, sensor }

/// One alert event, as published on the alerts topic (JSON keys in snake_case).
public struct AlertEvent: Codable, Sendable, Equatable {
    public var alertId: String
    public var machine: String
    public var site: String
    public var state: AlertState
    public var severity: Severity
    public var kind: AlertKind
    public var model: String
    public var sensors: [String]
    public var score: Double
    public var threshold: Double
    /// Epoch ms of the reading that opened the episode.
    public var openedAt: Int64
    /// Epoch ms of the reading behind this event.
    public var ts: Int64
    public var evidence: [String: Double]
    public var timeToThresholdS: Double?

    enum CodingKeys: String, CodingKey {
        case alertId = "alert_id", machine, site, state, severity, kind, model, sensors, score, threshold
        case openedAt = "opened_at", ts, evidence, timeToThresholdS = "time_to_threshold_s"
    }

    public init(alertId: String, machine: String, site: String, state: AlertState, severity: Severity,
                kind: AlertKind, model: String, sensors: [String], score: Double, threshold: Double,
                openedAt: Int64, ts: Int64, evidence: [String: Double], timeToThresholdS: Double?) {
        self.alertId = alertId
        self.machine = machine
        self.site = site
        self.state = state
        self.severity = severity
        self.kind = kind
        self.model = model
        self.sensors = sensors
        self.score = score
        self.threshold = threshold
        self.openedAt = openedAt
        self.ts = ts
        self.evidence = evidence
        self.timeToThresholdS = timeToThresholdS
    }

    // Encode `time_to_threshold_s` as an explicit null rather than omitting it (the contract
    // says "a number, or null").
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(alertId, forKey: .alertId)
        try c.encode(machine, forKey: .machine)
        try c.encode(site, forKey: .site)
        try c.encode(state, forKey: .state)
        try c.encode(severity, forKey: .severity)
        try c.encode(kind, forKey: .kind)
        try c.encode(model, forKey: .model)
        try c.encode(sensors, forKey: .sensors)
        try c.encode(score, forKey: .score)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(openedAt, forKey: .openedAt)
        try c.encode(ts, forKey: .ts)
        try c.encode(evidence, forKey: .evidence)
        try c.encode(timeToThresholdS, forKey: .timeToThresholdS)
    }
}

/// What the scorer knows at this step, copied into any event emitted.
public struct AlertContext: Sendable {
    public var model: String
    public var sensors: [String]
    public var evidence: [String: Double]
    public var timeToThresholdS: Double?
    /// A severity floor from a static limit, if one is breached.
    public var severityFloor: Severity?

    public init(model: String, sensors: [String] = [], evidence: [String: Double] = [:],
                timeToThresholdS: Double? = nil, severityFloor: Severity? = nil) {
        self.model = model
        self.sensors = sensors
        self.evidence = evidence
        self.timeToThresholdS = timeToThresholdS
        self.severityFloor = severityFloor
    }
}

/// Pure lifecycle for one alert source (a machine, or one sensor's health).
public struct AlertLifecycle: Codable, Sendable, Equatable {
    public struct Episode: Codable, Sendable, Equatable {
        public var alertId: String
        public var openedAt: Int64
        public var severity: Severity
        public var lastEventScore: Double
        public var lastEventTs: Int64
        public var model: String
    }

    public let params: LifecycleParameters
    public let machine: String
    public let site: String
    public let kind: AlertKind
    /// Distinguishes sources of the same kind (sensor name for sensor health); part of the id.
    public let source: String?

    public private(set) var episode: Episode? = nil
    private var aboveCount = 0
    private var aboveSince: Int64? = nil
    private var belowCount = 0
    private var belowSince: Int64? = nil
    private var cooldownUntil: Int64 = .min
    /// When recent episodes opened, raised or held (for the recurrence test); bounded in count.
    private var recentOpenings: [Int64] = []
    /// The current episode recurs at the time of day of an earlier one: followed to its end, no events.
    private var holdingRecurrence = false
    /// Episodes held as recurrences so far.
    public private(set) var recurrencesHeld = 0
    static let maxRecentOpenings = 64

    public init(params: LifecycleParameters, machine: String, site: String, kind: AlertKind, source: String? = nil) {
        self.params = params
        self.machine = machine
        self.site = site
        self.kind = kind
        self.source = source
    }

    /// An episode is open and was raised (a held recurrence is not open to the outside).
    public var isOpen: Bool { episode != nil && !holdingRecurrence }

    /// Whether an opening at `ts` falls at the time of day of one 1...`recurrencePeriods` periods
    /// earlier (within the tolerance). O(remembered openings), whatever the number of periods.
    func isRecurrence(_ ts: Int64) -> Bool {
        let p = params
        guard p.recurrencePeriods > 0, p.recurrencePeriodMs > 0 else { return false }
        return recentOpenings.contains { then in
            // Wrapping arithmetic: timestamps come from outside, and this must never trap.
            let age = ts &- then
            guard age > 0 else { return false }
            let k = (age &+ p.recurrencePeriodMs / 2) / p.recurrencePeriodMs
            guard k >= 1, k <= Int64(p.recurrencePeriods) else { return false }
            return (age &- k &* p.recurrencePeriodMs).magnitude <= p.recurrenceToleranceMs.magnitude
        }
    }

    private mutating func rememberOpening(_ ts: Int64) {
        let p = params
        guard p.recurrencePeriods > 0 else { return }
        let (span, spanOverflow) = Int64(p.recurrencePeriods).multipliedReportingOverflow(by: p.recurrencePeriodMs)
        let (reach, reachOverflow) = span.addingReportingOverflow(p.recurrenceToleranceMs)
        let horizon = spanOverflow || reachOverflow ? Int64.max : reach
        recentOpenings.removeAll { ts &- $0 > horizon || ts &- $0 < 0 }
        if recentOpenings.count >= Self.maxRecentOpenings { recentOpenings.removeFirst() }
        recentOpenings.append(ts)
    }

    func severity(for score: Double, floor: Severity?) -> Severity {
        let s: Severity = score >= params.criticalScore ? .critical : .warning
        if let f = floor, f > s { return f }
        return s
    }

    /// Advance one step with the current score. Returns at most one event. `hold`: the source
    /// says the condition behind an open episode persists, so this step does not count toward
    /// resolving it (the close count starts again after it).
    public mutating func step(ts: Int64, score: Double, hold: Bool = false, context: @autoclosure () -> AlertContext) -> AlertEvent? {
        let p = params
        if var ep = episode {
            if score < p.closeThreshold && !hold {
                belowCount += 1
                if belowSince == nil { belowSince = ts }
            } else {
                belowCount = 0
                belowSince = nil
            }
            if belowCount >= p.closeCount, let since = belowSince, ts - since >= p.closeHoldMs {
                episode = nil
                belowCount = 0
                belowSince = nil
                aboveCount = 0
                aboveSince = nil
                if holdingRecurrence {
                    holdingRecurrence = false
                    return nil
                }
                let ctx = context()
                cooldownUntil = ts + p.cooldownMs
                return event(ep, state: .resolved, ts: ts, score: score, severity: ep.severity, ctx: ctx)
            }
            if holdingRecurrence {
                // A held excursion that outlasts the hold is not the schedule: raise it now.
                guard score >= p.openThreshold, ts - ep.openedAt >= p.recurrenceMaxHoldMs else { return nil }
                holdingRecurrence = false
                return open(ts: ts, score: score, ctx: context())
            }
            // Updates only while the score is still elevated; below the close line we are
            // on the way to resolving and the resolve event will carry the news.
            guard score >= p.closeThreshold else { return nil }
            let ctx = context()
            let sev = severity(for: score, floor: ctx.severityFloor)
            // Escalation is news at once; a score that moved, or a severity that eased, waits for
            // the rate limit, so a score wavering around the critical line does not flood tickets.
            let escalated = sev > ep.severity
            let changed = sev != ep.severity || abs(score - ep.lastEventScore) > p.updateScoreDelta
            if escalated || (changed && ts - ep.lastEventTs >= p.minUpdateIntervalMs) {
                ep.severity = sev
                ep.lastEventScore = score
                ep.lastEventTs = ts
                episode = ep
                return event(ep, state: .update, ts: ts, score: score, severity: sev, ctx: ctx)
            }
            return nil
        }

        if score >= p.openThreshold {
            aboveCount += 1
            if aboveSince == nil { aboveSince = ts }
        } else {
            aboveCount = 0
            aboveSince = nil
        }
        guard ts >= cooldownUntil, aboveCount >= p.openCount, let since = aboveSince, ts - since >= p.openHoldMs else {
            return nil
        }
        let recurring = isRecurrence(ts)
        rememberOpening(ts)
        if recurring {
            // Followed like an episode, so the same excursion is not judged again until it ends.
            holdingRecurrence = true
            recurrencesHeld += 1
            episode = Episode(alertId: "", openedAt: ts, severity: .warning, lastEventScore: score, lastEventTs: ts, model: "")
            belowCount = 0
            belowSince = nil
            return nil
        }
        return open(ts: ts, score: score, ctx: context())
    }

    private mutating func open(ts: Int64, score: Double, ctx: AlertContext) -> AlertEvent {
        let sev = severity(for: score, floor: ctx.severityFloor)
        let id = source.map { "\(machine)-\(ts)-\(kind.rawValue)-\($0)" } ?? "\(machine)-\(ts)-\(kind.rawValue)"
        let ep = Episode(alertId: id, openedAt: ts, severity: sev, lastEventScore: score, lastEventTs: ts, model: ctx.model)
        episode = ep
        belowCount = 0
        belowSince = nil
        return event(ep, state: .open, ts: ts, score: score, severity: sev, ctx: ctx)
    }

    private func event(_ ep: Episode, state: AlertState, ts: Int64, score: Double, severity: Severity, ctx: AlertContext) -> AlertEvent {
        AlertEvent(alertId: ep.alertId, machine: machine, site: site, state: state, severity: severity, kind: kind,
                   model: state == .open ? ctx.model : (ctx.model.isEmpty ? ep.model : ctx.model),
                   sensors: ctx.sensors, score: score, threshold: params.openThreshold, openedAt: ep.openedAt, ts: ts,
                   evidence: ctx.evidence, timeToThresholdS: ctx.timeToThresholdS)
    }
}
