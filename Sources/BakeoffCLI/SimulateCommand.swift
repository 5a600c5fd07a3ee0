#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools
import Foundation
import Synchronization

let simulateSpec = CommandSpec(
    "simulate",
    summary: "Generate an event log with known truth (presets or a spec)",
    usage: ["(--preset seed-case-study|aa | --spec FILE) [options]"],
    about: "Writes a simulated event log (JSON Lines) with known truth.",
    options: [
        .single("--preset", "NAME", "seed-case-study (the article's case study: 80/20, 14 days) or aa (no difference)"),
        .single("--spec", "FILE", "A JSON spec (see README); a \"preset\" key inside starts from a preset"),
        .single("--users", "N", "Number of users"),
        .single("--days", "N", "Duration in days"),
        .seed("Random seed"),
        .single("--experiment", "NAME", "Experiment name"),
        .single("--output", "FILE", "Write to FILE instead of stdout"),
    ]
)

@Sendable func runSimulate(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    let preset = args.string("--preset")
    let specPath = args.string("--spec")
    var spec: SimulationSpec
    switch (preset, specPath) {
    case (let p?, nil):
        do { spec = try SimulationSpec.preset(p) } catch { throw UsageError("--preset: unknown preset \"\(p)\" (known: seed-case-study, aa)") }
    case (nil, let path?):
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(path: path, message: "cannot be read") }
        spec = try SimulationSpec.parse(data, source: path)
    case (nil, nil): throw UsageError("give --preset seed-case-study|aa or --spec FILE")
    default: throw UsageError("give either --preset or --spec, not both")
    }
    if let users = try args.int("--users") {
        guard users > 0 else { throw UsageError("--users must be positive") }
        spec.users = users
    }
    if let days = try args.int("--days") {
        guard days > 0 else { throw UsageError("--days must be positive") }
        spec.days = days
    }
    if let seed = args.seed("--seed") { spec.seed = seed }
    if let e = args.string("--experiment") { spec.experiment = e }
    let file = try args.string("--output").map(OutputFile.init(creating:))
    defer { file?.close() }
    let out = OutputBuffer(file ?? console.output)
    let bar = ProgressBar(label: "simulating", unit: "k events", scale: 1000, console: console)
    var count: Int64 = 0
    let expected = Int64(Double(spec.users) * spec.conversationsPerUser * 5)
    try Simulator.run(spec) { e in
        try out.writeLine(e.jsonLine())
        count += 1
        if count & 0xFFFF == 0 { bar.update(done: count, total: max(expected, count)) }
    }
    try out.flush()
    bar.finish()
    try file?.finish()
    return .ok
}

/// A file a command writes (`--output FILE`), created or emptied.
final class OutputFile: TextOutput, Sendable {
    let path: String
    private let descriptor: FileDescriptorOutput
    private let closed = Atomic<Bool>(false)

    init(creating path: String) throws(FileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw FileError(path: path, message: String(cString: strerror(errno))) }
        self.path = path
        descriptor = FileDescriptorOutput(fd: fd, name: path)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(OutputError) {
        try descriptor.write(bytes)
    }

    /// Closes the file, reporting an error a delayed write may show only now.
    func finish() throws(FileError) {
        guard markClosed() else { return }
        if Glibc.close(descriptor.fd) != 0 { throw FileError(path: path, message: String(cString: strerror(errno))) }
    }

    /// Closes the file if `finish` did not (after an error).
    func close() {
        if markClosed() { _ = Glibc.close(descriptor.fd) }
    }

    /// True for the one caller that closes it.
    private func markClosed() -> Bool {
        !closed.exchange(true, ordering: .acquiringAndReleasing)
    }
}
