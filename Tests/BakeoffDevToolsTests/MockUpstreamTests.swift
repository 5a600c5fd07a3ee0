
import Dispatch
import Foundation
import Synchronization
import Testing
import BakeoffTestSupport
import BakeoffCore
import BakeoffHTTP
import BakeoffGateway
import BakeoffDevTools

@Suite("Mock upstream")
struct MockUpstreamTests {
    static func mock(_ configure: (inout MockUpstream.Options) -> Void = { _ in }) throws -> MockUpstream {
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.jitterMs = 0
        options.tokensPerSecond = 0
        options.outputTokens = 8
        configure(&options)
        let mock = MockUpstream(options: options)
        try mock.start()
        return mock
    }

    static func call(_ mock: MockUpstream, _ path: String, _ body: String, headers: [String] = ["Content-Type: application/json"]) -> (status: Int, type: String?, body: String, pieces: Int, outcome: UpstreamOutcome?) {
        let client = UpstreamClient()
        defer { client.shutdown() }
        let recorder = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(mock.port)\(path)", headers: headers, body: Array(body.utf8), timeoutMs: 10_000, connectTimeoutMs: 2000), handlers: recorder.handlers)
        return recorder.wait()
    }

    static func object(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    /// The `data:` payloads of an event stream, in order.
    static func events(_ text: String) -> [String] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
            #expect(event.hasPrefix("data: "), "every event is a data line: \(event)")
            return String(event.dropFirst(6))
        }
    }

    @Test func chatCompletion() throws {
        let mock = try Self.mock { $0.replyPrefix = "[v2] " }
        defer { mock.stop() }
        let r = Self.call(mock, "/v1/chat/completions", #"{"model":"support-bot-v2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Where is my order? It is late."}]}"#)
        #expect(r.status == 200)
        #expect(r.type == "application/json")
        let json = try #require(Self.object(r.body))
        #expect((json["id"] as? String)?.hasPrefix("chatcmpl-") == true)
        #expect(json["object"] as? String == "chat.completion")
        #expect(json["created"] as? Int != nil)
        #expect(json["model"] as? String == "support-bot-v2")
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        #expect(choice["index"] as? Int == 0)
        #expect(choice["finish_reason"] as? String == "stop")
        let message = try #require(choice["message"] as? [String: Any])
        #expect(message["role"] as? String == "assistant")
        let content = try #require(message["content"] as? String)
        #expect(content.hasPrefix("[v2] "))
        let usage = try #require(json["usage"] as? [String: Int])
        #expect(usage["prompt_tokens"] == "Be brief.\nWhere is my order? It is late.".utf8.count / 4, "the messages' text, joined by newlines, / 4")
        #expect(usage["completion_tokens"] == 8)
        #expect(usage["total_tokens"] == usage["prompt_tokens"]! + 8)

        // Deterministic: the same seed gives the same reply.
        let again = try #require(Self.object(Self.call(mock, "/v1/chat/completions", #"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).body))
        let againContent = ((again["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        #expect(againContent == content)
        #expect((again["usage"] as? [String: Int])?["prompt_tokens"] == 1, "at least one prompt token")
    }

    @Test func legacyCompletionAndMaxTokens() throws {
        let mock = try Self.mock()
        defer { mock.stop() }
        let r = Self.call(mock, "/v1/completions", #"{"model":"m1","prompt":"Say something nice about the weather","max_tokens":3}"#)
        #expect(r.status == 200)
        let json = try #require(Self.object(r.body))
        #expect(json["object"] as? String == "text_completion")
        #expect(json["model"] as? String == "m1")
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        let text = try #require(choice["text"] as? String)
        #expect(text.split(separator: " ").count == 3)
        #expect(choice["finish_reason"] as? String == "length")
        let usage = try #require(json["usage"] as? [String: Int])
        #expect(usage["completion_tokens"] == 3)
        #expect(usage["prompt_tokens"] == "Say something nice about the weather".utf8.count / 4)
    }

    @Test func chatStream() throws {
        let mock = try Self.mock { $0.tokensPerSecond = 2000 }
        defer { mock.stop() }
        for includeUsage in [false, true] {
            let body = includeUsage
                ? #"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there, how are you"}]}"#
                : #"{"model":"m","stream":true,"messages":[{"role":"user","content":"hello there, how are you"}]}"#
            let r = Self.call(mock, "/v1/chat/completions", body)
            #expect(r.status == 200)
            #expect(r.type == "text/event-stream")
            #expect(r.outcome == .completed(status: 200))
            let events = Self.events(r.body)
            #expect(events.last == "[DONE]")
            let chunks = try events.dropLast().map { try #require(Self.object($0)) }
            #expect(chunks.count == 1 + 8 + 1 + (includeUsage ? 1 : 0))
            for chunk in chunks {
                #expect(chunk["object"] as? String == "chat.completion.chunk")
                #expect(chunk["model"] as? String == "m")
                #expect(chunk.keys.contains("usage") == includeUsage, "usage key only with include_usage")
            }
            func delta(_ i: Int) -> [String: Any]? { ((chunks[i]["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any] }
            #expect(delta(0)?["role"] as? String == "assistant")
            #expect(delta(0)?["content"] as? String == "")
            var text = ""
            for i in 1...8 {
                let content = try #require(delta(i)?["content"] as? String)
                #expect(delta(i)?["role"] == nil)
                text += content
            }
            #expect(!text.isEmpty)
            let finish = try #require((chunks[9]["choices"] as? [[String: Any]])?.first)
            #expect(finish["finish_reason"] as? String == "stop")
            #expect((finish["delta"] as? [String: Any])?.isEmpty == true)
            if includeUsage {
                #expect((chunks[10]["choices"] as? [Any])?.isEmpty == true)
                let usage = try #require(chunks[10]["usage"] as? [String: Int])
                #expect(usage["completion_tokens"] == 8)
                #expect(usage["prompt_tokens"] == 6)
                #expect(usage["total_tokens"] == 14)
                #expect(chunks[1]["usage"] is NSNull)
            }
        }
    }

    @Test func legacyCompletionStream() throws {
        let mock = try Self.mock()
        defer { mock.stop() }
        let r = Self.call(mock, "/v1/completions", #"{"model":"m","prompt":"hi","stream":true}"#)
        let events = Self.events(r.body)
        #expect(events.last == "[DONE]")
        let chunks = events.dropLast().compactMap(Self.object)
        #expect(chunks.count == 9)
        #expect(chunks.allSatisfy { $0["object"] as? String == "text_completion" })
        #expect(((chunks.last?["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String == "stop")
    }

    @Test func errorRateGivesOpenAIErrors() throws {
        let mock = try Self.mock { $0.errorRate = 1 }
        defer { mock.stop() }
        var statuses: Set<Int> = []
        for _ in 0..<4 {
            let r = Self.call(mock, "/v1/chat/completions", #"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
            statuses.insert(r.status)
            let error = try #require(Self.object(r.body)?["error"] as? [String: Any])
            #expect(error["message"] is String)
            #expect(error["type"] is String)
            #expect(error.keys.contains("param") && error.keys.contains("code"))
            if r.status == 500 { #expect(error["type"] as? String == "server_error") }
        }
        #expect(statuses == [500, 429])
    }

    @Test func failMidStreamBreaksTheResponse() throws {
        let mock = try Self.mock { $0.failMidStreamRate = 1; $0.tokensPerSecond = 1000 }
        defer { mock.stop() }
        let r = Self.call(mock, "/v1/chat/completions", #"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#)
        #expect(r.status == 200)
        guard case .failed(.brokenResponse, _)? = r.outcome else {
            Issue.record("expected a broken response, got \(String(describing: r.outcome))")
            return
        }
        #expect(r.body.hasPrefix("data: "))
        #expect(!r.body.contains("[DONE]"))

        // All at once (no pacing) fails the same way.
        let fast = try Self.mock { $0.failMidStreamRate = 1 }
        defer { fast.stop() }
        let r2 = Self.call(fast, "/v1/chat/completions", #"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        guard case .failed(.brokenResponse, _)? = r2.outcome else {
            Issue.record("expected a broken response, got \(String(describing: r2.outcome))")
            return
        }
    }

    @Test func pacedStreamArrivesInPieces() throws {
        let mock = try Self.mock { $0.tokensPerSecond = 200; $0.latencyMs = 20; $0.jitterMs = 10 }
        defer { mock.stop() }
        let r = Self.call(mock, "/v1/chat/completions", #"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(r.outcome == .completed(status: 200))
        #expect(r.pieces >= 3, "tokens are written as they are paced")
        #expect(Self.events(r.body).count == 1 + 8 + 1 + 1)
    }

    @Test func modelsNotFoundAndInvalidJSON() throws {
        let mock = try Self.mock()
        defer { mock.stop() }

        let bad = Self.call(mock, "/v1/chat/completions", #"{"model":"m","messages":[}"#)
        #expect(bad.status == 400)
        #expect((Self.object(bad.body)?["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")

        let missing = Self.call(mock, "/v1/chat/completions", #"{"model":"m"}"#)
        #expect(missing.status == 400)

        let unknown = Self.call(mock, "/v2/whatever", "{}")
        #expect(unknown.status == 404)
        #expect(Self.object(unknown.body)?["error"] != nil)

        let models = try Self.get("http://127.0.0.1:\(mock.port)/v1/models")
        let list = try #require(Self.object(models))
        #expect(list["object"] as? String == "list")
        #expect(((list["data"] as? [[String: Any]])?.first)?["id"] as? String == "mock")
    }

    @Test func recordsRequests() throws {
        let mock = try Self.mock { $0.recordLimit = 3 }
        defer { mock.stop() }
        for i in 0..<5 {
            _ = Self.call(mock, "/v1/chat/completions", #"{"model":"m","messages":[{"role":"user","content":"n\#(i)"}]}"#,
                          headers: ["Content-Type: application/json", "Authorization: Bearer sk-secret", "X-Bakeoff-Variant: v\(i)"])
        }
        let recent = mock.recentRequests
        #expect(recent.count == 3)
        #expect(recent.map { $0.header("x-bakeoff-variant") } == ["v2", "v3", "v4"])
        #expect(recent.last?.bodyText.contains("\"n4\"") == true)
        #expect(recent.last?.path == "/v1/chat/completions")
        #expect(recent.last?.method == "POST")
        #expect(recent.last?.header("Authorization") == "Bearer sk-secret")
        #expect(mock.requestsReceived == 5)

        let lines = try Self.get("http://127.0.0.1:\(mock.port)/mock/requests").split(separator: "\n")
        #expect(lines.count == 3)
        let last = try #require(Self.object(String(lines[2])))
        let headers = try #require(last["headers"] as? [String: String])
        #expect(headers["authorization"] == "<present>")
        #expect(headers["x-bakeoff-variant"] == "v4")
        #expect((last["body"] as? String)?.contains("n4") == true)
        #expect(!lines.joined().contains("sk-secret"), "secrets are never echoed")

        mock.clearRecentRequests()
        #expect(mock.recentRequests.isEmpty)
    }

    /// A GET with a plain socket (upstream calls always POST).
    static func get(_ url: String) throws -> String {
        let components = try #require(URLComponents(string: url))
        let port = try #require(components.port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        let request = "GET \(components.path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return "" }
        let head = text[..<split.lowerBound]
        var body = String(text[split.upperBound...])
        if head.lowercased().contains("transfer-encoding: chunked") {
            // Undo chunked encoding.
            var out = ""
            var rest = Substring(body)
            while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
                let start = lineEnd.upperBound
                let bytes = Array(rest[start...].utf8)
                out += String(decoding: bytes[0..<min(size, bytes.count)], as: UTF8.self)
                rest = Substring(String(decoding: bytes[min(size + 2, bytes.count)...], as: UTF8.self))
            }
            body = out
        }
        return body
    }
}
