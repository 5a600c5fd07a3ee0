import Testing
import BakeoffGateway
import BakeoffHTTP

// MARK: SSE

private struct Event: Equatable, CustomStringConvertible {
    var raw: String
    var data: String?
    var description: String { "\(raw.debugDescription) → \(data?.debugDescription ?? "nil")" }
}

/// Feeds `pieces` one after the other; returns the events, what `finish` handed over, and what is left.
private func run(_ pieces: [[UInt8]]) -> (events: [Event], pending: [UInt8]) {
    var parser = SSEParser()
    var events: [Event] = []
    let collect = { (raw: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer?) in
        events.append(Event(raw: String(decoding: raw, as: UTF8.self), data: data.map { String(decoding: $0, as: UTF8.self) }))
    }
    for piece in pieces {
        piece.withUnsafeBytes { parser.feed($0, collect) }
    }
    let pending = parser.finish(collect)
    return (events, pending)
}

private let stream = Array((
    ": ping\n\n"
    + "data: {\"a\":1}\n\n"
    + "event: message\nid: 7\ndata: first\ndata:second\ndata:  third\n\n"
    + "data:nospace\r\n\r\n"
    + "id: 1\r\n\r\n"
    + "data\n\n"
    + "data: cr\r\r"
    + "data: é😀\r\n: comment\r\n\r\n"
    + "retry: 10\n\n"
    + "data: [DONE]\n\n"
    + "data: unfinished\n"
).utf8)

private let expected: [Event] = [
    Event(raw: ": ping\n\n", data: nil),
    Event(raw: "data: {\"a\":1}\n\n", data: "{\"a\":1}"),
    Event(raw: "event: message\nid: 7\ndata: first\ndata:second\ndata:  third\n\n", data: "first\nsecond\n third"),
    Event(raw: "data:nospace\r\n\r\n", data: "nospace"),
    Event(raw: "id: 1\r\n\r\n", data: nil),
    Event(raw: "data\n\n", data: ""),
    Event(raw: "data: cr\r\r", data: "cr"),
    Event(raw: "data: é😀\r\n: comment\r\n\r\n", data: "é😀"),
    Event(raw: "retry: 10\n\n", data: nil),
    Event(raw: "data: [DONE]\n\n", data: "[DONE]"),
]

@Test func sseEventsInOneChunk() {
    let (events, pending) = run([stream])
    #expect(events == expected)
    #expect(String(decoding: pending, as: UTF8.self) == "data: unfinished\n")
}

@Test func sseSplitAtEveryBoundaryGivesTheSameEvents() {
    for i in 0...stream.count {
        let (events, pending) = run([Array(stream[..<i]), Array(stream[i...])])
        #expect(events == expected, "split at \(i)")
        #expect(pending == Array("data: unfinished\n".utf8))
    }
    // Two cuts, every pair (every third byte for the second cut to keep it quick).
    for i in stride(from: 0, through: stream.count, by: 1) {
        for j in stride(from: i, through: stream.count, by: 3) {
            let (events, _) = run([Array(stream[..<i]), Array(stream[i..<j]), Array(stream[j...])])
            #expect(events == expected, "split at \(i) and \(j)")
        }
    }
    // Byte by byte.
    let (events, pending) = run(stream.map { [$0] })
    #expect(events == expected)
    #expect(pending == Array("data: unfinished\n".utf8))
}

@Test func sseRawBytesAreExactlyTheInput() {
    let (events, pending) = run(stream.map { [$0] })
    #expect(Array(events.map(\.raw).joined().utf8) + pending == stream)
}

@Test func sseBlankCRAtTheEndOfAChunkWaits() {
    var parser = SSEParser()
    var events: [Event] = []
    let collect = { (raw: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer?) in
        events.append(Event(raw: String(decoding: raw, as: UTF8.self), data: data.map { String(decoding: $0, as: UTF8.self) }))
    }
    Array("data: a\r\n\r".utf8).withUnsafeBytes { parser.feed($0, collect) }
    #expect(events.isEmpty)
    #expect(parser.pending == Array("data: a\r\n\r".utf8))
    Array("\ndata: b\r\r".utf8).withUnsafeBytes { parser.feed($0, collect) }
    #expect(events == [Event(raw: "data: a\r\n\r\n", data: "a")])
    Array("data: c\n\n".utf8).withUnsafeBytes { parser.feed($0, collect) }
    #expect(events.count == 3)
    #expect(events[1] == Event(raw: "data: b\r\r", data: "b"))
    #expect(events[2] == Event(raw: "data: c\n\n", data: "c"))
    #expect(parser.pending.isEmpty)

    // At the end of the stream, finish hands the waiting event over.
    events = []
    Array("data: z\r\r".utf8).withUnsafeBytes { parser.feed($0, collect) }
    #expect(events.isEmpty)
    #expect(parser.finish(collect).isEmpty)
    #expect(events == [Event(raw: "data: z\r\r", data: "z")])
}

