import BakeoffCore
import BakeoffTestSupport
import Testing

@Suite("Event content: messages, prompt and response on request events")
struct EventContentTests {
    static func text(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }

    static func content(_ line: String) throws -> (messages: String, prompt: String, response: String) {
        var parser = EventParser()
        var line = line
        return try line.withUTF8 { bytes in
            let view = try parser.parse(UnsafeRawBufferPointer(bytes))
            return (text(view.messages), text(view.prompt), text(view.response))
        }
    }

    static func parseError(_ line: String) -> EventParseError? {
        var parser = EventParser()
        var line = line
        return line.withUTF8 { bytes in
            do throws(EventParseError) { _ = try parser.parse(UnsafeRawBufferPointer(bytes)); return nil } catch { return error }
        }
    }

    static let base = #"{"event":"request","ts":"2026-11-01T10:00:00Z","experiment":"e","variant":"control","user_id":"u1","request_id":"r1","latency_ms":5"#

    @Test func messagesRoundTripThroughTheLine() throws {
        var e = Make.request("u1", "control", "r1", at: Make.t0)
        #expect(!e.jsonLine().contains("messages"))
        e.messages = #"[{"role":"system","content":"Be \"brief\"."},{"role":"user","content":[{"type":"text","text":"Hi"}]}]"#
        e.prompt = "Be \"brief\".\nHi"
        e.response = "Hello."
        let line = e.jsonLine()
        #expect(line.contains(#","messages":[{"role":"system""#))
        let read = try Self.content(line)
        #expect(read.messages == e.messages)
        #expect(read.prompt == e.prompt)
        #expect(read.response == "Hello.")
        let view = e.withView { (Self.text($0.messages), Self.text($0.prompt), Self.text($0.response)) }
        #expect(view == (e.messages!, e.prompt!, "Hello."))
    }

    @Test func messagesMustBeAnArrayAndAppearOnce() throws {
        #expect(try Self.content(Self.base + #","messages" : [ {"role":"user", "content":"x"} ] }"#).messages == #"[ {"role":"user", "content":"x"} ]"#)
        #expect(try Self.content(Self.base + #","messages":null}"#).messages == "")
        #expect(try Self.content(Self.base + "}").messages == "")
        for bad in [#""hi""#, "{}", "3", "true"] {
            let e = Self.parseError(Self.base + #","messages":"# + bad + "}")
            #expect(e?.message.hasPrefix("\"messages\" must be an array") == true, "\(bad): \(String(describing: e))")
            #expect(e?.column == Self.base.utf8.count + 13, "\(bad)")
        }
        #expect(Self.parseError(Self.base + #","messages":[1,}"#) != nil)
        #expect(Self.parseError(Self.base + #","messages":[],"messages":[]}"#)?.message.contains("appears twice") == true)
    }

    @Test func promptAndResponseThatAreNotStringsAreSkipped() throws {
        let read = try Self.content(Self.base + #","prompt":["a",1],"response":{"text":"b"}}"#)
        #expect(read.prompt == "" && read.response == "")
        #expect(try Self.content(Self.base + #","prompt":"caf\u00e9 \"x\""}"#).prompt == "café \"x\"")
    }
}
