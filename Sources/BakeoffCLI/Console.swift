#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import Synchronization

/// How one `write(2)` loop ended.
package enum WriteResult: Equatable, Sendable {
    case written
    /// The reader went away (EPIPE): for standard output, the end of the program, quietly (`bakeoff ... | head`).
    case closed
    /// Any other error, with its errno.
    case failed(Int32)
}

/// Writes all of `bytes` to `fd`: again after EINTR and after a partial write. The one write loop of the tool.
package func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> WriteResult {
    guard var base = bytes.baseAddress else { return .written }
    var remaining = bytes.count
    while remaining > 0 {
        let n = write(fd, base, remaining)
        if n < 0 {
            if errno == EINTR { continue }
            return errno == EPIPE ? .closed : .failed(errno)
        }
        base += n
        remaining -= n
    }
    return .written
}

/// Writing an output failed.
public enum OutputError: Error, CustomStringConvertible {
    /// Standard output's reader went away: the command stops and the tool exits 0, saying nothing.
    case closed
    /// Anything else (a full disk, a closed file): the tool says so and exits 1.
    case failed(name: String, reason: String)

    public var description: String {
        switch self {
        case .closed: return "standard output closed"
        case .failed(let name, let reason): return "\(name): cannot write: \(reason)"
        }
    }
}

/// Where a command's text and bytes go: standard output or error, a file, or (in tests) memory.
public protocol TextOutput: AnyObject, Sendable {
    func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError)
}