@Test func sseEmptyFeedsAndPending() {
    var parser = SSEParser()
    var count = 0
    [UInt8]().withUnsafeBytes { parser.feed($0) { _, _ in count += 1 } }
    Array("data: {\"choices\":[".utf8).withUnsafeBytes { parser.feed($0) { _, _ in count += 1 } }
    #expect(count == 0)
    #expect(parser.pending == Array("data: {\"choices\":[".utf8))
    #expect(parser.finish { _, _ in count += 1 } == Array("data: {\"choices\":[".utf8))
    #expect(count == 0)
    #expect(parser.pending.isEmpty)
}

// MARK: Chunks

private func chunk(_ s: String, _ endpoint: Endpoint = .chatCompletions) -> ChunkInfo {
    Array(s.utf8).withUnsafeBytes { ChunkInfo.inspect($0, endpoint: endpoint) }
}

struct ChunkCase: CustomTestStringConvertible, Sendable {
    var name: String
    var payload: String
    var endpoint: Endpoint = .chatCompletions
    var info: ChunkInfo
    var testDescription: String { name }
}

@Test(arguments: [
    ChunkCase(name: "OpenAI role-only first chunk",
              payload: #"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
              info: ChunkInfo()),
    ChunkCase(name: "OpenAI content chunk",
              payload: #"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
              info: ChunkInfo(hasContent: true, text: "Hello")),
    ChunkCase(name: "OpenAI finish chunk",
              payload: #"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
              info: { var i = ChunkInfo(); i.finishes = true; return i }()),
    ChunkCase(name: "OpenAI usage-only final chunk",
              payload: #"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
              info: ChunkInfo(usage: TokenUsage(input: 9, output: 12), isUsageOnly: true)),
    ChunkCase(name: "vLLM content chunk",
              payload: #"{"id":"chat-5d3b","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Meta-Llama-3-8B-Instruct","choices":[{"index":0,"delta":{"content":" caf\u00e9 \"x\"\n"},"logprobs":null,"finish_reason":null}]}"#,
              info: ChunkInfo(hasContent: true, text: " café \"x\"\n")),
    ChunkCase(name: "vLLM continuous usage stats",
              payload: #"{"id":"chat-5d3b","object":"chat.completion.chunk","created":1718000000,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":17,"total_tokens":18,"completion_tokens":1}}"#,
              info: ChunkInfo(hasContent: true, usage: TokenUsage(input: 17, output: 1), text: "Hi")),
    ChunkCase(name: "vLLM reasoning",
              payload: #"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"reasoning_content":"Let me think"},"finish_reason":null}]}"#,
              info: ChunkInfo(hasContent: true)),
    ChunkCase(name: "tool call",
              payload: #"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
              info: ChunkInfo(hasContent: true)),
    ChunkCase(name: "empty tool calls",
              payload: #"{"choices":[{"index":0,"delta":{"tool_calls":[ ]}}]}"#,
              info: ChunkInfo()),
    ChunkCase(name: "two choices",
              payload: #"{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
              info: ChunkInfo(hasContent: true, text: "ab")),
    ChunkCase(name: "Ollama",
              payload: #"{"id":"chatcmpl-360","object":"chat.completion.chunk","created":1720000000,"model":"llama3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"The"},"finish_reason":null}]}"#,
              info: ChunkInfo(hasContent: true, text: "The")),
    ChunkCase(name: "completions text", payload: #"{"id":"cmpl-7","object":"text_completion","created":1,"choices":[{"text":" upon","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}"#,
              endpoint: .completions, info: ChunkInfo(hasContent: true, text: " upon")),
    ChunkCase(name: "completions empty text", payload: #"{"choices":[{"text":"","index":0,"finish_reason":"stop"}]}"#,
              endpoint: .completions, info: { var i = ChunkInfo(); i.finishes = true; return i }()),
    ChunkCase(name: "completions usage-only", payload: #"{"id":"cmpl-7","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":40,"total_tokens":43}}"#,
              endpoint: .completions, info: ChunkInfo(usage: TokenUsage(input: 3, output: 40), isUsageOnly: true)),
    ChunkCase(name: "OpenAI error", payload: #"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
              info: ChunkInfo(error: "The server had an error while processing your request.")),
    ChunkCase(name: "TGI error", payload: #"{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}"#,
              info: ChunkInfo(error: "Request failed during generation: Server error: CUDA out of memory")),
    ChunkCase(name: "vLLM error", payload: #"{"object":"error","message":"This model's maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":400}"#,
              info: ChunkInfo(error: "This model's maximum context length is 8192 tokens.")),
    ChunkCase(name: "done", payload: "[DONE]", info: ChunkInfo(isDone: true)),
    ChunkCase(name: "done with spaces", payload: " [DONE]\n", info: ChunkInfo(isDone: true)),
    ChunkCase(name: "not done", payload: "[DONE", info: ChunkInfo()),
    ChunkCase(name: "truncated", payload: #"{"choices":[{"delta":{"content":"hi"}}"#, info: ChunkInfo()),
    ChunkCase(name: "garbage", payload: "hello", info: ChunkInfo()),
    ChunkCase(name: "empty", payload: "", info: ChunkInfo()),
    ChunkCase(name: "trailing data", payload: #"{"choices":[{"delta":{"content":"hi"}}]} x"#, info: ChunkInfo()),
    ChunkCase(name: "usage null choices empty", payload: #"{"choices":[],"usage":null}"#, info: ChunkInfo()),
])
func chunkInfo(_ c: ChunkCase) {
    #expect(chunk(c.payload, c.endpoint) == c.info)
}

@Test func chunkInfoWithoutText() {
    let payload = Array(#"{"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#.utf8)
    let info = payload.withUnsafeBytes { ChunkInfo.inspect($0, endpoint: .chatCompletions, includeText: false) }
    #expect(info == ChunkInfo(hasContent: true))
}

@Test func chunkInspectionOfMutatedPayloadsNeverCrashes() {
    let payload = Array(#"{"id":"c","choices":[{"index":0,"delta":{"content":"caf\u00e9","tool_calls":[{"index":0}]}}],"usage":{"prompt_tokens":1e2,"completion_tokens":3.0}}"#.utf8)
    #expect(chunk(String(decoding: payload, as: UTF8.self)).usage == TokenUsage(input: 100, output: 3))
    var rng = SystemRandomNumberGenerator()
    for n in 0...payload.count {
        _ = chunk(String(decoding: payload[..<n], as: UTF8.self))
    }
    for _ in 0..<2000 {
        var b = payload
        b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        _ = b.withUnsafeBytes { ChunkInfo.inspect($0, endpoint: .chatCompletions) }
        _ = b.withUnsafeBytes { CompletionInfo.inspect($0, endpoint: .chatCompletions) }
    }
}

// MARK: Non-streamed responses

private func completion(_ s: String, _ endpoint: Endpoint = .chatCompletions) -> CompletionInfo {
    Array(s.utf8).withUnsafeBytes { CompletionInfo.inspect($0, endpoint: endpoint) }
}

@Test func completionInfoOfResponses() {
    let chat = """
    {
      "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
      "object": "chat.completion",
      "created": 1741570283,
      "model": "gpt-4o-2024-08-06",
      "choices": [
        {
          "index": 0,
          "message": {"role": "assistant", "content": "The image shows a wooden boardwalk\\u2026", "refusal": null, "annotations": []},
          "logprobs": null,
          "finish_reason": "stop"
        },
        {"index": 1, "message": {"role": "assistant", "content": "second"}, "finish_reason": "stop"}
      ],
      "usage": {
        "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
      },
      "service_tier": "default"
    }
    """
    var chatInfo = CompletionInfo(usage: TokenUsage(input: 1117, output: 46), text: "The image shows a wooden boardwalk…")
    chatInfo.response = ResponseFacts(id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", model: "gpt-4o-2024-08-06", finishReasons: ["stop", "stop"])
    #expect(completion(chat) == chatInfo)

    let text = #"{"id":"cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7","object":"text_completion","created":1589478378,"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_44709d6fcb","choices":[{"text":"\n\nThis is indeed a test","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#
    var textInfo = CompletionInfo(usage: TokenUsage(input: 5, output: 7), text: "\n\nThis is indeed a test")
    textInfo.response = ResponseFacts(id: "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", model: "gpt-3.5-turbo-instruct", finishReasons: ["length"])
    #expect(completion(text, .completions) == textInfo)

    let toolCall = #"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99}}"#
    var toolInfo = CompletionInfo(usage: TokenUsage(input: 82, output: 17))
    toolInfo.response.finishReasons = ["tool_calls"]
    #expect(completion(toolCall) == toolInfo)

    #expect(completion(#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#)
            == CompletionInfo(error: "Incorrect API key provided"))
    #expect(completion(#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#)
            == CompletionInfo(error: "The model `x` does not exist."))
    #expect(completion(#"{"error":"Input validation error: `inputs` must have less than 4096 tokens.","error_type":"validation"}"#)
            == CompletionInfo(error: "Input validation error: `inputs` must have less than 4096 tokens."))
    #expect(completion("<html>502 Bad Gateway</html>") == CompletionInfo())
    #expect(completion(#"{"choices":[{"message":{"content":"x"}}]"#) == CompletionInfo())
    #expect(completion("") == CompletionInfo())
}

@Test func aChunkSaysItsIdModelAndFinishReasonOnlyWhenAsked() {
    let last = #"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"length"}]}"#
    let asked = Array(last.utf8).withUnsafeBytes { ChunkInfo.inspect($0, endpoint: .chatCompletions, includeResponse: true) }
    #expect(asked.response == ResponseFacts(id: "chatcmpl-7", model: "gpt-4o-mini-2024-07-18", finishReasons: ["stop", "length"]))
    let notAsked = Array(last.utf8).withUnsafeBytes { ChunkInfo.inspect($0, endpoint: .chatCompletions) }
    #expect(notAsked.response == ResponseFacts())
    let text = #"{"id":"cmpl-1","model":"m","choices":[{"text":"","index":0,"finish_reason":null}]}"#
    #expect(Array(text.utf8).withUnsafeBytes { ChunkInfo.inspect($0, endpoint: .completions, includeResponse: true) }.response
            == ResponseFacts(id: "cmpl-1", model: "m"))
}
