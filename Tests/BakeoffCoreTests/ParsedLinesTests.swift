import BakeoffCore
import Foundation
import Synchronization
import Testing

/// `ParsedLines`: lines parsed on one thread reach the caller's in order, as parsed events or, when they are
/// not a parsed event of the experiment, as their bytes; a failure on either side stops both.
@Suite("Parsing on another thread")
struct ParsedLinesTests {
    static func request(_ id: Int, experiment: String = "e") -> String {
        #"{"event":"request","ts":"2026-01-01T00:00:\#(String(format: "%02d", id % 60)).000Z","experiment":"\#(experiment)","variant":"v\#(id % 3)","user_id":"u\#(id)","conversation_id":"c\#(id)","request_id":"r\#(id)","latency_ms":\#(100 + id),"status":"ok"}"#
    }

    /// Lines as `read` gives them, with what the caller saw of each.
    static func run(_ lines: [String], depth: Int = 2) throws -> [String] {
        var seen: [String] = []
        try ParsedLines.forEach(experiment: "e", depth: depth, read: { emit in
            for (i, line) in lines.enumerated() {
                var l = line
                try l.withUTF8 { try emit(Int64(i + 1), Int64(i * 10), UnsafeRawBufferPointer($0)) }
            }
        }) { id, ts, line in
            switch line {
            case .event(let e):
                seen.append("\(id) \(ts) event \(String(decoding: e.requestID, as: UTF8.self)) \(String(decoding: e.variant, as: UTF8.self)) \(e.latencyMs) \(String(decoding: e.experiment, as: UTF8.self))")
            case .raw(let bytes):
                seen.append("\(id) \(ts) raw \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        return seen
    }

    @Test(arguments: [1, 4])
    func everyLineArrivesInOrderAcrossManyBatches(depth: Int) throws {
        // About 9 MB: several batches of a megabyte, more than `depth` of them.
        let lines = (0..<40_000).map { Self.request($0) }
        let seen = try Self.run(lines, depth: depth)
        #expect(seen.count == lines.count)
        for i in [0, 1, 4_097, 39_999] {
            #expect(seen[i] == "\(i + 1) \(i * 10) event r\(i) v\(i % 3) \(Double(100 + i)) e")
        }
    }

    @Test func linesThatAreNotTheExperimentsEventsArriveAsTheirBytes() throws {
        let lines = [Self.request(1), "", "{not json", Self.request(2, experiment: "other"), String(repeating: "x", count: 3 << 20), Self.request(3)]
        let seen = try Self.run(lines)
        #expect(seen.count == 6)
        #expect(seen[0].hasPrefix("1 0 event r1"))
        #expect(seen[1] == "2 10 raw ")
        #expect(seen[2] == "3 20 raw {not json")
        #expect(seen[3] == "4 30 raw \(lines[3])")
        // A line larger than a batch travels in a batch of its own.
        #expect(seen[4] == "5 40 raw \(lines[4])")
        #expect(seen[5].hasPrefix("6 50 event r3"))
    }

    struct Refused: Error {}

    /// With batches waiting (the reader ahead by `depth`), the caller fails: both stop, nothing crashes (a
    /// semaphore released below its initial value would), and the reader had stopped when the error came out.
    @Test(arguments: [1, 4])
    func aFailureOfTheCallerStopsTheReader(depth: Int) throws {
        let emitted = Atomic<Int>(0)
        var calls = 0
        #expect(throws: Refused.self) {
            try ParsedLines.forEach(experiment: "e", depth: depth, read: { emit in
                for i in 0..<1_000_000 {
                    var l = Self.request(i)
                    try l.withUTF8 { try emit(Int64(i), 0, UnsafeRawBufferPointer($0)) }
                    emitted.add(1, ordering: .relaxed)
                }
            }) { _, _, _ in
                calls += 1
                // Once the reader is `depth` batches ahead (about 4,400 lines a batch).
                if calls == 1 { usleep(300_000) }
                if calls == 10 { throw Refused() }
            }
        }
        // The reader stopped within the batches it had room for, and had stopped when the error was thrown.
        let at = emitted.load(ordering: .relaxed)
        #expect(at < 100_000)
        #expect(emitted.load(ordering: .relaxed) == at)
    }

    /// A handoff cancelled with every place taken is released without a crash (libdispatch traps when a semaphore
    /// goes with a value below the one it was made with).
    @Test(arguments: [1, 4])
    func aHandoffCancelledWhenFullIsReleasedCleanly(depth: Int) {
        var handoff: ParsedLines.Handoff? = ParsedLines.Handoff(depth: depth)
        for _ in 0..<depth { #expect(handoff!.send(.end)) }
        handoff!.finished()
        handoff!.cancel()
        handoff = nil
    }

    @Test func aFailureOfTheReaderIsThrownAfterTheLinesBeforeIt() throws {
        var seen = 0
        #expect(throws: Refused.self) {
            try ParsedLines.forEach(experiment: "e", read: { emit in
                for i in 0..<5 {
                    var l = Self.request(i)
                    try l.withUTF8 { try emit(Int64(i), 0, UnsafeRawBufferPointer($0)) }
                }
                throw Refused()
            }) { _, _, _ in seen += 1 }
        }
        #expect(seen == 5)
    }
}
