// The ballast file: space held back in the state directory so that, when the file system is
// full anyway, the journal's deletes and checkpoints can still commit once it is deleted.
// This file only does the I/O (allocate, delete, look); `BallastPolicy` decides when.
#if canImport(Glibc)
import Glibc
#endif

/// A file of `bytes` really allocated blocks (not sparse) at `path`.
public struct BallastFile: Sendable {
    public let path: String
    public let bytes: Int64

    public init(path: String, bytes: Int64) {
        self.path = path
        self.bytes = bytes
    }

    /// The ballast next to a journal: `<state-dir>/journal.ballast`.
    public static func path(besideJournal journalPath: String) -> String {
        Journal.directory(of: journalPath) + "/journal.ballast"
    }

    /// True when the file is there with its full size. A file of another size (a changed
    /// `journal.ballast-bytes`, or a creation cut short) does not count, and is removed.
    public func isPresent() -> Bool {
        guard let size = Journal.fileSize(path) else { return false }
        if size == bytes { return true }
        unlink(path)
        return false
    }

    /// Allocates the file under a temporary name, syncs it and renames it into place, so a
    /// ballast at the path always has its full size. Throws, and leaves nothing, when the disk
    /// cannot hold it.
    public func create() throws(JournalError) {
        let temporary = path + ".new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var ok = allocate(fd)
        ok = ok && fsync(fd) == 0
        let code = errno
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let e = ok ? errno : code
            unlink(temporary)
            errno = e
            throw failure("cannot allocate the \(bytes)-byte ballast \(path)")
        }
        Self.syncDirectory(of: path)
    }

    /// Deletes the file, which gives its blocks back to the file system at once.
    public func release() {
        unlink(path)
        unlink(path + ".new")
        Self.syncDirectory(of: path)
    }

    /// posix_fallocate where the file system has it, else written zeros (both take real blocks).
    private func allocate(_ fd: Int32) -> Bool {
        let r = posix_fallocate(fd, 0, off_t(bytes))
        if r == 0 { return true }
        guard r == EOPNOTSUPP || r == EINVAL else { errno = r; return false }
        let chunk = [UInt8](repeating: 0, count: 1 << 16)
        var left = bytes
        while left > 0 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, Int(min(Int64($0.count), left))) }
            if n <= 0 { return false }
            left -= Int64(n)
        }
        return true
    }

    private func failure(_ what: String) -> JournalError {
        let code = errno
        return JournalError(code == ENOSPC ? .diskFull : .other, path: path, "\(what): \(String(cString: strerror(code)))")
    }

    private static func syncDirectory(of path: String) {
        let dir = open(Journal.directory(of: path), O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }
}
