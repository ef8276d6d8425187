import Detection
import ForewarnCore
import Foundation
import Yams

/// Machine-type model files (`models/*.yaml`): which machines they cover, their sensors
/// (units, physical limits, static limits with severities, failure thresholds), which
/// models run and the alert lifecycle. Anything a file leaves out keeps the built-in default.
public struct MachineModels: Sendable {
    public struct MachineType: Sendable {
        public var name: String
        public var file: String
        /// Glob patterns (`*`, `?`) of machine ids this type covers.
        public var machines: [String]
        public var template: DetectorConfiguration
    }

    public private(set) var types: [MachineType] = []

    /// Built-in defaults only.
    public init() {}

    /// Loads every `*.yaml` in `directory`, in name order. The first type whose patterns match
    /// a machine wins; a machine no file covers gets the built-in defaults.
    public init(directory: String) throws(ConfigError) {
        let files: [String]
        do { files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted() } catch {
            throw ConfigError(key: "models", "cannot read directory \(directory): \(error.localizedDescription)")
        }
        for f in files { types.append(try Self.parse(path: directory + "/" + f)) }
    }

    /// The configuration for one machine.
    public func configuration(machine: String, site: String) -> DetectorConfiguration {
        var c = types.first(where: { t in t.machines.contains { Self.glob($0, matches: machine) } })?.template ?? DetectorConfiguration()
        c.machine = machine
        c.site = site
        return c
    }

    public func typeName(machine: String) -> String {
        types.first(where: { t in t.machines.contains { Self.glob($0, matches: machine) } })?.name ?? "default"
    }

    static func glob(_ pattern: String, matches s: String) -> Bool {
        let p = Array(pattern), t = Array(s)
        func m(_ i: Int, _ j: Int) -> Bool {
            if i == p.count { return j == t.count }
            if p[i] == "*" { return m(i + 1, j) || (j < t.count && m(i, j + 1)) }
            return j < t.count && (p[i] == "?" || p[i] == t[j]) && m(i + 1, j + 1)
        }
        return m(0, 0)
    }

