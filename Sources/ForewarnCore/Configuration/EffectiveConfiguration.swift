// The effective configuration, for `--print-config`: every key with the value in force and
// where it came from (default, FILE:LINE, environment NAME, flag --NAME). Secrets are masked.

/// One key of the effective configuration.
public struct EffectiveSetting: Sendable, Equatable {
    public var key: String
    public var value: String
    /// `default`, `FILE:LINE`, `environment NAME` or `flag --NAME`.
    public var source: String

    public init(key: String, value: String, source: String) {
        self.key = key
        self.value = value
        self.source = source
    }

    /// The value as shown to an operator: secrets replaced by `********`.
    public var shownValue: String { EffectiveSetting.isSecret(key) && !value.isEmpty && value != "none" ? "********" : value }

    /// Keys whose values are never shown: passwords, secrets, tokens, private key passphrases.
    public static func isSecret(_ key: String) -> Bool {
        let last = key.split(separator: ".").last.map(String.init)?.lowercased() ?? key.lowercased()
        // A path to a secret (mqtt.password-file, ssl.key.location) is not itself secret.
        if last.hasSuffix("-file") || last.hasSuffix("file") || last == "location" { return false }
        return ["password", "secret", "token", "passphrase"].contains { last.contains($0) } || key.lowercased().hasSuffix("oauthbearer.config")
    }

    /// Aligned `key: value  # source` lines, sorted by key.
    public static func render(_ settings: [EffectiveSetting]) -> String {
        let sorted = settings.sorted { $0.key < $1.key }
        let keyWidth = sorted.map(\.key.count).max() ?? 0
        let valueWidth = min(48, sorted.map(\.shownValue.count).max() ?? 0)
        return sorted.map { s in
            let k = s.key + ":" + String(repeating: " ", count: keyWidth - s.key.count + 1)
            let v = s.shownValue + String(repeating: " ", count: max(0, valueWidth - s.shownValue.count))
            return "\(k)\(v)  # \(s.source)"
        }.joined(separator: "\n") + "\n"
    }
}

extension ConfigReader {
    /// Every key read (with its default where no source set it), plus what was set under
    /// `openPrefixes` (passed through, such as `kafka.properties.*`).
    public func effectiveSettings(openPrefixes: [String]) -> [EffectiveSetting] {
        var out: [EffectiveSetting] = []
        for key in knownKeys.sorted() where !openPrefixes.contains(key) {
            if let e = source.entries[key] {
                out.append(EffectiveSetting(key: key, value: e.value, source: e.origin))
            } else {
                out.append(EffectiveSetting(key: key, value: defaults[key] ?? "", source: "default"))
            }
        }
        for (key, e) in source.entries where openPrefixes.contains(where: { key.hasPrefix($0 + ".") }) {
            out.append(EffectiveSetting(key: key, value: e.value, source: e.origin))
        }
        return out.sorted { $0.key < $1.key }
    }
}

/// What a reload (SIGHUP) changes: the keys it may apply while running, and the changed
/// keys that only a restart applies. Compared by value, not by where a value came from.
public struct ReloadPlan: Sendable, Equatable {
    /// Changed keys that are applied now, with their new values.
    public var apply: [EffectiveSetting] = []
    /// Changed keys that keep their running value until a restart.
    public var needsRestart: [String] = []
    /// The running values of the changed keys (for the log line).
    var before: [String: EffectiveSetting] = [:]

    public static func compare(running: [EffectiveSetting], new: [EffectiveSetting], reloadable: Set<String>) -> ReloadPlan {
        let old = Dictionary(running.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let now = Dictionary(new.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var plan = ReloadPlan()
        for key in Set(old.keys).union(now.keys).sorted() where old[key]?.value != now[key]?.value {
            if reloadable.contains(key), let n = now[key] {
                plan.apply.append(n)
                plan.before[key] = old[key]
            } else {
                plan.needsRestart.append(key)
            }
        }
        return plan
    }

    /// The running configuration after the reload: the applied keys new, everything else as it was.
    public func applied(to running: [EffectiveSetting]) -> [EffectiveSetting] {
        let changes = Dictionary(apply.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        return running.map { changes[$0.key] ?? $0 }
    }

    /// One line for the log: `log-level info → debug; needs a restart: mqtt.keepalive`.
    public var summary: String {
        var parts = apply.map { "\($0.key) \(before[$0.key]?.shownValue ?? "unset") → \($0.shownValue)" }
        if !needsRestart.isEmpty { parts.append("changed but only applied by a restart: \(needsRestart.joined(separator: ", "))") }
        return parts.isEmpty ? "nothing changed" : parts.joined(separator: "; ")
    }
}
