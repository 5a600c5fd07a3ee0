import BakeoffCore
import BakeoffReport
import BakeoffSimulation
import BakeoffHTTP
import BakeoffDevTools

let assignSpec = CommandSpec(
    "assign",
    summary: "Deterministic assignment of user IDs (stdin) to variants",
    usage: ["--experiment NAME --split S < ids.txt", "--experiment NAME --variants a=0.5,b=0.3,c=0.2 < ids.txt"],
    about: """
    Reads user IDs, one per line, from stdin and writes each one's variant, one per line, in order.

    Same result as the ABRouter of the article Bakeoff grew from: md5("{experiment}:{user_id}") as an integer, % 10000 / 10000, treatment when below the split. With --variants, consecutive ranges in the order given.
    """,
    options: [
        .single("--experiment", "NAME", "The experiment, part of each hashed key"),
        .single("--split", "S", "Treatment's share: IDs below it get \"treatment\", the others \"control\""),
        .single("--variants", "a=0.5,b=0.3,c=0.2", "Several variants and their shares, which sum to 1"),
    ]
)

@Sendable func runAssign(_ args: ParsedArguments, _ console: Console) throws -> ExitCode {
    guard let experiment = args.string("--experiment") else { throw UsageError("--experiment is required") }
    guard let allocation = try allocationOption(args) else { throw UsageError("give --split S or --variants a=0.5,b=0.5") }
    let assigner = Assigner(experiment: experiment, allocation: allocation)
    var reader = try LineReader(path: console.input)
    // Output goes through one raw buffer; each arm's "name\n" is copied from a table. No arrays or
    // captured-and-boxed state on the per-ID path.
    let capacity = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity + 4096, alignment: 16)
    defer { buffer.deallocate() }
    var lines: [[UInt8]] = allocation.names.map { Array(($0 + "\n").utf8) }
    let longest = lines.map(\.count).max() ?? 1
    guard longest < 4096 else { throw UsageError("variant names must be shorter than 4 KB") }
    let table = UnsafeMutableRawPointer.allocate(byteCount: lines.count * 4096, alignment: 16)
    defer { table.deallocate() }
    var lengths: [Int] = []
    for (i, line) in lines.enumerated() {
        line.withUnsafeBytes { (table + i * 4096).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        lengths.append(line.count)
    }
    lines = []
    let output = console.output
    var used = 0
    var batch = Assigner.Batch(assigner)
    do {
        try lengths.withUnsafeBufferPointer { lengths throws(ReadError<OutputError>) in
            try reader.forEachLine { (line, _) throws(OutputError) in
                batch.add(utf8: line) { (_, _, arm) throws(Never) in
                    (buffer + used).copyMemory(from: table + arm * 4096, byteCount: lengths[arm])
                    used += lengths[arm]
                }
                if used >= capacity {
                    try output.write(UnsafeRawBufferPointer(start: buffer, count: used))
                    used = 0
                }
            }
            batch.flush { (_, _, arm) throws(Never) in
                (buffer + used).copyMemory(from: table + arm * 4096, byteCount: lengths[arm])
                used += lengths[arm]
            }
        }
    } catch {
        switch error {
        case .file(let e): throw e
        case .body(let e): throw e
        }
    }
    try output.write(UnsafeRawBufferPointer(start: buffer, count: used))
    return .ok
}
