import BakeoffCore
import Testing
import BakeoffReport
import BakeoffSimulation

/// Parses and returns selected fields as owned values.
func parsedFields(_ text: String) throws -> [String: String] {
    let bytes = Array(text.utf8)
    var parser = EventParser()
    var result: [String: String] = [:]
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: bytes)
    do {
        let e = try parser.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count]))
        func s(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }
        result["kind"] = e.kind == .request ? "request" : "feedback"
        result["ts"] = String(e.timestamp)
        result["experiment"] = s(e.experiment)
        result["variant"] = s(e.variant)
        result["user"] = s(e.userID)
        result["conversation"] = s(e.conversationID)
        result["request"] = s(e.requestID)
        result["latency"] = e.latencyMs.isNaN ? "nan" : String(e.latencyMs)
        result["ttft"] = e.ttftMs.isNaN ? "nan" : String(e.ttftMs)
        result["output"] = e.outputTokens.isNaN ? "nan" : String(e.outputTokens)
        result["ok"] = String(e.isOK)
        result["name"] = s(e.name)
        result["value"] = e.value.isNaN ? "nan" : String(e.value)
    }
    return result
}

@Suite("Event parser")
struct EventParserTests {
    let request = #"{"event":"request","ts":"2026-11-01T10:00:00.123Z","experiment":"support-bot-v2","variant":"treatment","user_id":"u-17","conversation_id":"c-9","request_id":"r-42","latency_ms":812.5,"ttft_ms":120.0,"input_tokens":350,"output_tokens":210,"status":"ok"}"#

    @Test func parsesTheDocumentedRequest() throws {
        let f = try parsedFields(request)
        #expect(f["kind"] == "request")
        #expect(f["ts"] == "1793527200123000")
        #expect(f["experiment"] == "support-bot-v2")
        #expect(f["variant"] == "treatment")
        #expect(f["user"] == "u-17")
        #expect(f["conversation"] == "c-9")
        #expect(f["request"] == "r-42")
        #expect(f["latency"] == "812.5")
        #expect(f["ttft"] == "120.0")
        #expect(f["output"] == "210.0")
        #expect(f["ok"] == "true")
    }

    @Test func conversationDefaultsToTheRequestAndStatusToOK() throws {
        let f = try parsedFields(#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u","request_id":"r-1","latency_ms":5}"#)
        #expect(f["conversation"] == "r-1")
        #expect(f["ok"] == "true")
        #expect(f["ttft"] == "nan")
    }

    @Test func parsesFeedbackWithBooleanAndEscapes() throws {
        let f = try parsedFields(#"{ "event" : "feedback", "ts":"2026-11-01T10:00:00+02:00", "experiment":"e", "user_id":"u\"1\u00e9\ud83d\ude00", "conversation_id":"c\n9", "name":"escalated", "value": true, "extra": {"nested": [1, {"a": null}]} }"#)
        #expect(f["kind"] == "feedback")
        #expect(f["ts"] == "1793520000000000")
        #expect(f["user"] == "u\"1é😀")
        #expect(f["conversation"] == "c\n9")
        #expect(f["value"] == "1.0")
        #expect(f["name"] == "escalated")
    }

    @Test(arguments: [
        ("1.5e3", 1500.0), ("-0.25", -0.25), ("123456789012345678", 123456789012345678.0), ("0.1", 0.1),
        ("3.14159265358979323846", 3.141592653589793), ("1E-2", 0.01), ("0", 0.0),
    ])
    func numbersAreExact(text: String, expected: Double) throws {
        let line = #"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":"# + text + "}"
        let f = try parsedFields(line)
        #expect(f["value"] == String(expected))
    }

    @Test(arguments: [
        ("", "expected a JSON object"),
        ("[]", "expected a JSON object"),
        ("{", "expected a key"),
        (#"{"event":"request""#, "not closed"),
        (#"{"event":"request",}"#, "expected a key"),
        (#"{"event":"click","ts":"2026-11-01T10:00:00Z","experiment":"e"}"#, "\"event\" must be \"request\" or \"feedback\""),
        (#"{"ts":"2026-11-01T10:00:00Z","experiment":"e"}"#, "missing \"event\""),
        (#"{"event":"request","ts":"yesterday","experiment":"e"}"#, "not an RFC 3339 time"),
        (#"{"event":"request","ts":"2026-02-30T10:00:00Z","experiment":"e"}"#, "not an RFC 3339 time"),
        (#"{"event":"request","ts":"2026-11-01T10:00:00","experiment":"e"}"#, "not an RFC 3339 time"),
        (#"{"event":"request","ts":9999999999999,"experiment":"e"}"#, "outside the years 0001 to 9999"),
        (#"{"event":"request","ts":-1e300,"experiment":"e"}"#, "outside the years 0001 to 9999"),
        (#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"c","user_id":"u","request_id":"r"}"#, "without \"latency_ms\""),
        (#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"c","user_id":"u","request_id":"r","latency_ms":"fast"}"#, "must be a number, got a string"),
        (#"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"c","user_id":"","request_id":"r","latency_ms":1}"#, "must not be empty"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","name":"csat","value":3}"#, "needs a target"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":null}"#, "must be a number or true/false"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":1} x"#, "unexpected data after"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r\q","name":"csat","value":1}"#, "invalid escape"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"\ud800","name":"csat","value":1}"#, "surrogate"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":01}"#, "leading zeros"),
        (#"{"event":"feedback","ts":"2026-11-01T10:00:00Z","experiment":"e","request_id":"r","name":"csat","value":1e999}"#, "out of range"),
    ])
    func rejectsWithAClearMessage(line: String, fragment: String) {
        do {
            _ = try parsedFields(line)
            Issue.record("accepted: \(line)")
        } catch let error as EventParseError {
            #expect(error.message.contains(fragment), "message was: \(error.message)")
            #expect(error.column >= 1)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func errorColumnPointsAtTheProblem() {
        do {
            _ = try parsedFields(#"{"event":"request" "ts":1}"#)
            Issue.record("accepted")
        } catch let error as EventParseError {
            #expect(error.column == 20)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func timestampsRoundTrip() throws {
        for text in ["1970-01-01T00:00:00.000Z", "2026-11-01T10:00:00.123Z", "2000-02-29T23:59:59.999Z", "1969-12-31T23:59:59.500Z"] {
            let f = try parsedFields(#"{"event":"feedback","ts":""# + text + #"","experiment":"e","request_id":"r","name":"n","value":1}"#)
            #expect(formatTimestamp(Int64(f["ts"]!)!) == text)
        }
    }

    @Test func fuzzedInputNeverCrashes() {
        var rng = SplitMix(seed: 42)
        let base = Array(request.utf8)
        var accepted = 0
        for i in 0..<20_000 {
            var bytes = base
            switch i % 4 {
            case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 1:
                for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 2: bytes = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            default:
                let cut = Int(rng.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: Array("\\u00".utf8) + [0x22, 0x7B, 0x5B], at: cut)
            }
            var parser = EventParser()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
            buffer.copyBytes(from: bytes)
            if (try? parser.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count]))) != nil { accepted += 1 }
            buffer.deallocate()
        }
        #expect(accepted < 20_000)
    }
}

/// A tiny deterministic generator for tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
