import Foundation
import BakeoffCore

/// The process's open-files limit (RLIMIT_NOFILE), and how many client connections fit under it.
///
/// Every connection is a file descriptor. Shells and service managers often start processes with a soft
/// limit of 1,024 although the hard limit allows far more; a server that keeps the soft limit fails with
/// "Too many open files" long before its connection limit.
public enum OpenFiles {
    /// Descriptors kept aside for everything but client connections: upstream connections (libcurl keeps up
    /// to 1,024 alive), the store's files, the listening socket, pollers, standard streams.
    public static let reserve = 1024 + 64

    /// The soft and hard limits now.
    public static func current() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (1024, 1024) }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one; returns the limits after (the soft one unchanged if refused).
    @discardableResult
    public static func raiseToHard() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current() }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            // An unlimited hard limit cannot be a soft one on Linux (nr_open caps it): try that next.
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0, let nrOpen = systemMaximum() {
                raised.rlim_cur = rlim_t(min(UInt64(limit.rlim_max), UInt64(nrOpen)))
                _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
            }
        }
        return current()
    }

    /// How many connections to allow: `requested` when it fits under `openFiles` with the reserve; else
    /// fewer, with a note saying why, when `lowerIfNeeded`; else an error saying what to change.
    public static func fit(requested: Int, lowerIfNeeded: Bool, openFiles: (soft: Int, hard: Int))
        -> Result<(connections: Int, note: String?), HTTPServerError> {
        let available = openFiles.soft - reserve
        if requested <= available { return .success((requested, nil)) }
        let remedy = "raise the hard open-files limit (ulimit -Hn; LimitNOFILE= for systemd, --ulimit nofile= for Docker)"
        guard lowerIfNeeded else {
            return .failure(HTTPServerError(message: "max_connections is \(requested), but this process may open only \(openFiles.soft) files (hard limit \(openFiles.hard)) and keeps \(reserve) for upstreams and the store: \(remedy) to at least \(requested + reserve), or set max_connections to at most \(max(available, 0))"))
        }
        let lowered = max(available, 16)
        return .success((lowered, "only \(openFiles.soft) open files are allowed (hard limit \(openFiles.hard)), so at most \(lowered) connections are accepted instead of \(requested): \(remedy) to at least \(requested + reserve) for the default"))
    }

    /// /proc/sys/fs/nr_open: the most any process may open.
    private static func systemMaximum() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value)
    }
}
