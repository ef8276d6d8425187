// What `/metrics` adds to the registry's exposition so that Prometheus tooling accepts it:
// a HELP line for every family, `forewarn_build_info`, and the standard process metrics
// (read from /proc at scrape time), and a final newline.
import Foundation

public enum MetricsExposition {
    /// The exposition with `# HELP name text` inserted before each `# TYPE name` line that
    /// has no HELP yet and whose name is in `help`.
    public static func addingHelp(_ text: String, help: [String: String]) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + help.count * 80)
        var helped = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP ") {
                helped.insert(String(line.dropFirst(7).prefix { $0 != " " }))
            } else if line.hasPrefix("# TYPE ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                if !helped.contains(name), let h = help[name] {
                    out += "# HELP \(name) \(escapeHelp(h))\n"
                    helped.insert(name)
                }
            }
            out += line
            out += "\n"
        }
        // split kept the empty piece after a final newline: do not double it.
        if text.hasSuffix("\n") || text.isEmpty { out.removeLast() }
        return out
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeLabel(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// `forewarn_build_info{labels} 1`.
    public static func buildInfo(_ labels: [(String, String)]) -> String {
        let l = labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",")
        return "# HELP forewarn_build_info Build and version of this forewarn process (always 1).\n"
            + "# TYPE forewarn_build_info gauge\nforewarn_build_info{\(l)} 1\n"
    }

    /// The standard `process_*` metrics of the Prometheus client libraries.
    public static func processMetrics(_ p: ProcessSnapshot) -> String {
        func family(_ name: String, _ type: String, _ help: String, _ value: Double) -> String {
            "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n"
        }
        return family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p.cpuSeconds)
            + family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", Double(p.residentBytes))
            + family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", Double(p.virtualBytes))
            + family("process_open_fds", "gauge", "Number of open file descriptors.", Double(p.openFDs))
            + family("process_max_fds", "gauge", "Maximum number of open file descriptors.", Double(p.maxFDs))
            + family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", p.startTimeSeconds)
    }

    static func format(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}

/// The process's resource use, as /proc reports it.
public struct ProcessSnapshot: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: Int64
    public var virtualBytes: Int64
    public var openFDs: Int
    public var maxFDs: Int
    public var startTimeSeconds: Double

    /// From the text of /proc/self/stat and the `btime` of /proc/stat. Fields after the command
    /// name (which may hold spaces and parentheses) are counted from its last ')'. nil if malformed.
    public static func parse(stat: String, bootTime: Double, clockTicksPerSecond: Double, pageSize: Int64,
                             openFDs: Int, maxFDs: Int) -> ProcessSnapshot? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After ")": field 3 (state) is index 0, so field N is index N - 3.
        let f = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ n: Int) -> Double? { n - 3 < f.count ? Double(f[n - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24),
              clockTicksPerSecond > 0 else { return nil }
        return ProcessSnapshot(cpuSeconds: (utime + stime) / clockTicksPerSecond, residentBytes: Int64(rss) * pageSize,
                               virtualBytes: Int64(vsize), openFDs: openFDs, maxFDs: maxFDs,
                               startTimeSeconds: bootTime + start / clockTicksPerSecond)
    }

    /// `btime` (boot time, seconds since the epoch) from the text of /proc/stat.
    public static func bootTime(procStat: String) -> Double? {
        procStat.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) }
    }

    /// This process now; nil where /proc is not available.
    public static func current() -> ProcessSnapshot? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let procStat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let boot = bootTime(procStat: procStat) else { return nil }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        var limit = rlimit()
        let maxFDs = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : 0
        return parse(stat: stat, bootTime: boot, clockTicksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
                     pageSize: Int64(sysconf(Int32(_SC_PAGESIZE))), openFDs: max(0, fds - 1), maxFDs: maxFDs)
    }
}
