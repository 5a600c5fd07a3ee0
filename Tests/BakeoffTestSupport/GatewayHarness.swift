import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffTelemetry
import Foundation

/// A gateway in process: a config, a fake upstream, an in-memory event sink and a manual clock. Requests go
/// in as `FakeExchange`s through `Gateway.handle`; no socket is opened.
public final class GatewayHarness: Sendable {
    public let gateway: Gateway
    public let upstream: FakeUpstream
    public let events: MemoryEventSink
    public let clock: ManualClock

    public static let adminKey = "admin-key-0123456789abcdef"
    public static let feedbackKey = "feedback-key-0123456789abcdef"
    public static let upstreamKey = "sk-upstream-0123456789"
    public static let environment = ["TEST_ADMIN_KEY": adminKey, "TEST_FEEDBACK_KEY": feedbackKey, "TEST_UPSTREAM_KEY": upstreamKey]

    /// Experiment `exp` (model `bot`, per user, control and treatment half and half, the built-in metrics:
    /// task_completed and escalated yes/no per conversation, csat 1 to 5, thumbs_up yes/no per request) and
    /// experiment `anon` (model `anon-bot`, per request); a feedback cap of 3; the admin key and the
    /// feedback-token key from `environment`. `top` is inserted at the start of the root object.
    public static func config(top: String = "") -> String {
        """
        {\(top) "admin_key_env": "TEST_ADMIN_KEY", "feedback_key_env": "TEST_FEEDBACK_KEY", "feedback_limit": 3,
         "experiments": [
          {"name": "exp", "model": "bot", "variants": [
            {"name": "control", "weight": 0.5, "upstream": {"base_url": "http://control.test/v1", "model": "m-control", "api_key_env": "TEST_UPSTREAM_KEY"}},
            {"name": "treatment", "weight": 0.5, "upstream": {"base_url": "http://treatment.test/v1", "model": "m-treatment"}}]},
          {"name": "anon", "model": "anon-bot", "per_request_assignment": true, "variants": [
            {"name": "control", "weight": 0.5, "upstream": {"base_url": "http://control.test/v1", "model": "m-control"}},
            {"name": "treatment", "weight": 0.5, "upstream": {"base_url": "http://treatment.test/v1", "model": "m-treatment"}}]}]}
        """
    }

    public init(config json: String = GatewayHarness.config(), environment: [String: String] = GatewayHarness.environment,
                immediate: Bool = false, spans: SpanExporter? = nil, script: @escaping @Sendable (UpstreamRequest, Int) -> FakeUpstream.Script) throws {
        let config = try GatewayConfig.parse(Data(json.utf8), source: "gateway.json", environment: environment)
        clock = ManualClock()
        upstream = FakeUpstream(clock: clock, immediate: immediate, script: script)
        events = MemoryEventSink()
        gateway = Gateway(config: config, events: events, upstream: upstream, clock: clock, spans: spans)
    }

    public convenience init(config json: String = GatewayHarness.config(), environment: [String: String] = GatewayHarness.environment,
                            immediate: Bool = false, spans: SpanExporter? = nil, always: FakeUpstream.Script = .json(GatewayHarness.completion())) throws {
        try self.init(config: json, environment: environment, immediate: immediate, spans: spans) { _, _ in always }
    }

    /// A request handed to the gateway; its answer may follow later (`wait`).
    public func exchange(_ method: String = "POST", _ path: String, json: String = "", headers: [(String, String)] = [],
                         query: [String: String] = [:], budget: Int = .max) -> FakeExchange {
        let exchange = FakeExchange(method: method, path: path, headers: headers, body: Array(json.utf8), query: query, budget: budget)
        gateway.handle(exchange)
        return exchange
    }

    /// A request handed to the gateway, and its answer (an empty one if none came within 10 s).
    public func send(_ method: String = "POST", _ path: String, json: String = "", headers: [(String, String)] = [],
                     query: [String: String] = [:]) -> FakeExchange.Answer {
        exchange(method, path, json: json, headers: headers, query: query).wait() ?? FakeExchange.Answer()
    }

    /// A chat request body for model `model` from `user` (none for nil).
    public static func chat(model: String = "bot", user: String? = "alice", stream: Bool = false, extra: String = "") -> String {
        var body = "{\"model\":\(JSONWriter.quote(model)),\"messages\":[{\"role\":\"user\",\"content\":\"Where is my order?\"}]"
        if let user { body += ",\"user\":\(JSONWriter.quote(user))" }
        if stream { body += ",\"stream\":true" }
        return body + extra + "}"
    }

    /// A chat completion answer with `prompt` and `completion` tokens.
    public static func completion(_ text: String = "It ships today.", prompt: Int = 12, completion: Int = 4) -> String {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(JSONWriter.quote(text))},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":\(prompt),\"completion_tokens\":\(completion),\"total_tokens\":\(prompt + completion)}}"
    }

    /// Chat stream events: a role chunk, one content chunk per word, a finish chunk, the usage chunk, [DONE].
    public static func streamEvents(_ words: [String] = ["It ", "ships ", "today."], prompt: Int = 12) -> [String] {
        let head = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":["
        var events = [head + "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"]
        for w in words { events.append(head + "{\"index\":0,\"delta\":{\"content\":\(JSONWriter.quote(w))},\"finish_reason\":null}]}\n\n") }
        events.append(head + "{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
        events.append(head + "],\"usage\":{\"prompt_tokens\":\(prompt),\"completion_tokens\":\(words.count),\"total_tokens\":\(prompt + words.count)}}\n\n")
        events.append("data: [DONE]\n\n")
        return events
    }
}
