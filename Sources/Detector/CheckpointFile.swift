// Checkpoint files on disk, and whether a saved one still matches the consumer group. The
// write is durable or fails loudly: the data is fsynced to a temporary file, renamed over the
// old checkpoint, and the directory is fsynced so that the rename itself survives power loss.
// Every failed step is an error naming the file, the step and the operating system's reason.
import Foundation

/// A checkpoint that could not be saved. Offsets must not be committed past it.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    /// The step that failed: "create", "write", "fsync", "rename", "fsync directory".
    public var step: String
    public var reason: String
    public var description: String { "cannot save checkpoint \(path) (\(step)): \(reason)" }
}

enum CheckpointFile {
    /// Writes `data` to `path` atomically and durably: temporary file, fsync, rename, fsync of the directory.
    static func write(_ data: Data, to path: String) throws(CheckpointError) {
        let tmp = path + ".tmp"
        func failure(_ step: String, _ file: String = path) -> CheckpointError {
            CheckpointError(path: file, step: step, reason: String(cString: strerror(errno)))
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("create", tmp) }
        var written = 0
        let ok = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return true
        }
        guard ok else { let e = failure("write", tmp); close(fd); unlink(tmp); throw e }
        guard fsync(fd) == 0 else { let e = failure("fsync", tmp); close(fd); unlink(tmp); throw e }
        guard close(fd) == 0 else { let e = failure("close", tmp); unlink(tmp); throw e }
        guard rename(tmp, path) == 0 else { let e = failure("rename"); unlink(tmp); throw e }
        try syncDirectory(of: path)
    }

    /// fsync of the directory that holds `path`, so that a rename into it is durable.
    static func syncDirectory(of path: String) throws(CheckpointError) {
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError(path: dir, step: "open directory", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CheckpointError(path: dir, step: "fsync directory", reason: String(cString: strerror(errno))) }
    }
}

/// Whether a saved checkpoint is where the consumer group is. Offsets are committed right
/// after the checkpoint that they correspond to is saved, so the two agree unless another
/// instance consumed the partition since (A → B → A), or the last commit was lost.
enum CheckpointMatch: Equatable {
    /// The checkpoint is exactly at the group's committed offset: restore it.
    case current
    /// The checkpoint is ahead of the committed offset (its commit was lost): restore it; the
    /// replayed readings are de-duplicated by (gateway, seq).
    case ahead
    /// Not the state the group is at; warm up afresh. The reason says why.
    case stale(String)

    /// `checkpointOffset`: the next offset saved in the checkpoint. `committed`: the group's
    /// committed offset (nil or negative when it has none, or could not be read).
    static func compare(checkpointOffset: Int64?, committed: Int64?) -> CheckpointMatch {
        guard let saved = checkpointOffset else { return .stale("the checkpoint has no offset") }
        guard let committed, committed >= 0 else { return .stale("the group has no committed offset, the checkpoint is at \(saved)") }
        if committed == saved { return .current }
        if committed < saved { return .ahead }
        return .stale("the group has committed offset \(committed), beyond the checkpoint's \(saved): another instance consumed the partition since")
    }
}
