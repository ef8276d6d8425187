import Foundation

/// A real small file system: a tmpfs of a given size mounted on a fresh temporary directory.
/// Needs root (`mount -t tmpfs -o size=2m tmpfs DIR`); tests skip with `SmallDisk.skipMessage`
/// where mounting is not permitted. `unmount()` (also on deinit) takes it away again.
public final class SmallDisk: @unchecked Sendable {
    public let path: String
    public let sizeBytes: Int64
    private var mounted = true

    /// True when this process may mount a tmpfs (tried once, on a 64 KiB one).
    public static let isAvailable: Bool = {
        guard let probe = try? SmallDisk(sizeBytes: 64 << 10, name: "probe") else { return false }
        probe.unmount()
        return true
    }()

    public static let skipMessage = "needs permission to mount a tmpfs (run as root: mount -t tmpfs -o size=2m tmpfs DIR); skipped"

    public init(sizeBytes: Int64, name: String) throws {
        path = TestEnvironment.temporaryDirectory("disk-\(name)")
        self.sizeBytes = sizeBytes
        let (status, output) = Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeBytes),mode=0777", "tmpfs", path])
        guard status == 0 else {
            mounted = false
            throw TestFailure("cannot mount a \(sizeBytes)-byte tmpfs on \(path): \(output)")
        }
    }

    /// Free bytes as statvfs reports them.
    public var freeBytes: Int64 {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return -1 }
        return Int64(fs.f_bavail) * Int64(fs.f_frsize)
    }

    /// Fills the disk with a file until the kernel says ENOSPC; returns the file's path.
    @discardableResult
    public func fill(name: String = "filler") -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xAB, count: 4096)
        for _ in 0..<Int(sizeBytes / 4096 + 16) {
            if chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) <= 0 { break }
        }
        // Partial pages: fill the last bytes too.
        for _ in 0..<4096 where write(fd, chunk, 1) > 0 {}
        return file
    }

    /// Remounts read-only (fails while a file on it is open for writing) or read-write.
    @discardableResult
    public func remount(readOnly: Bool) -> Bool {
        Self.run("/bin/mount", ["-o", "remount,\(readOnly ? "ro" : "rw")", path]).0 == 0
    }

    /// Lazy unmount (`umount -l`): the path is an empty directory at once, while files that are
    /// open on the disk stay usable until closed (a state directory that vanished under a process).
    public func detach() {
        guard mounted else { return }
        mounted = false
        Self.run("/bin/umount", ["-l", path])
    }

    public func unmount() {
        guard mounted else { return }
        mounted = false
        if Self.run("/bin/umount", [path]).0 != 0 { _ = Self.run("/bin/umount", ["-l", path]) }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { unmount() }

    @discardableResult
    static func run(_ tool: String, _ args: [String]) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, out)
    }
}

/// tools/mqtt-qos1-publisher.c, compiled with `cc` into `directory`: a QoS 1 publisher in C that
/// keeps `window` messages in flight, as fast as the broker acknowledges them (about 46,000
/// readings/s here, far faster than `TestPublisher`). With `-c` each reading's value is its
/// machine's counter (0, 1, 2, ...), so order and gaps per machine can be checked.
public final class FastPublisher: @unchecked Sendable {
    public let child: ChildProcess

    /// Starts publishing `count` readings round-robin over `machines` machines (m001...) to
    /// factory/`site`/mNNN/vib_rms on `port`.
    public init(directory: String, port: Int, count: Int, machines: Int, site: String, window: Int = 500) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let binary = directory + "/mqtt-qos1-publisher"
        let (status, output) = SmallDisk.run("/usr/bin/cc", ["-O2", "-o", binary, root + "/tools/mqtt-qos1-publisher.c", "-lmosquitto", "-lpthread"])
        guard status == 0 else { throw TestFailure("cannot build tools/mqtt-qos1-publisher.c: \(output)") }
        child = try ChildProcess(executable: binary, arguments: ["-p", String(port), "-n", String(count), "-m", String(machines), "-s", site,
                                                                 "-r", "0", "-w", String(window), "-T", "120", "-c", "-q", "-i", "fast-pub-\(site)"],
                                 directory: directory, name: "fast-publisher-\(site)")
    }

    /// Waits for the publisher to end (bounded); (published, acknowledged), or nil if it failed.
    public func finish(timeout: TimeInterval = 150) -> (published: Int, acknowledged: Int, rate: Double)? {
        guard child.waitForExit(timeout: timeout) == 0 else { child.stop(grace: 1); return nil }
        let words = child.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 4, let p = Int(words[1]), let a = Int(words[3]) else { return nil }
        let rate = child.stderr.split(separator: " ").first { $0.hasPrefix("rate=") }.flatMap { Double($0.dropFirst(5).prefix { $0 != "\n" }) } ?? 0
        return (p, a, rate)
    }
}
