import BakeoffCore
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// Parses one line and returns the view's qa flag.
private func parsedQA(_ text: String) throws -> Bool {
    var parser = EventParser()
    var bytes = Array(text.utf8)
    return try bytes.withUnsafeMutableBytes { try parser.parse(UnsafeRawBufferPointer($0)).qa }
}

private func parseError(_ text: String) -> EventParseError? {
    do { _ = try parsedQA(text); return nil } catch let e as EventParseError { return e } catch { return nil }
}

@Suite("QA requests and content logging")
struct QAEventTests {
    let base = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5"#

    @Test func parserReadsTheQAFlagAndRejectsAnythingButABoolean() throws {
        #expect(try parsedQA(base + "}") == false)
        #expect(try parsedQA(base + #","qa":true}"#) == true)
        #expect(try parsedQA(base + #","qa":false}"#) == false)
        for bad in [#""yes""#, "1", "null", "{}"] {
            let e = parseError(base + #","qa":"# + bad + "}")
            #expect(e?.message.hasPrefix("\"qa\" must be true or false") == true, "\(bad): \(String(describing: e))")
            #expect(e?.column == base.utf8.count + 7, "\(bad)")
        }
    }

    @Test func contentFieldsAreSkippedByTheParser() throws {
        let line = base + #","prompt":"Hi \"there\"\n","response":{"text":["a",1]},"qa":true}"#
        #expect(try parsedQA(line) == true)
    }

    @Test func jsonLineWritesQAAndContentOnlyWhenSet() throws {
        var e = Make.request("u1", "control", "r1", at: Make.t0)
        #expect(!e.jsonLine().contains("qa"))
        #expect(!e.jsonLine().contains("prompt"))
        e.qa = true
        e.prompt = "What is \"2+2\"?\n"
        e.response = "4"
        let line = e.jsonLine()
        #expect(line.contains(#","qa":true"#))
        #expect(line.contains(#""prompt":"What is \"2+2\"?\n""#))
        #expect(line.contains(#""response":"4""#))
        #expect(try parsedQA(line) == true)
        #expect(e.withView { $0.qa })
    }

    @Test func qaEventsAreLeftOutOfTheAnalysisAndCounted() throws {
        let plain = [
            Make.request("u1", "control", "r1", at: Make.t0),
            Make.request("u2", "treatment", "r2", at: Make.t0),
            Make.feedback("task_completed", 1, request: "r2", at: Make.t0 + 1),
        ]
        var qaRequest = Make.request("admin", "treatment", "r3", at: Make.t0 + 2)
        qaRequest.qa = true
        var qaFeedback = Make.feedback("task_completed", 0, request: "r3", at: Make.t0 + 3)
        qaFeedback.qa = true
        var qaOnKnownUser = Make.request("u1", "treatment", "r4", at: Make.t0 - 1)  // would move u1 if counted
        qaOnKnownUser.qa = true
        let without = try Make.aggregate(plain)
        let with = try Make.aggregate([qaOnKnownUser] + plain + [qaRequest, qaFeedback])
        #expect(with.dataQuality.qaRequestsExcluded == 2)
        #expect(with.dataQuality.qaFeedbackExcluded == 1)
        #expect(with.requestEvents == without.requestEvents)
        #expect(with.variants == without.variants)
        #expect(with.dataQuality.feedbackWithMissingTarget == 0)
        #expect(with.dataQuality.usersInSeveralVariants == 0)
        let report = try Analysis.run(with, plan: AnalysisPlan())
        let json = report.render(.json)
        #expect(json.contains(#""qa_requests_excluded": 2"#) || json.contains(#""qa_requests_excluded":2"#), "\(json)")
        #expect(report.render(.table).contains("QA requests left out (forced into a variant): 2"))
        #expect(!(try Analysis.run(without, plan: AnalysisPlan()).render(.table).contains("QA requests")))
    }

    @Test func readingInPiecesAndInMemoryAgreeWithQAEvents() throws {
        var spec = SimulationSpec(allocation: try Allocation(split: 0.5))
        spec.users = 80
        var text = ""
        var qaCount = 0
        Simulator.run(spec) { e in
            var e = e
            if e.userID.hasSuffix("3") {  // every event of these users is a QA event
                e.qa = true
                if e.kind == .request { qaCount += 1 }
            }
            text += e.jsonLine() + "\n"
        }
        #expect(qaCount > 0)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-qa-\(UUID().uuidString).jsonl").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var pieces = EventLog.Options()
        pieces.partitions = 3
        var whole = EventLog.Options()
        whole.partitions = 1
        let a = try EventLog.aggregate(path: path, options: pieces), b = try EventLog.aggregate(path: path, options: whole)
        #expect(b.dataQuality.qaRequestsExcluded == qaCount)
        #expect(a.dataQuality.qaRequestsExcluded == qaCount)
        #expect(a.dataQuality.qaFeedbackExcluded == b.dataQuality.qaFeedbackExcluded)
        #expect(b.dataQuality.qaFeedbackExcluded > 0)
        #expect(try Analysis.run(a, plan: AnalysisPlan()).render(.json) == Analysis.run(b, plan: AnalysisPlan()).render(.json))
    }
}
