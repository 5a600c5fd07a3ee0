import BakeoffCore
import Foundation
import Testing
import BakeoffReport
import BakeoffSimulation

@Suite("Reading event logs")
struct EventLogTests {
    static func write(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-\(UUID().uuidString).jsonl").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    static func simulatedLog(users: Int = 60) -> [UInt8] {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        spec.users = users
        var text = ""
        Simulator.run(spec) { text += $0.jsonLine() + "\n" }
        return Array(text.utf8)
    }

    @Test func truncatedAndCorruptedLogsNeverCrashAndKeepWhatIsValid() throws {
        let log = Self.simulatedLog()
        var rng = SplitMix(seed: 3)
        for round in 0..<40 {
            var bytes = Array(log.prefix(Int(rng.next() % UInt64(log.count))))
            for _ in 0..<(round % 8) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            let path = try Self.write(bytes)
            defer { try? FileManager.default.removeItem(atPath: path) }
            var options = EventLog.Options()
            options.skipInvalid = true
            do {
                let data = try EventLog.aggregate(path: path, options: options)
                #expect(data.requestEvents > 0)
                _ = try Analysis.run(data, plan: AnalysisPlan()).render(.table)
            } catch let error as EventLogError {
                // Only a log with nothing valid left may fail, and then with a located message.
                #expect(error.description.contains(path))
            } catch let error as AnalysisError {
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test func strictModeStopsAtTheFirstBadLineWithItsNumber() throws {
        var log = Self.simulatedLog(users: 5)
        let lines = log.split(separator: 0x0A)
        log = Array(lines[0]) + [0x0A] + Array(lines[1]) + [0x0A] + Array("{\"event\":".utf8) + [0x0A] + Array(lines[2])
        let path = try Self.write(log)
        #expect {
            _ = try EventLog.aggregate(path: path, options: EventLog.Options())
        } throws: { error in
            (error as? EventLogError).map { $0.line == 3 && $0.description.contains("\(path):3:") } ?? false
        }
    }

    @Test func piecesReportProblemsWithTheirLineAndFallBackWithoutUserIDs() throws {
        let lines = Self.simulatedLog(users: 40).split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
        var bad = lines
        let badLine = 9
        bad[badLine - 1] = #"{"event":"request","ts":"2026-11-02T10:00:00Z","experiment":"support-bot-v2","variant":"control","user_id":"u-3","conversation_id":"c-1","request_id":"r-bad","latency_ms":"fast"}"#
        let path = try Self.write(Array((bad.joined(separator: "\n") + "\n").utf8))
        var options = EventLog.Options()
        options.partitions = 3
        #expect {
            _ = try EventLog.aggregate(path: path, options: options)
        } throws: { error in
            (error as? EventLogError)?.description.contains(":\(badLine):") ?? false
        }
        options.skipInvalid = true
        let skipped = try EventLog.aggregate(path: path, options: options)
        #expect(skipped.dataQuality.linesSkipped == 1)
        #expect(skipped.dataQuality.skippedExamples.first?.hasPrefix("line \(badLine):") == true)

        // Feedback without user_id cannot be routed to a piece: the log is read in memory instead.
        let anonymous = lines.map { $0.contains("\"feedback\"") ? $0.replacingOccurrences(of: #""user_id":"#, with: #""who":"#) : $0 }
        let anonymousPath = try Self.write(Array((anonymous.joined(separator: "\n") + "\n").utf8))
        let inPieces = try EventLog.aggregate(path: anonymousPath, options: options)
        var whole = EventLog.Options()
        whole.partitions = 1
        let inMemory = try EventLog.aggregate(path: anonymousPath, options: whole)
        #expect(try Analysis.run(inPieces, plan: AnalysisPlan()).render(.json) == Analysis.run(inMemory, plan: AnalysisPlan()).render(.json))
        #expect(inPieces.feedbackEvents > 0)
    }

    @Test func aLineLongerThanTheReadBufferIsRead() throws {
        let long = String(repeating: "x", count: 9 << 20)
        let line = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5,"padding":""# + long + "\"}\n"
        let path = try Self.write(Array(line.utf8) + Array((line.replacingOccurrences(of: "\"r1\"", with: "\"r2\"")).utf8))
        let data = try EventLog.aggregate(path: path, options: EventLog.Options())
        #expect(data.requestEvents == 2)
    }

    @Test func aRecordLargerThanThePieceBufferSurvivesReadingInPieces() throws {
        let huge = String(repeating: "u", count: 3 << 20)  // a 3 MB user id: larger than a piece's write buffer
        var text = ""
        for (i, user) in ["a", huge, "b", "c"].enumerated() {
            let variant = i % 2 == 0 ? "control" : "treatment"
            text += #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":""# + variant
                + #"","user_id":""# + user + #"","request_id":"r\#(i)","latency_ms":5}"# + "\n"
        }
        let path = try Self.write(Array(text.utf8))
        var pieces = EventLog.Options()
        pieces.partitions = 2
        var whole = EventLog.Options()
        whole.partitions = 1
        let a = try EventLog.aggregate(path: path, options: pieces), b = try EventLog.aggregate(path: path, options: whole)
        #expect(a.requestEvents == 4)
        #expect(a.variants.map(\.users).reduce(0, +) == 4)
        #expect(try Analysis.run(a, plan: AnalysisPlan()).render(.json) == Analysis.run(b, plan: AnalysisPlan()).render(.json))
    }

    @Test func windowsLineEndingsAndBlankLinesAreAccepted() throws {
        let text = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5}"# + "\r\n\r\n   \n"
        let path = try Self.write(Array(text.utf8))
        let data = try EventLog.aggregate(path: path, options: EventLog.Options())
        #expect(data.requestEvents == 1)
        #expect(data.dataQuality.blankLines == 2)
    }
}

/// Library errors name what to do in the domain's words and never a command-line flag.
@Test func severalExperimentsErrorNamesTheRemedyNotAFlag() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("two-\(UUID().uuidString).jsonl").path
    let line = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5}"#
    try (line + "\n" + line.replacingOccurrences(of: "\"e\"", with: "\"f\"") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
        _ = try EventLog.aggregate(path: path, options: EventLog.Options())
        Issue.record("two experiments were accepted")
    } catch let error as EventLogError {
        #expect(error.remedy == .chooseExperiment)
        #expect(!error.description.contains("--"))
    }
}