    static func parse(path: String) throws(ConfigError) -> MachineType {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw ConfigError(key: "models", "cannot read \(path)") }
        return try parse(text: text, path: path)
    }

    /// The `novelty` mapping: vigilance (warm-up ranges), width and memory (shapes), rest
    /// (share of the warm-up), min-levels.
    private static func parseNovelty(_ v: Node, into u: inout UnivariateParameters, key: (String) -> String,
                                     number: (Node, String) throws(ConfigError) -> Double,
                                     integer: (Node, String) throws(ConfigError) -> Int, path: String) throws(ConfigError) {
        guard let m = v.mapping else { throw ConfigError(key: key("novelty"), "must be a mapping of vigilance, width, memory, rest, min-levels (in \(path))") }
        for (k, nv) in m {
            let full = "novelty.\(k.string ?? "")"
            switch k.string ?? "" {
            case "vigilance":
                let r = try number(nv, full)
                guard r > 0 && r <= 100 else { throw ConfigError(key: key(full), "must be in (0, 100] (warm-up ranges) (in \(path))") }
                u.noveltyVigilance = r
            case "width":
                let n = try integer(nv, full)
                guard (1...64).contains(n) else { throw ConfigError(key: key(full), "must be 1...64 readings (in \(path))") }
                u.noveltyWidth = n
            case "memory":
                let n = try integer(nv, full)
                guard (1...1000).contains(n) else { throw ConfigError(key: key(full), "must be 1...1000 shapes (in \(path))") }
                u.noveltyMemory = n
            case "rest":
                let r = try number(nv, full)
                guard r >= 0 && r <= 100 else { throw ConfigError(key: key(full), "must be in [0, 100] (a share of the warm-up) (in \(path))") }
                u.noveltyRestFraction = r
            case "min-levels": u.noveltyMinLevels = try integer(nv, full)
            default: throw ConfigError(key: key(full), "unknown key (allowed: vigilance, width, memory, rest, min-levels)")
            }
        }
    }

    /// One model file's text; `path` names the type (its base name) and appears in errors.
    public static func parse(text: String, path: String) throws(ConfigError) -> MachineType {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigError(key: "models", "\(path) is not valid YAML: \(error)") }
        guard let root, let map = root.mapping else { throw ConfigError(key: "models", "\(path) must be a mapping") }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var c = DetectorConfiguration()
        var machines = ["*"]
        var driftMemoryMs: Int64? = nil
        var slowChangeMemoryMs: Int64? = nil
        func key(_ k: String) -> String { "\(name).\(k)" }
        func number(_ n: Node, _ k: String) throws(ConfigError) -> Double {
            guard let s = n.scalar?.string, let v = Double(s), v.isFinite else { throw ConfigError(key: key(k), "must be a number (in \(path))") }
            return v
        }
        // Counts size buffers (the warm-up is kept in memory), so they are bounded.
        func integer(_ n: Node, _ k: String) throws(ConfigError) -> Int {
            guard let s = n.scalar?.string, let v = Int(s), (0...1_000_000).contains(v) else {
                throw ConfigError(key: key(k), "must be a whole number in 0...1000000 (in \(path))")
            }
            return v
        }
        func millis(_ n: Node, _ k: String) throws(ConfigError) -> Int64 {
            guard let s = n.scalar?.string, let d = ConfigReader.parseDuration(s) else { throw ConfigError(key: key(k), "must be a duration such as 500ms, 30s, 5m, at most 36500d (in \(path))") }
            let (sec, atto) = d.components
            return sec * 1000 + atto / 1_000_000_000_000_000
        }
        func positiveMillis(_ n: Node, _ k: String) throws(ConfigError) -> Int64 {
            let ms = try millis(n, k)
            guard ms > 0 else { throw ConfigError(key: key(k), "must be a positive duration (in \(path))") }
            return ms
        }
        for (k, v) in map {
            let kk = k.string ?? ""
            switch kk {
            case "type", "description": continue
            case "machines":
                guard let seq = v.sequence else { throw ConfigError(key: key("machines"), "must be a list of machine id patterns") }
                machines = seq.compactMap { $0.scalar?.string }
            case "warmup-readings": c.warmupCount = try integer(v, kk)
            case "bucket": c.bucketMs = max(1, try millis(v, kk))
            case "impulse-filter":
                guard let b = v.scalar.flatMap({ Bool($0.string) }) else { throw ConfigError(key: key(kk), "must be true or false (in \(path))") }
                c.univariate.impulseFilter = b
            case "fast-stream-filter":
                guard let b = v.scalar.flatMap({ Bool($0.string) }) else { throw ConfigError(key: key(kk), "must be true or false (in \(path))") }
                c.univariate.impulseFilterFastStreams = b
            case "departure-hold":
                let z = try number(v, kk)
                guard z >= 0 else { throw ConfigError(key: key(kk), "must be ≥ 0 (standard deviations; 0 = off) (in \(path))") }
                c.univariate.departureHoldZ = z
            case "trend-horizon":
                c.univariate.rulHorizonSeconds = Double(try positiveMillis(v, kk)) / 1000
            case "trend-persistence":
                c.univariate.trendPersistMs = try millis(v, kk)
            case "drift-memory":
                // An EWMA rate per machine step: step / memory.
                driftMemoryMs = try positiveMillis(v, kk)
            case "operating-changes":
                guard let om = v.mapping else { throw ConfigError(key: key(kk), "must be a mapping of min-rate, dominance, max-duration, slow-change-memory (in \(path))") }
                for (ok, ov) in om {
                    let okk = ok.string ?? ""
                    let full = "\(kk).\(okk)"
                    switch okk {
                    case "min-rate":
                        let r = try number(ov, full)
                        guard r >= 0 else { throw ConfigError(key: key(full), "must be ≥ 0 (sigma per minute; 0 = off) (in \(path))") }
                        c.multivariate.operatingChangeRate = r
                    case "dominance":
                        let r = try number(ov, full)
                        guard r > 0 && r <= 1 else { throw ConfigError(key: key(full), "must be in (0, 1] (in \(path))") }
                        c.multivariate.operatingChangeDominance = r
                    case "max-duration":
                        c.multivariate.operatingChangeMaxMs = try positiveMillis(ov, full)
                    case "slow-change-memory":
                        slowChangeMemoryMs = try positiveMillis(ov, full)
                    default:
                        throw ConfigError(key: key(full), "unknown key (allowed: min-rate, dominance, max-duration, slow-change-memory)")
                    }
                }
            case "novelty":
                try parseNovelty(v, into: &c.univariate, key: key, number: number, integer: integer, path: path)
            case "models":
                guard let seq = v.sequence else { throw ConfigError(key: key("models"), "must be a list of model names") }
                var set = Set<ModelKind>()
                for item in seq {
                    guard let s = item.scalar?.string, let m = ModelKind(rawValue: s) else {
                        throw ConfigError(key: key("models"), "unknown model '\(item.scalar?.string ?? "?")' (allowed: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    set.insert(m)
                }
                c.enabledModels = set
            case "sensors":
                guard let seq = v.sequence else { throw ConfigError(key: key("sensors"), "must be a list of sensors") }
                c.sensors = []
                for item in seq {
                    guard let sm = item.mapping, let sensorName = sm["name"]?.scalar?.string else {
                        throw ConfigError(key: key("sensors"), "each sensor needs a name (in \(path))")
                    }
                    var spec = SensorSpec(name: sensorName)
                    for (sk, sv) in sm {
                        let skk = sk.string ?? ""
                        let full = "sensors.\(sensorName).\(skk)"
                        switch skk {
                        case "name": continue
                        case "unit": spec.unit = sv.scalar?.string
                        case "physical-min": spec.physicalMin = try number(sv, full)
                        case "physical-max": spec.physicalMax = try number(sv, full)
                        case "failure-threshold": spec.failureThreshold = try number(sv, full)
                        case "limits":
                            guard let ls = sv.sequence else { throw ConfigError(key: key(full), "must be a list of {min|max, severity}") }
                            for l in ls {
                                guard let lm = l.mapping else { throw ConfigError(key: key(full), "must be a list of {min|max, severity}") }
                                var limit = StaticLimit()
                                for (lk, lv) in lm {
                                    switch lk.string ?? "" {
                                    case "min": limit.min = try number(lv, full + ".min")
                                    case "max": limit.max = try number(lv, full + ".max")
                                    case "severity":
                                        guard let sev = lv.scalar.flatMap({ Severity(rawValue: $0.string) }) else {
                                            throw ConfigError(key: key(full + ".severity"), "allowed: info, warning, critical")
                                        }
                                        limit.severity = sev
                                    default: throw ConfigError(key: key(full + "." + (lk.string ?? "")), "unknown key (allowed: min, max, severity)")
                                    }
                                }
                                spec.limits.append(limit)
                            }
                        default:
                            throw ConfigError(key: key(full), "unknown key (allowed: name, unit, physical-min, physical-max, failure-threshold, limits)")
                        }
                    }
                    c.sensors.append(spec)
                }
            case "lifecycle":
                guard let lm = v.mapping else { throw ConfigError(key: key("lifecycle"), "must be a mapping") }
                for (lk, lv) in lm {
                    let lkk = lk.string ?? ""
                    let full = "lifecycle.\(lkk)"
                    switch lkk {
                    case "open-threshold": c.lifecycle.openThreshold = try number(lv, full)
                    case "open-count": c.lifecycle.openCount = try integer(lv, full)
                    case "open-hold": c.lifecycle.openHoldMs = try millis(lv, full)
                    case "close-threshold": c.lifecycle.closeThreshold = try number(lv, full)
                    case "close-count": c.lifecycle.closeCount = try integer(lv, full)
                    case "close-hold": c.lifecycle.closeHoldMs = try millis(lv, full)
                    case "update-score-delta": c.lifecycle.updateScoreDelta = try number(lv, full)
                    case "min-update-interval": c.lifecycle.minUpdateIntervalMs = try millis(lv, full)
                    case "cooldown": c.lifecycle.cooldownMs = try millis(lv, full)
                    case "critical-score": c.lifecycle.criticalScore = try number(lv, full)
                    case "recurrence-period": c.lifecycle.recurrencePeriodMs = try positiveMillis(lv, full)
                    case "recurrence-periods": c.lifecycle.recurrencePeriods = try integer(lv, full)
                    case "recurrence-tolerance": c.lifecycle.recurrenceToleranceMs = try millis(lv, full)
                    case "recurrence-max-hold": c.lifecycle.recurrenceMaxHoldMs = try millis(lv, full)
                    default: throw ConfigError(key: key(full), "unknown key (allowed: open-threshold, open-count, open-hold, close-threshold, close-count, close-hold, update-score-delta, min-update-interval, cooldown, critical-score, recurrence-period, recurrence-periods, recurrence-tolerance, recurrence-max-hold)")
                    }
                }
            default:
                throw ConfigError(key: key(kk), "unknown key in \(path) (allowed: type, description, machines, warmup-readings, bucket, impulse-filter, fast-stream-filter, departure-hold, trend-horizon, trend-persistence, drift-memory, operating-changes, models, sensors, lifecycle)")
            }
        }
        // After the loop: the rate depends on `bucket`, which may come later in the file.
        if let driftMemoryMs { c.multivariate.driftAlpha = min(1, Double(c.bucketMs) / Double(driftMemoryMs)) }
        if let slowChangeMemoryMs { c.multivariate.broadDriftAlpha = min(1, Double(c.bucketMs) / Double(slowChangeMemoryMs)) }
        return MachineType(name: name, file: path, machines: machines, template: c)
    }
}
