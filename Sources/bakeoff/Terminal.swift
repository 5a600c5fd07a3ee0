#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import Foundation
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

/// Writes to standard output in large blocks (the tool prints millions of lines for `assign` and `simulate`).
final class OutputBuffer {
    private var buffer: [UInt8] = []
    private let fd: Int32
    private let limit = 1 << 20

    init(fd: Int32 = 1) {
        self.fd = fd
        buffer.reserveCapacity(limit + 4096)
    }

    func write(_ s: String) {
        var s = s
        s.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= limit { flush() }
    }

    func writeLine(_ s: String) {
        write(s)
        buffer.append(0x0A)
    }

    func flush() {
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE { exit(0) }
                    fputs("bakeoff: cannot write output: \(String(cString: strerror(errno)))\n", stderr)
                    exit(1)
                }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    deinit { flush() }
}

func printError(_ message: String) {
    FileHandle.standardError.write(("bakeoff: " + message + "\n").data(using: .utf8)!)
}

/// A progress bar on standard error, drawn only when standard error is a terminal.
final class ProgressBar {
    private let label: String
    private let unit: String
    private let scale: Double
    private let enabled: Bool
    private var lastDraw: Double = 0
    private let start: Double

    /// `unit` names what `done` counts after dividing by `scale` ("MB" of bytes, "k events").
    init(label: String, unit: String = "MB", scale: Double = 1_048_576) {
        self.label = label
        self.unit = unit
        self.scale = scale
        enabled = isatty(2) == 1
        start = ProgressBar.now()
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func update(done: Int64, total: Int64?) {
        guard enabled else { return }
        let t = ProgressBar.now()
        guard t - lastDraw >= 0.1 else { return }
        lastDraw = t
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
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }

    func finish() {
        guard enabled, lastDraw > 0 else { return }
        FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!)
    }
}

/// SIGTERM or SIGINT: create it before the work starts (before a ready line), `wait()` until a signal comes.
///
/// A C handler that posts a semaphore (`sem_post` is async-signal-safe), installed before `init` returns: a
/// dispatch signal source registers later, on its own thread, so a signal sent right after a ready line was
/// ignored (or killed the process) in between. The handler is a global function in this file, not a closure in
/// `main.swift` (see the notes on Swift 6 and C callbacks).
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
nonisolated(unsafe) private let stopSemaphore: UnsafeMutablePointer<sem_t> = {
    let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    sem_init(semaphore, 0, 0)
    return semaphore
}()

private func stopSignalHandler(_ signal: Int32) {
    sem_post(stopSemaphore)
}
