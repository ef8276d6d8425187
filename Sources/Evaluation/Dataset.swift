// Evaluation: offline replay and scoring of the Detection models on labelled CSV data.
//
// This module owns CSV loading (SKAB `;` files and NAB `timestamp,value` files, told apart
// by the header), replaying a file through one MachineDetector, and the scorers: SKAB point
// F1/FAR/MAR, SKAB changepoint (NAB rules, 60 s window right of each changepoint) and NAB's
// three profiles. It reads files; it never writes into the data set folders.
import Foundation
import Detection

public enum DatasetFormat: String, Sendable { case skab, nab }

/// One loaded CSV: timestamps, sensor columns and optional labels.
public struct LabeledSeries: Sendable {
    public var format: DatasetFormat
    public var name: String
    /// Timestamp strings exactly as in the file (for replay output).
    public var timestamps: [String]
    /// Epoch ms, timestamps read as UTC.
    public var epochMs: [Int64]
    public var columns: [String]
    /// Row-major values, `columns.count` per row.
    public var values: [[Double]]
    /// SKAB `anomaly` column, if present.
    public var anomaly: [Bool]?
    /// SKAB `changepoint` column, if present.
    public var changepoint: [Bool]?

    public var count: Int { epochMs.count }
}

public enum DatasetError: Error, CustomStringConvertible {
    case unreadable(String)
    case unknownHeader(String)
    case badRow(file: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let p): return "cannot read \(p)"
        case .unknownHeader(let h): return "unknown CSV header: \(h) (expected SKAB's 'datetime;<column>;…' or 'timestamp,<column>,…' as in NAB)"
        case .badRow(let f, let l, let r): return "\(f):\(l): \(r)"
        }
    }
}

public enum CSVLoader {
    public static func load(path: String) throws -> LabeledSeries {
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError.unreadable(path) }
        return try parse(String(decoding: data, as: UTF8.self), name: path)
    }

    public static func parse(_ text: String, name: String = "") throws -> LabeledSeries {
        var lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        guard !lines.isEmpty else { throw DatasetError.unknownHeader("") }
        let header = String(lines.removeFirst())
        let format: DatasetFormat
        let sep: Character
        if header.hasPrefix("datetime;") { format = .skab; sep = ";" }
        // NAB's `timestamp,value`, or a machine's own export with several named columns.
        else if header.hasPrefix("timestamp,") { format = .nab; sep = "," }
        else { throw DatasetError.unknownHeader(header) }
        let head = header.split(separator: sep).map { $0.trimmingCharacters(in: .whitespaces) }
        let anomalyCol = head.firstIndex(of: "anomaly")
        let cpCol = head.firstIndex(of: "changepoint")
        let sensorCols = (1..<head.count).filter { $0 != anomalyCol && $0 != cpCol }
        var s = LabeledSeries(format: format, name: name, timestamps: [], epochMs: [], columns: sensorCols.map { head[$0] },
                              values: [], anomaly: anomalyCol == nil ? nil : [], changepoint: cpCol == nil ? nil : [])
        s.timestamps.reserveCapacity(lines.count)
        s.values.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated() {
            let f = line.split(separator: sep, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= head.count else { throw DatasetError.badRow(file: name, line: i + 2, reason: "expected \(head.count) fields") }
            guard let ms = parseTimestamp(f[0]) else { throw DatasetError.badRow(file: name, line: i + 2, reason: "bad timestamp \(f[0])") }
            s.timestamps.append(f[0])
            s.epochMs.append(ms)
            s.values.append(sensorCols.map { Double(f[$0]) ?? .nan })
            if let a = anomalyCol { s.anomaly!.append((Double(f[a]) ?? 0) >= 0.5) }
            if let c = cpCol { s.changepoint!.append((Double(f[c]) ?? 0) >= 0.5) }
        }
        return s
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`) as UTC epoch ms.
    public static func parseTimestamp(_ s: String) -> Int64? {
        let u = Array(s.utf8)
        guard u.count >= 19 else { return nil }
        func num(_ a: Int, _ b: Int) -> Int? {
            var v = 0
            for i in a..<b { let c = Int(u[i]) - 48; guard c >= 0 && c <= 9 else { return nil }; v = v * 10 + c }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 7), let d = num(8, 10), let h = num(11, 13), let mi = num(14, 16),
              let se = num(17, 19) else { return nil }
        var ms = 0
        if u.count > 20, u[19] == UInt8(ascii: ".") {
            var frac = 0, digits = 0
            for i in 20..<u.count where digits < 3 {
                let c = Int(u[i]) - 48
                guard c >= 0 && c <= 9 else { break }
                frac = frac * 10 + c
                digits += 1
            }
            while digits < 3 { frac *= 10; digits += 1 }
            ms = frac
        }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Int64(((days * 24 + h) * 60 + mi) * 60 + se) * 1000 + Int64(ms)
    }
}
