import Foundation
import Testing
import BakeoffGateway
import BakeoffHTTP

private func parse(_ s: String, _ endpoint: Endpoint = .chatCompletions) throws(OpenAIError) -> ClientRequest {
    try ClientRequest.parse(Array(s.utf8), endpoint: endpoint)
}

private func upstream(_ s: String, _ endpoint: Endpoint = .chatCompletions, model: String = "m-1", system: String? = nil,
                      parameters: [(key: String, json: String)] = [], forceUsage: Bool = false) throws -> String {
    let request = try parse(s, endpoint)
    let out = request.upstreamBody(model: model, systemPrompt: system, parameters: parameters, forceUsage: forceUsage)
    #expect(isValidJSON(out), "not valid JSON: \(String(decoding: out, as: UTF8.self))")
    return String(decoding: out, as: UTF8.self)
}

/// Foundation's opinion, except that it also rejects numbers beyond Double's range, which JSON allows.
private func isValidJSON(_ bytes: [UInt8]) -> Bool {
    if (try? JSONSerialization.jsonObject(with: Data(bytes))) != nil { return true }
    return String(decoding: bytes, as: UTF8.self).contains(/[0-9][eE][+-]?[0-9]{3,}/)
}

private func json(_ s: String) -> NSDictionary? {
    (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? NSDictionary
}

// MARK: Parsing

@Test func parsesTheFieldsTheGatewayNeeds() throws {
    let r = try parse(#"{"model":"support-bot","messages":[{"role":"user","content":"hi"}],"user":"u-42","stream":true,"stream_options":{"include_usage":true}}"#)
    #expect(r.model == "support-bot")
    #expect(r.user == "u-42")
    #expect(r.stream)
    #expect(r.clientWantsUsage)
    #expect(r.endpoint == .chatCompletions)

    let plain = try parse(#"{"model":"a","messages":[{"role":"user","content":"hi"}]}"#)
    #expect(plain.user == nil && !plain.stream && !plain.clientWantsUsage)

    let completion = try parse(#"{"model":"b","prompt":"Once upon"}"#, .completions)
    #expect(completion.model == "b" && completion.endpoint == .completions)
    // OpenAI lets the prompt be absent.
    #expect(try parse(#"{"model":"b"}"#, .completions).model == "b")
}

@Test func nullMeansAbsentForOptionalFields() throws {
    let r = try parse(#"{"model":"a","messages":[{"role":"user","content":"x"}],"user":null,"stream":null,"stream_options":null}"#)
    #expect(r.user == nil && !r.stream && !r.clientWantsUsage)
    let f = try parse(#"{"model":"a","messages":[{"role":"user","content":"x"}],"stream":false,"stream_options":{"include_usage":false}}"#)
    #expect(!f.stream && !f.clientWantsUsage)
}

@Test func decodesEscapedStrings() throws {
    let r = try parse(#"{"\u006dodel":"caf\u00e9 \ud83d\ude00\n","messages":[{"role":"user","content":"x"}],"user":"a\"b"}"#)
    #expect(r.model == "café 😀\n")
    #expect(r.user == "a\"b")
}

@Test func duplicateKeysLastWins() throws {
    let r = try parse(#"{"model":5,"model":"second","messages":"no","messages":[{"role":"user","content":"x"}],"stream":true,"stream":false,"user":"a","user":"b"}"#)
    #expect(r.model == "second")
    #expect(!r.stream)
    #expect(r.user == "b")
    // ...and the other way round.
    #expect(throws: OpenAIError.badRequest("'model' must be a string, got a number", param: "model")) {
        try parse(#"{"model":"first","model":5,"messages":[{"role":"user","content":"x"}]}"#)
    }
}

// MARK: Validation

struct InvalidCase: CustomTestStringConvertible, Sendable {
    var body: String
    var endpoint: Endpoint = .chatCompletions
    var message: String
    var param: String?
    var testDescription: String { message }
}

private let messages = #""messages":[{"role":"user","content":"hi"}]"#

@Test(arguments: [
    InvalidCase(body: "", message: "request body is empty"),
    InvalidCase(body: " \n\t", message: "request body is empty"),
    InvalidCase(body: #"{"model":"a","messages":[{"role":"user","content":"hi"}],"temperature":0.5,}"#,
                message: "request body is not valid JSON: unexpected '}' at byte 75"),
    InvalidCase(body: "{\"model\":\"a\"", message: "request body is not valid JSON: unexpected end of input at byte 12"),
    InvalidCase(body: "hello", message: "request body is not valid JSON: unexpected 'h' at byte 0"),
    InvalidCase(body: "{\"model\":\"a} ", message: "request body is not valid JSON: unterminated string starting at byte 9"),
    InvalidCase(body: #"{"model":"a\x"}"#, message: "request body is not valid JSON: invalid escape '\\x' at byte 11"),
    InvalidCase(body: #"{"model":"\u12G4"}"#, message: "request body is not valid JSON: invalid \\u escape at byte 10"),
    InvalidCase(body: "{\"model\":\"a\nb\"}", message: "request body is not valid JSON: unescaped control character 0x0A in a string at byte 11"),
    InvalidCase(body: "{\"model\":\"a\u{FFFD}\"}".replacingOccurrences(of: "\u{FFFD}", with: "\u{1}"),
                message: "request body is not valid JSON: unescaped control character 0x01 in a string at byte 11"),
    InvalidCase(body: #"{"model":"a","n":01}"#, message: "request body is not valid JSON: leading zero in a number at byte 17"),
    InvalidCase(body: #"{"model":"a","n":1.}"#, message: "request body is not valid JSON: unexpected '}' at byte 19"),
    InvalidCase(body: #"{"model":"a","n":-}"#, message: "request body is not valid JSON: unexpected '}' at byte 18"),
    InvalidCase(body: #"{"model":"a","n":1e}"#, message: "request body is not valid JSON: unexpected '}' at byte 19"),
    InvalidCase(body: #"{"model":"a","x":tru}"#, message: "request body is not valid JSON: unexpected '}' at byte 20"),
    InvalidCase(body: #"{"model":"a","x":nul,"#, message: "request body is not valid JSON: unexpected ',' at byte 20"),
    InvalidCase(body: #"{"model":"a" "x":1}"#, message: "request body is not valid JSON: unexpected '\"' at byte 13"),
    InvalidCase(body: #"{"model" "a"}"#, message: "request body is not valid JSON: unexpected '\"' at byte 9"),
    InvalidCase(body: #"{model:"a"}"#, message: "request body is not valid JSON: unexpected 'm' at byte 1"),
    InvalidCase(body: #"{"model":"a"} {}"#, message: "request body is not valid JSON: unexpected '{' at byte 14"),
    InvalidCase(body: #"{"model":"a","x":[1,2}"#, message: "request body is not valid JSON: unexpected '}' at byte 21"),
    InvalidCase(body: #"[1,2]x"#, message: "request body is not valid JSON: unexpected 'x' at byte 5"),
    InvalidCase(body: #"[{"model":"a"}]"#, message: "request body must be a JSON object, got an array"),
    InvalidCase(body: #""text""#, message: "request body must be a JSON object, got a string"),
    InvalidCase(body: "42", message: "request body must be a JSON object, got a number"),
    InvalidCase(body: "null", message: "request body must be a JSON object, got null"),
    InvalidCase(body: "{" + messages + "}", message: "'model' is required", param: "model"),
    InvalidCase(body: #"{"model":null,"# + messages + "}", message: "'model' must be a string, got null", param: "model"),
    InvalidCase(body: #"{"model":["a"],"# + messages + "}", message: "'model' must be a string, got an array", param: "model"),
    InvalidCase(body: #"{"model":"","# + messages + "}", message: "'model' must not be empty", param: "model"),
    InvalidCase(body: #"{"model":"a"}"#, message: "'messages' is required", param: "messages"),
    InvalidCase(body: #"{"model":"a","messages":[]}"#, message: "'messages' must not be empty", param: "messages"),
    InvalidCase(body: #"{"model":"a","messages":[ ]}"#, message: "'messages' must not be empty", param: "messages"),
    InvalidCase(body: #"{"model":"a","messages":{"role":"user"}}"#, message: "'messages' must be an array, got an object", param: "messages"),
    InvalidCase(body: #"{"model":"a","messages":"hi"}"#, message: "'messages' must be an array, got a string", param: "messages"),
    InvalidCase(body: #"{"model":"a","messages":[{"role":"user","content":"x"},"hi"]}"#,
                message: "'messages[1]' must be an object, got a string", param: "messages"),
    InvalidCase(body: #"{"model":"a","prompt":42}"#, endpoint: .completions, message: "'prompt' must be a string or an array, got a number", param: "prompt"),
    InvalidCase(body: #"{"model":"a","stream":"true","# + messages + "}", message: "'stream' must be a boolean, got a string", param: "stream"),
    InvalidCase(body: #"{"model":"a","stream":1,"# + messages + "}", message: "'stream' must be a boolean, got a number", param: "stream"),
    InvalidCase(body: #"{"model":"a","user":42,"# + messages + "}", message: "'user' must be a string, got a number", param: "user"),
    InvalidCase(body: #"{"model":"a","user":{},"# + messages + "}", message: "'user' must be a string, got an object", param: "user"),
    InvalidCase(body: #"{"model":"a","stream_options":true,"# + messages + "}", message: "'stream_options' must be an object, got a boolean", param: "stream_options"),
    InvalidCase(body: #"{"model":"a","stream_options":[],"# + messages + "}", message: "'stream_options' must be an object, got an array", param: "stream_options"),
    InvalidCase(body: #"{"model":"a","stream_options":{"include_usage":"yes"},"# + messages + "}",
                message: "'stream_options.include_usage' must be a boolean, got a string", param: "stream_options.include_usage"),
    // A syntax error wins over a field problem found earlier.
    InvalidCase(body: #"{"model":5,"messages":[}"#, message: "request body is not valid JSON: unexpected '}' at byte 23"),
])
func rejectsWithAPreciseMessage(_ c: InvalidCase) {
    #expect(throws: OpenAIError(status: 400, message: c.message, param: c.param)) {
        try ClientRequest.parse(Array(c.body.utf8), endpoint: c.endpoint)
    }
}

@Test func rejectsInvalidUTF8() {
    var body = Array(#"{"model":"a","messages":[{"role":"user","content":"ab"}]}"#.utf8)
    let i = body.firstIndex(of: UInt8(ascii: "b"))!
    for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3]] {
        var b = body
        b.replaceSubrange(i...i, with: bad)
        #expect(throws: OpenAIError.badRequest("request body is not valid JSON: invalid UTF-8 at byte \(i)")) {
            try ClientRequest.parse(b, endpoint: .chatCompletions)
        }
    }
    body.replaceSubrange(i...i, with: Array("é😀中".utf8))
    #expect((try? ClientRequest.parse(body, endpoint: .chatCompletions)) != nil)
}

@Test func deepNestingIsAnErrorNotACrash() throws {
    let deep = String(repeating: "[", count: 100_000)
    #expect(throws: OpenAIError.badRequest("request body is not valid JSON: nesting deeper than 512 levels at byte 528")) {
        try parse(#"{"model":"a","x":"# + deep)
    }
    // 512 levels (the body object included) are fine.
    let ok = #"{"model":"a","# + messages + #","x":"# + String(repeating: "[", count: 511) + String(repeating: "]", count: 511) + "}"
    #expect(try parse(ok).model == "a")
    let objects = #"{"model":"a","# + messages + #","x":"# + String(repeating: #"{"a":"#, count: 511) + "1" + String(repeating: "}", count: 511) + "}"
    #expect(try parse(objects).model == "a")
    let tooDeep = #"{"model":"a","# + messages + #","x":"# + String(repeating: "[", count: 512) + String(repeating: "]", count: 512) + "}"
    #expect(throws: OpenAIError.self) { try parse(tooDeep) }
}

@Test func acceptsEverythingJSONAllows() throws {
    let body = " \r\n\t{ \"model\" : \"a\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\" } ] ,"
        + " \"n\" : [ -0 , 0.5 , -1.25e+10 , 1E-7 , 12345678901234567890123 , true , false , null , { } , [ ] , \"\" ] } \n"
    let r = try parse(body)
    #expect(r.model == "a")
    #expect(r.promptText() == "\"\\/\u{8}\u{c}\n\r\té")
}

/// Random truncations and byte mutations of valid bodies: parse or throw OpenAIError, never crash; whatever
/// parses gives a valid upstream body.
@Test func mutatedBodiesNeverCrash() throws {
    let bodies = [
        #"{"model":"support-bot","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"caf\u00e9 ☕"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"temperature":0.7056398416886543,"max_tokens":256,"stream":true,"stream_options":{"include_usage":false},"user":"u-1","logit_bias":{"50256":-100}}"#,
        #"{"model":"base","prompt":["a\nb","c"],"max_tokens":16,"echo":false,"stop":["\n\n"],"n":1e0}"#,
    ]
    var rng = SystemRandomNumberGenerator()
    let alphabet = Array(#"{}[]":,\ 0123456789.eE+-truefalsnl"#.utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xFF]
    for (k, text) in bodies.enumerated() {
        let endpoint: Endpoint = k == 0 ? .chatCompletions : .completions
        let body = Array(text.utf8)
        var variants: [[UInt8]] = (0...body.count).map { Array(body[..<$0]) }
        for _ in 0..<3000 {
            var b = body
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[i] = alphabet.randomElement(using: &rng)!
                case 1: b.remove(at: i)
                default: b.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
            }
            variants.append(b)
        }
        for b in variants {
            do {
                let r = try ClientRequest.parse(b, endpoint: endpoint)
                #expect(isValidJSON(b), "accepted invalid JSON: \(String(decoding: b, as: UTF8.self))")
                let out = r.upstreamBody(model: "x", systemPrompt: "S", parameters: [("temperature", "0"), ("seed", "1")], forceUsage: true)
                #expect(isValidJSON(out), "invalid upstream body: \(String(decoding: out, as: UTF8.self))")
                _ = r.promptText()
            } catch {
                #expect(error.status == 400)
            }
        }
    }
}

// MARK: The upstream body

@Test func replacesOnlyTheModel() throws {
    let body = "{ \"model\" :\t\"alias\\u0041\" ,\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\ud83d\\ude00 é\"}],"
        + "\"temperature\":0.7056398416886543,\"top_p\":1e-7,\"seed\":123456789012345678901234567890,\"x\":-0.0E+00 }"
    let out = try upstream(body, model: "meta-llama/Llama-3-8B \"ft\"")
    #expect(out == body.replacingOccurrences(of: "\"alias\\u0041\"", with: #""meta-llama/Llama-3-8B \"ft\"""#))
    // No edits: the very same bytes.
    #expect(try upstream(body, model: "aliasA") == body.replacingOccurrences(of: "\"alias\\u0041\"", with: "\"aliasA\""))
}

@Test func replacesEveryDuplicateKeyAlike() throws {
    let out = try upstream(#"{"model":"a","temperature":1,"messages":[{"role":"user","content":"x"}],"model":"b","temperature":2}"#,
                           parameters: [("temperature", "0.25")])
    #expect(out == #"{"model":"m-1","temperature":0.25,"messages":[{"role":"user","content":"x"}],"model":"m-1","temperature":0.25}"#)

    let system = try upstream(#"{"model":"a","messages":[{"role":"user","content":"x"}],"messages":[{"role":"system","content":"old"}]}"#,
                              system: "new")
    #expect(system == #"{"model":"m-1","messages":[{"role":"system","content":"new"},{"role":"user","content":"x"}],"messages":[{"role":"system","content":"new"}]}"#)

    let options = try upstream(#"{"model":"a","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":false}}"#,
                               forceUsage: true)
    #expect(options == #"{"model":"m-1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#)
}

@Test func chatSystemPromptReplacesOrPrepends() throws {
    let user = #"{"model":"a","messages":[ {"role":"user","content":"hi"} ]}"#
    #expect(try upstream(user, system: "Be \"kind\".\n") ==
            #"{"model":"m-1","messages":[ {"role":"system","content":"Be \"kind\".\n"},{"role":"user","content":"hi"} ]}"#)

    let system = #"{"model":"a","messages":[{"content":"old","role":"system","name":"x"},{"role":"user","content":"hi"}]}"#
    #expect(try upstream(system, system: "new") ==
            #"{"model":"m-1","messages":[{"role":"system","content":"new"},{"role":"user","content":"hi"}]}"#)

    let developer = #"{"messages":[{"role":"developer","content":[{"type":"text","text":"old"}]}, {"role":"user","content":"hi"}],"model":"a"}"#
    #expect(try upstream(developer, system: "new") ==
            #"{"messages":[{"role":"system","content":"new"}, {"role":"user","content":"hi"}],"model":"m-1"}"#)

    // "system" written with an escape is still the system role; a later user turn with role system is not touched.
    let escaped = #"{"model":"a","messages":[{"role":"\u0073ystem","content":"old"},{"role":"user","content":"hi"},{"role":"system","content":"mid"}]}"#
    #expect(try upstream(escaped, system: "new") ==
            #"{"model":"m-1","messages":[{"role":"system","content":"new"},{"role":"user","content":"hi"},{"role":"system","content":"mid"}]}"#)

    // Without a system prompt the messages are untouched.
    #expect(try upstream(system) == system.replacingOccurrences(of: #""model":"a""#, with: #""model":"m-1""#))
}

@Test func completionsSystemPromptPrefixesThePrompt() throws {
    #expect(try upstream(#"{"model":"a","prompt":"Once\nupon","max_tokens":5}"#, .completions, system: "You are \"terse\".") ==
            #"{"model":"m-1","prompt":"You are \"terse\".\n\nOnce\nupon","max_tokens":5}"#)
    #expect(try upstream(#"{"model":"a","prompt":[ "one", "tw\u006f" ]}"#, .completions, system: "S") ==
            #"{"model":"m-1","prompt":[ "S\n\none", "S\n\ntw\u006f" ]}"#)
    // Token prompts cannot take text: left alone.
    #expect(try upstream(#"{"model":"a","prompt":[[1,2],[3]]}"#, .completions, system: "S") == #"{"model":"m-1","prompt":[[1,2],[3]]}"#)
    #expect(try upstream(#"{"model":"a","prompt":[1,2]}"#, .completions, system: "S") == #"{"model":"m-1","prompt":[1,2]}"#)
    #expect(try upstream(#"{"model":"a"}"#, .completions, system: "S") == #"{"model":"m-1"}"#)
}

@Test func parametersReplaceOrAppend() throws {
    let body = #"{"model":"a","messages":[{"role":"user","content":"hi"}],"temperature":0.7056398416886543 , "max_tokens":100}  "#
    let out = try upstream(body, parameters: [("temperature", "0.2"), ("top_p", "0.9"), ("stop", #"["\n"]"#), ("max_tokens", "5"),
                                              ("model", #""evil""#), ("stream", "true"), ("top_p", "0.95")])
    #expect(out == #"{"model":"m-1","messages":[{"role":"user","content":"hi"}],"temperature":0.2 , "max_tokens":5,"stop":["\n"],"top_p":0.95}  "#)
    let decoded = try #require(json(out))
    #expect(decoded["top_p"] as? Double == 0.95)
    #expect(decoded["stream"] == nil)
    // A parameter can set "user" (e.g. to pseudonymize it).
    #expect(try upstream(#"{"model":"a","user":"me","messages":[{"role":"user","content":"hi"}]}"#, parameters: [("user", #""anon""#)]) ==
            #"{"model":"m-1","user":"anon","messages":[{"role":"user","content":"hi"}]}"#)
}

@Test func forcedUsageEndsUpInStreamOptions() throws {
    let base = #"{"model":"m-1","messages":[{"role":"user","content":"hi"}],"stream":true"#
    // Missing: appended.
    #expect(try upstream(base + "}", forceUsage: true) == base + #","stream_options":{"include_usage":true}}"#)
    // Not streaming: untouched.
    let notStreaming = #"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":false}"#
    #expect(try upstream(notStreaming, model: "a", forceUsage: true) == notStreaming)
    // Not forced: untouched.
    #expect(try upstream(base + "}") == base + "}")
    // Empty object, null, other keys, false, already true.
    #expect(try upstream(base + #","stream_options":{ }}"#, forceUsage: true) == base + #","stream_options":{"include_usage":true }}"#)
    #expect(try upstream(base + #","stream_options":null}"#, forceUsage: true) == base + #","stream_options":{"include_usage":true}}"#)
    #expect(try upstream(base + #","stream_options":{"continuous_usage_stats":false}}"#, forceUsage: true) ==
            base + #","stream_options":{"include_usage":true,"continuous_usage_stats":false}}"#)
    #expect(try upstream(base + #","stream_options":{"x":1, "include_usage" : false }}"#, forceUsage: true) ==
            base + #","stream_options":{"x":1, "include_usage" : true }}"#)
    let already = base + #","stream_options":{"include_usage":true}}"#
    #expect(try upstream(already, forceUsage: true) == already)
    let r = try parse(base + #","stream_options":{"include_usage":false}}"#)
    #expect(!r.clientWantsUsage)
    // With parameters appended as well, in a fixed order.
    #expect(try upstream(base + "}", parameters: [("seed", "7")], forceUsage: true) ==
            base + #","seed":7,"stream_options":{"include_usage":true}}"#)
}

@Test func allEditsTogetherKeepTheRestIntact() throws {
    let body = """
    {
      "model": "support-bot",
      "messages": [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "Where is my order \\u2014 #123?"}
      ],
      "temperature": 1.0e0,
      "logit_bias": {"1734": -100},
      "stream": true,
      "stream_options": {"continuous_usage_stats": true}
    }
    """
    let out = try upstream(body, model: "ft-v2", system: "You help, briefly.", parameters: [("temperature", "0.3"), ("max_tokens", "512")], forceUsage: true)
    let expected = """
    {
      "model": "ft-v2",
      "messages": [
        {"role":"system","content":"You help, briefly."},
        {"role": "user", "content": "Where is my order \\u2014 #123?"}
      ],
      "temperature": 0.3,
      "logit_bias": {"1734": -100},
      "stream": true,
      "stream_options": {"include_usage":true,"continuous_usage_stats": true},"max_tokens":512
    }
    """
    #expect(out == expected)
    let decoded = try #require(json(out))
    #expect((decoded["messages"] as? [NSDictionary])?.count == 2)
}

// MARK: Prompt text

@Test func promptTextForLogging() throws {
    let chat = try parse(#"{"model":"a","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"What is"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"this?"}]},{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"caf\u00e9"}]}"#)
    #expect(chat.promptText() == "Be brief.\nWhat is\nthis?\ncafé")
    #expect(try parse(#"{"model":"a","prompt":"Once upon"}"#, .completions).promptText() == "Once upon")
    #expect(try parse(#"{"model":"a","prompt":["a","b"]}"#, .completions).promptText() == "a\nb")
    #expect(try parse(#"{"model":"a","prompt":[1,2,3]}"#, .completions).promptText() == "")
    #expect(try parse(#"{"model":"a"}"#, .completions).promptText() == "")
}

// MARK: Errors

@Test func openAIErrorBodies() throws {
    let e = OpenAIError.badRequest("'model' is \"required\"", param: "model")
    #expect(String(decoding: e.body, as: UTF8.self) ==
            #"{"error":{"message":"'model' is \"required\"","type":"invalid_request_error","param":"model","code":null}}"#)
    #expect(String(decoding: OpenAIError.timeout.sseEvent, as: UTF8.self) ==
            "data: {\"error\":{\"message\":\"the upstream server did not respond in time\",\"type\":\"timeout_error\",\"param\":null,\"code\":\"timeout\"}}\n\n")
    #expect(OpenAIError.payloadTooLarge(limit: 1024).status == 413)
    #expect(OpenAIError.notFound("no such path").status == 404)
    #expect(OpenAIError.modelNotFound("x").code == "model_not_found")
    #expect(OpenAIError.upstream(status: 502, message: "connection refused").status == 502)
    #expect(OpenAIError.serviceUnavailable("draining").status == 503)
    for e in [OpenAIError.unauthorized(), .methodNotAllowed("GET"), .internalError("x\u{1}"), .upstream(message: "y")] {
        #expect(isValidJSON(e.body))
    }
    #expect(Endpoint(path: "/v1/chat/completions") == .chatCompletions)
    #expect(Endpoint(path: "/v1/completions?x=1") == .completions)
    #expect(Endpoint(path: "/v1/models") == nil)
}
