#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import BakeoffCLI
import Foundation
import Testing

/// What only the built binary shows: exit statuses, a reader that goes away, a terminal or not.
@Suite("bakeoff as a process", .serialized)
struct ProcessTests {
    @Test func exitStatusesAreZeroOneAndTwo() throws {
        let version = try CLI.spawn(["--version"])
        #expect(version.status == 0 && version.stdout == "bakeoff \(BakeoffCLI.version)\n")
        let none = try CLI.spawn([])
        #expect(none.status == 2 && none.stdout.contains("COMMANDS:"))
        let missing = try CLI.spawn(["analyze", "/nonexistent/events.jsonl"])
        #expect(missing.status == 1 && missing.stderr.hasPrefix("bakeoff: /nonexistent/events.jsonl"), "\(missing.stderr)")
        let usage = try CLI.spawn(["analyze", "x.jsonl", "--frobnicate"])
        #expect(usage.status == 2)
        #expect(usage.stderr == """
            bakeoff: unknown option --frobnicate for 'bakeoff analyze'
            bakeoff: USAGE: bakeoff analyze EVENTS.jsonl [options]
            bakeoff: see 'bakeoff analyze --help'

            """)
        let typo = try CLI.spawn(["anlyze"])
        #expect(typo.status == 2 && typo.stderr.contains("did you mean \"analyze\"?"))
    }

    @Test func theBinaryAndTheLibraryPrintTheSameHelp() throws {
        for name in BakeoffCLI.commands.map(\.spec.name) {
            #expect(try CLI.spawn([name, "--help"]).stdout == CLI.run([name, "--help"]).stdout)
        }
    }

    @Test func simulateWritesNoProgressBarWhenStderrIsNotATerminal() throws {
        let r = try CLI.spawn(["simulate", "--preset", "aa", "--users", "50"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count > 50)
    }

    /// `bakeoff simulate | head -1`: the reader goes away; the tool stops at once, says nothing and exits 0.
    @Test(arguments: [["simulate", "--preset", "seed-case-study"], ["assign", "--experiment", "e", "--split", "0.5"]])
    func aClosedPipeEndsTheCommandQuietly(_ arguments: [String]) throws {
        let input = try CLI.temporaryFile((0..<400_000).map { "user-\($0)" }.joined(separator: "\n"), name: "ids.txt")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle(forReadingAtPath: input)!
        try process.run()
        let first = out.fileHandleForReading.readData(ofLength: 100)
        #expect(!first.isEmpty)
        try out.fileHandleForReading.close()
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit, "killed by a signal")
        #expect(process.terminationStatus == 0)
        #expect(stderr.isEmpty, "\(stderr)")
    }

    @Test func writeAllReportsAClosedReaderAndOtherFailures() throws {
        signal(SIGPIPE, SIG_IGN)  // as the tool does; a closed pipe must be EPIPE here, not a signal
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[1]) }
        close(fds[0])
        let bytes: [UInt8] = Array("hello\n".utf8)
        #expect(bytes.withUnsafeBytes { writeAll(fds[1], $0) } == .closed)
        #expect(bytes.withUnsafeBytes { writeAll(-1, $0) } == .failed(EBADF))
        // A failure on standard output is quiet; on a file, an error that names it.
        #expect(throws: OutputError.self) { try FileDescriptorOutput(fd: fds[1], name: "out", closedIsQuiet: true).write("x") }
        do {
            try FileDescriptorOutput(fd: fds[1], name: "out.jsonl").write("x")
            Issue.record("written")
        } catch {
            #expect(error.description.hasPrefix("out.jsonl: cannot write: "))
        }
    }

    @Test func writeAllWritesEverythingThroughPartialWrites() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let size = 4 << 20  // far more than a pipe holds: the writes come back partial
        final class Count: @unchecked Sendable { var bytes = 0 }  // written before `done` is signalled, read after
        let received = Count()
        let done = DispatchSemaphore(value: 0)
        let readEnd = fds[0]
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            var total = 0
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                total += n
            }
            received.bytes = total
            done.signal()
        }
        let bytes = [UInt8](repeating: 0x61, count: size)
        #expect(bytes.withUnsafeBytes { writeAll(fds[1], $0) } == .written)
        close(fds[1])
        done.wait()
        close(fds[0])
        #expect(received.bytes == size)
    }
}
