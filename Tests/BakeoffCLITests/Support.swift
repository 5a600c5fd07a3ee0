#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import BakeoffCLI
import Foundation
import Testing

/// Runs `bakeoff` commands: in process (fast, always the code under test) or, for what only a process shows
/// (exit status, signals, a closed pipe), as the built binary.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `bakeoff ARGUMENTS` in this process, its output and error collected; `stdin` is what "-" and `assign` read.
    static func run(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let output = BufferOutput(), error = BufferOutput()
        let input = try temporaryFile(stdin ?? "", name: "stdin.txt")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: input).deletingLastPathComponent().path) }
        let status = BakeoffCLI.main(arguments: arguments, console: Console(output: output, error: error, input: input))
        return Result(status: status, stdout: output.text, stderr: error.text)
    }

    /// The `bakeoff` binary: BAKEOFF_BIN, else the one built beside this test bundle (the same build).
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["BAKEOFF_BIN"] { return path }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().appendingPathComponent("bakeoff").path
    }()

    /// `bakeoff ARGUMENTS` as a process of the built binary.
    static func spawn(_ arguments: [String], stdin: String? = nil) throws -> Result {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no bakeoff binary at \(binary): build it or set BAKEOFF_BIN")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let inputPath = try temporaryFile(stdin ?? "", name: "stdin.txt")
        let errorPath = inputPath + ".stderr"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errorPath)!
        process.standardInput = FileHandle(forReadingAtPath: inputPath)!
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = FileManager.default.contents(atPath: errorPath) ?? Data()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    static func temporaryFile(_ contents: String, name: String = "events.jsonl") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