extension TextOutput {
    public func write(_ text: String) throws(OutputError) {
        var text = text
        var failure: OutputError?
        text.withUTF8 { utf8 in
            do throws(OutputError) { try write(UnsafeRawBufferPointer(utf8)) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// A file descriptor: standard output or error, or a file a command opened (`--output FILE`).
public final class FileDescriptorOutput: TextOutput {
    public let fd: Int32
    /// Named in errors: "standard output" or the file's path.
    public let name: String
    /// Whether a closed reader (EPIPE) is `OutputError.closed` (standard output) rather than a failure.
    public let closedIsQuiet: Bool

    public init(fd: Int32, name: String, closedIsQuiet: Bool = false) {
        self.fd = fd
        self.name = name
        self.closedIsQuiet = closedIsQuiet
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError) {
        switch writeAll(fd, bytes) {
        case .written: return
        case .closed where closedIsQuiet: throw .closed
        case .closed: throw .failed(name: name, reason: String(cString: strerror(EPIPE)))
        case .failed(let code): throw .failed(name: name, reason: String(cString: strerror(code)))
        }
    }
}

/// Collects what is written, for running commands in process (tests).
public final class BufferOutput: TextOutput {
    private let bytes = Mutex<[UInt8]>([])

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError) {
        self.bytes.withLock { $0.append(contentsOf: bytes) }
    }

    public var data: [UInt8] { bytes.withLock { $0 } }
    public var text: String { String(decoding: data, as: UTF8.self) }
}

/// A command's standard streams, given to it rather than reached through globals: the tool runs commands on
/// the process's streams, the tests on buffers.
public struct Console: Sendable {
    public var output: any TextOutput
    public var error: any TextOutput
    /// What "-" reads, as a path: "-" is the process's standard input, a file stands in for it in tests.
    public var input: String
    /// Whether progress bars are drawn on `error` (a terminal).
    public var errorIsTerminal: Bool

    public init(output: any TextOutput, error: any TextOutput, input: String = "-", errorIsTerminal: Bool = false) {
        self.output = output
        self.error = error
        self.input = input
        self.errorIsTerminal = errorIsTerminal
    }

    /// The process's standard output, error and input.
    public static var standard: Console {
        Console(output: FileDescriptorOutput(fd: 1, name: "standard output", closedIsQuiet: true),
                error: FileDescriptorOutput(fd: 2, name: "standard error"),
                input: "-", errorIsTerminal: isatty(2) == 1)
    }

    /// `text` and a newline on standard output.
    func print(_ text: String) throws(OutputError) {
        try output.write(text + "\n")
    }

    /// "bakeoff: " and `message` on standard error; a failure to write there is ignored (there is nowhere left to
    /// report it).
    func printError(_ message: String) {
        note("bakeoff: " + message)
    }

    /// `line` as it is on standard error (ready lines that tools read).
    func note(_ line: String) {
        try? error.write(line + "\n")
    }

    /// The path to open for a command-line path: "-" is the console's standard input.
    func inputPath(_ path: String) -> String {
        path == "-" ? input : path
    }
}

/// Gathers output in large blocks before writing it (the tool prints millions of lines for `simulate`).
final class OutputBuffer {
    private var buffer: [UInt8] = []
    private let output: any TextOutput
    private let limit = 1 << 20

    init(_ output: any TextOutput) {
        self.output = output
        buffer.reserveCapacity(limit + 4096)
    }

    func write(_ s: String) throws(OutputError) {
        var s = s
        s.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= limit { try flush() }
    }

    func writeLine(_ s: String) throws(OutputError) {
        try write(s)
        buffer.append(0x0A)
    }

    func flush() throws(OutputError) {
        defer { buffer.removeAll(keepingCapacity: true) }
        var failure: OutputError?
        buffer.withUnsafeBytes { raw in
            do throws(OutputError) { try output.write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// A progress bar on standard error, drawn only when standard error is a terminal.
final class ProgressBar: Sendable {
    private let label: String
    private let unit: String
    private let scale: Double
    private let console: Console
    /// When the bar was last drawn (reads may report progress from any thread).
    private let lastDraw = Mutex<Double>(0)
    private let start: Double

    /// `unit` names what `done` counts after dividing by `scale` ("MB" of bytes, "k events").
    init(label: String, unit: String = "MB", scale: Double = 1_048_576, console: Console) {
        self.label = label
        self.unit = unit
        self.scale = scale
        self.console = console
        start = ProgressBar.now()
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func update(done: Int64, total: Int64?) {
        guard console.errorIsTerminal else { return }
        let t = ProgressBar.now()
        let due = lastDraw.withLock { last in
            guard t - last >= 0.1 else { return false }
            last = t
            return true
        }
        guard due else { return }
        let elapsed = t - start
        let amount = Int(Double(done) / scale)
        var line = "\r\(label) "
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += "\(Int(fraction * 100))% "
            if fraction > 0.01 {
                let remaining = elapsed / fraction - elapsed
                line += "\(amount) \(unit), \(Int(remaining.rounded())) s left "
            }
        } else {
            line += "\(amount) \(unit) "
        }
        try? console.error.write(line)
    }

    func finish() {
        guard console.errorIsTerminal, lastDraw.withLock({ $0 }) > 0 else { return }
        try? console.error.write("\r\u{1B}[K")
    }
}

/// SIGTERM or SIGINT: create it before the work starts (before a ready line), `wait()` until a signal comes.
///
/// A C handler that posts a semaphore (`sem_post` is async-signal-safe), installed before `init` returns: a
/// dispatch signal source registers later, on its own thread, so a signal sent right after a ready line was
/// ignored (or killed the process) in between. The handler is a global function in this file, not a closure:
/// a C function pointer cannot capture context, and Swift 6 checks a closure's isolation, which a signal
/// handler has none of. Process-wide: only the long-running servers (`serve`,
/// `mock-upstream`) use it.
final class StopSignal {
    init() {
        _ = stopSemaphore
        for number in [SIGTERM, SIGINT] { signal(number, stopSignalHandler) }
    }

    /// Blocks until SIGTERM or SIGINT, then stops listening for them (a second one is ignored).
    func wait() {
        while sem_wait(stopSemaphore) != 0 {}  // EINTR
        for number in [SIGTERM, SIGINT] { signal(number, SIG_IGN) }
    }
}

/// Posted by `stopSignalHandler`; set up by the first `StopSignal`, before any handler is installed.
/// `nonisolated(unsafe)`: the pointer is written once (lazy global initialisation is thread-safe) and the
/// semaphore it points to is made for concurrent use (`sem_post` from a signal handler, `sem_wait` elsewhere).
nonisolated(unsafe) private let stopSemaphore: UnsafeMutablePointer<sem_t> = {
    let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    sem_init(semaphore, 0, 0)
    return semaphore
}()

private func stopSignalHandler(_ signal: Int32) {
    sem_post(stopSemaphore)
}
