/// Maps MQTT topics to reading fields, e.g. `factory/{site}/{machine}/{sensor}`.
///
/// Named segments become fields; other named segments are allowed and ignored;
/// literal segments must match exactly. `{machine}` is required. Without `{site}`
/// the configured default site applies. Without `{sensor}` only batch payloads
/// (which name their sensors) are accepted.
public struct TopicTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case field(String)
    }

    let segments: [Segment]
    public let description: String
    /// The segments as `match` reads them: a literal's bytes, and which field a name is.
    private let roles: [Role]

    private enum Role: Sendable, Equatable {
        case literal([UInt8])
        case site, machine, sensor
        /// Another named segment: matches anything, ignored.
        case ignored

        var fieldName: String {
            switch self {
            case .site: "site"
            case .machine: "machine"
            case .sensor: "sensor"
            case .literal, .ignored: ""
            }
        }
    }

    private static func equal(_ part: UnsafeBufferPointer<UInt8>, _ literal: [UInt8]) -> Bool {
        guard part.count == literal.count else { return false }
        for k in 0..<part.count where part[k] != literal[k] { return false }
        return true
    }

    public struct Fields: Sendable, Equatable {
        public var site: String?
        public var machine: String
        public var sensor: String?
        public init(site: String?, machine: String, sensor: String?) {
            self.site = site
            self.machine = machine
            self.sensor = sensor
        }
    }

    public struct InvalidTemplate: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(_ template: String) throws(InvalidTemplate) {
        description = template
        var segs: [Segment] = []
        for part in template.split(separator: "/", omittingEmptySubsequences: false) {
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                segs.append(.field(String(part.dropFirst().dropLast())))
            } else if part.contains("{") || part.contains("}") || part.contains("+") || part.contains("#") {
                throw InvalidTemplate(description: "segment '\(part)' must be a literal or a whole '{name}'")
            } else if part.isEmpty {
                throw InvalidTemplate(description: "empty segment in '\(template)'")
            } else {
                segs.append(.literal(String(part)))
            }
        }
        guard segs.contains(.field("machine")) else {
            throw InvalidTemplate(description: "'\(template)' has no {machine} segment")
        }
        let names = segs.compactMap { if case let .field(n) = $0 { n } else { nil } }
        guard Set(names).count == names.count else {
            throw InvalidTemplate(description: "'\(template)' names a segment twice")
        }
        segments = segs
        roles = segs.map { seg in
            switch seg {
            case let .literal(l): .literal(Array(l.utf8))
            case .field("site"): .site
            case .field("machine"): .machine
            case .field("sensor"): .sensor
            case .field: .ignored
            }
        }
    }

    /// The MQTT subscription filter: each named segment becomes `+`.
    public var subscriptionFilter: String {
        segments.map { if case let .literal(l) = $0 { l } else { "+" } }.joined(separator: "/")
    }

    public var hasSensor: Bool { segments.contains(.field("sensor")) }

    /// Extracts the fields of `topic`, or explains why it does not match.
    /// Works on the topic's UTF-8 bytes: it runs once per MQTT message, and splitting into
    /// Substrings and comparing them as Unicode text cost a quarter of the message callback.
    public func match(_ topic: String) throws(PayloadRejection) -> Fields {
        var topic = topic
        return try topic.withUTF8 { matchFields($0) }.get()
    }

    private func matchFields(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Fields, PayloadRejection> {
        var site: String?, machine: String?, sensor: String?
        var start = 0
        for (index, role) in roles.enumerated() {
            // This segment runs to the next '/' (or the end, for the last one).
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "/") { end += 1 }
            let isLast = index == roles.count - 1
            guard isLast == (end == bytes.count) else { return .failure(mismatch(bytes)) }
            let part = UnsafeBufferPointer(rebasing: bytes[start..<end])
            defer { start = end + 1 }
            switch role {
            case let .literal(l):
                guard Self.equal(part, l) else { return .failure(mismatch(bytes)) }
            case .ignored:
                continue
            case .site, .machine, .sensor:
                let value = String(decoding: part, as: UTF8.self)
                guard Identifier.isValid(part) else { return .failure(Identifier.rejection(value, field: role.fieldName)) }
                if role == .site { site = value } else if role == .machine { machine = value } else { sensor = value }
            }
        }
        return .success(Fields(site: site, machine: machine!, sensor: sensor))
    }

    private func mismatch(_ bytes: UnsafeBufferPointer<UInt8>) -> PayloadRejection {
        PayloadRejection(.topicMismatch, "topic '\(String(decoding: bytes, as: UTF8.self))' does not match template '\(description)'")
    }
}

/// Site, machine and sensor identifiers: 1–64 of `A-Z a-z 0-9 _ - .`, so they are safe
/// as Kafka keys, metric labels and file names.
public enum Identifier {
    public static func validate(_ value: String, field: String) throws(PayloadRejection) {
        var bytes = value
        guard bytes.withUTF8({ isValid($0) }) else { throw rejection(value, field: field) }
    }

    static func rejection(_ value: String, field: String) -> PayloadRejection {
        PayloadRejection(.invalidIdentifier, "\(field) '\(value.prefix(80))' must be 1-64 characters of A-Z a-z 0-9 _ - .")
    }

    /// `validate`'s test on the bytes in place (the topic's segments, once per message).
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= 64 else { return false }
        for c in bytes where !isAllowed(c) { return false }
        return true
    }

    static func isAllowed(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
    }
}
