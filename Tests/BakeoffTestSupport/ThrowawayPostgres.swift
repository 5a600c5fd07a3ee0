import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL server of its own for a test: a new cluster in a temporary directory (Debian's `postgresql`
/// binaries), listening only on a Unix socket there, stopped and deleted by `stop()` or when released.
///
/// `initdb` refuses to run as root, so as root the server runs as the `postgres` user (`setpriv`). `fsync` is off:
/// tests that claim durability across a crash of the database itself must ask for `durable`.
public final class ThrowawayPostgres: @unchecked Sendable {
    /// The cluster's directory; the server's socket is in it.
    public let directory: String
    /// A URL of the `postgres` database as the `postgres` user, over the socket.
    public var url: String { "postgresql://postgres@/\(database)?host=\(directory)" }
    public let database = "postgres"
    private var server: Process?
    private let binaries: String
    private let asPostgres: Bool

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts a server (within 30 seconds); `durable` keeps `fsync` on.
    public init(durable: Bool = false) throws {
        guard let bin = Self.binaries() else {
            throw Failure(description: "PostgreSQL's server binaries are not installed (Debian's postgresql package: make deps)")
        }
        binaries = bin
        asPostgres = getuid() == 0
        // A short path: a Unix socket's path may not be longer than about 107 bytes.
        var template = Array("/tmp/bkpg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(description: "cannot make a temporary directory") }
        directory = String(cString: made)
        if asPostgres {
            guard let pw = getpwnam("postgres") else { throw Failure(description: "running as root, but there is no postgres user") }
            chown(directory, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        chmod(directory, 0o755)
        try run("initdb", ["-D", "\(directory)/data", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
        try start(durable: durable)
    }

    deinit { stop(removing: true) }

    /// Starts the server on the cluster (again, after `stop(removing: false)` or a kill).
    public func start(durable: Bool = false) throws {
        let p = process("postgres", ["-D", "\(directory)/data", "-k", directory, "-c", "listen_addresses=",
                                     "-c", "fsync=\(durable ? "on" : "off")", "-c", "max_connections=200"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        server = p
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? run("pg_isready", ["-q", "-h", directory], quiet: true)) != nil { return }
            guard p.isRunning else { throw Failure(description: "the PostgreSQL server in \(directory) stopped while starting") }
            usleep(50_000)
        }
        throw Failure(description: "the PostgreSQL server in \(directory) did not start within 30 s")
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    public func kill() {
        guard let server, server.isRunning else { return }
        Glibc.kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        self.server = nil
        // A killed postmaster leaves its children for a moment; the next start waits for them (postmaster.pid).
        usleep(200_000)
    }

    /// Stops the server and every backend of it (SIGSTOP) without closing a connection: a server that hangs, or
    /// one cut off by a network that drops packets. `resume()` lets it go on.
    public func pause() { signalAll(SIGSTOP) }

    /// Lets a paused server go on (SIGCONT).
    public func resume() { signalAll(SIGCONT) }

    private func signalAll(_ signal: Int32) {
        guard let server, server.isRunning else { return }
        let root = server.processIdentifier
        var pids = [root]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // pid (comm) state ppid ...: the fields after the command's closing parenthesis.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == root { pids.append(pid) }
        }
        for pid in pids { Glibc.kill(pid, signal) }
    }

    /// Stops the server (a fast shutdown), and deletes the cluster unless `removing` is false.
    public func stop(removing: Bool = true) {
        if let server, server.isRunning {
            Glibc.kill(server.processIdentifier, SIGINT)
            server.waitUntilExit()
        }
        server = nil
        if removing { try? FileManager.default.removeItem(atPath: directory) }
    }

    private static func binaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        for v in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(root)/\(v)/bin/postgres") {
            return "\(root)/\(v)/bin"
        }
        return nil
    }

    private func process(_ tool: String, _ arguments: [String]) -> Process {
        let p = Process()
        if asPostgres {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=postgres", "--regid=postgres", "--clear-groups", "\(binaries)/\(tool)"] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "\(binaries)/\(tool)")
            p.arguments = arguments
        }
        return p
    }

    private func run(_ tool: String, _ arguments: [String], quiet: Bool = false) throws {
        let p = process(tool, arguments)
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        try p.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Failure(description: quiet ? "\(tool) failed" : "\(tool) failed: \(String(decoding: text, as: UTF8.self))")
        }
    }
}
