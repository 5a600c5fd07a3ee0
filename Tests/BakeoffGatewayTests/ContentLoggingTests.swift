import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffTestSupport
import Foundation
import Testing

@Suite("Content logging: the client's messages, with their roles, on the request event")
struct ContentLoggingTests {
    static func parse(_ s: String, _ endpoint: Endpoint = .chatCompletions) throws -> ClientRequest {
        try ClientRequest.parse(Array(s.utf8), endpoint: endpoint)
    }

    @Test func messagesAreTheClientsArrayWithoutTheSpaceBetweenTokens() throws {
        let body = """
        {"model": "a", "messages": [ {"role": "system", "content": "Be  brief.\\n \\"ok\\" \\\\"},
          {"role":"user","content":[{"type":"text","text":"caf\\u00e9 { [ ]"}], "n": 1.50e2} ],
         "messages2": [ 1 ]}
        """
        let messages = try #require(try Self.parse(body).messagesJSON())
        #expect(messages == #"[{"role":"system","content":"Be  brief.\n \"ok\" \\"},{"role":"user","content":[{"type":"text","text":"caf\u00e9 { [ ]"}],"n":1.50e2}]"#)
        #expect((try? JSONSerialization.jsonObject(with: Data(messages.utf8))) is [Any])
        // The last of repeated keys, as elsewhere; none for completions.
        #expect(try Self.parse(#"{"model":"a","messages":[{"role":"user","content":"1"}],"messages":[{"role":"user","content":"2"}]}"#).messagesJSON()
            == #"[{"role":"user","content":"2"}]"#)
        #expect(try Self.parse(#"{"model":"a","prompt":"Once"}"#, .completions).messagesJSON() == nil)
        #expect(try Self.parse(#"{"model":"a","prompt":"Once","messages":[{"role":"user","content":"x"}]}"#, .completions).messagesJSON() == nil)
    }

    /// The gateway takes what the event reader refuses; such messages are not logged (the prompt text still is).
    @Test func messagesTheEventReaderWouldRefuseAreNotLogged() throws {
        let deep = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
        for content in [#""\ud800 lone""#, "1e999", deep] {
            let r = try Self.parse(#"{"model":"a","messages":[{"role":"user","content":"hi","x":"# + content + "}]}")
            #expect(r.messagesJSON() == nil, "\(content)")
            #expect(r.promptText() == "hi")
        }
        let nested = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(try Self.parse(#"{"model":"a","messages":[{"role":"user","content":"hi","x":"# + nested + "}]}").messagesJSON() != nil)
    }

    @Test func thePlanLogsMessagesAndPromptOnlyWithLogContent() throws {
        let chat = GatewayHarness.chat(user: "alice").replacingOccurrences(of: #""messages":["#, with: #""messages":[{"role":"system","content":"You help."}, "#)
        for logContent in [false, true] {
            let config = Fixture.config(top: logContent ? "\"log_content\": true," : "")
            let a = try ProxyDecision.assign(Fixture.request(json: chat), endpoint: .chatCompletions, config: config,
                                             access: AccessCheck(config: config), requestID: "req_1", draw: { 0.5 }).get()
            let record = ProxyDecision.plan(a, endpoint: .chatCompletions, config: config, requestID: "req_1", wallClock: Make.t0,
                                            started: 0, tokens: Fixture.signer).record
            if logContent {
                #expect(record.messages == #"[{"role":"system","content":"You help."},{"role":"user","content":"Where is my order?"}]"#)
                #expect(record.prompt == "You help.\nWhere is my order?")
            } else {
                #expect(record.messages == nil && record.prompt == nil)
            }
        }
    }
}
