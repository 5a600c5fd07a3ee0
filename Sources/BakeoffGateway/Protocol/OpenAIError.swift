import BakeoffCore
import BakeoffHTTP

/// The two OpenAI-compatible endpoints the gateway proxies.
public enum Endpoint: Sendable, Equatable, Hashable {
    case chatCompletions
    case completions

    /// `/v1/chat/completions` or `/v1/completions`.
    public var path: String {
        switch self {
        case .chatCompletions: return "/v1/chat/completions"
        case .completions: return "/v1/completions"
        }
    }

    /// The endpoint of a request path (a query string is ignored), or nil for any other path.
    public init?(path: String) {
        var p = Substring(path)
        if let q = p.firstIndex(of: "?") { p = p[..<q] }
        if p.hasSuffix("/") && p.count > 1 { p = p.dropLast() }
        switch p {
        case "/v1/chat/completions": self = .chatCompletions
        case "/v1/completions": self = .completions
        default: return nil
        }
    }
}

/// An OpenAI-shaped error: HTTP status and `{"error":{"message","type","param","code"}}`.
public struct OpenAIError: Error, Sendable, Equatable {
    public var status: Int
    public var message: String
    public var type: String
    public var code: String?
    public var param: String?

    public init(status: Int, message: String, type: String = "invalid_request_error", code: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
    }

    /// `{"error":{"message":...,"type":...,"param":null|...,"code":null|...}}`
    public var body: [UInt8] {
        var s = "{\"error\":{\"message\":"
        s += JSONWriter.quote(message)
        s += ",\"type\":"
        s += JSONWriter.quote(type)
        s += ",\"param\":"
        s += param.map(JSONWriter.quote) ?? "null"
        s += ",\"code\":"
        s += code.map(JSONWriter.quote) ?? "null"
        s += "}}"
        return Array(s.utf8)
    }

    /// `data: {"error":{...}}` and a blank line, for a failure after the stream has started.
    public var sseEvent: [UInt8] {
        var out: [UInt8] = Array("data: ".utf8)
        out += body
        out += [0x0A, 0x0A]
        return out
    }

    // MARK: Convenience constructors

    /// 400 `invalid_request_error`.
    public static func badRequest(_ message: String, param: String? = nil) -> OpenAIError {
        OpenAIError(status: 400, message: message, param: param)
    }

    /// 401, for a missing or wrong API key.
    public static func unauthorized(_ message: String = "invalid or missing API key") -> OpenAIError {
        OpenAIError(status: 401, message: message, type: "authentication_error", code: "invalid_api_key")
    }

    /// 404 `invalid_request_error`, e.g. an unknown path.
    public static func notFound(_ message: String) -> OpenAIError {
        OpenAIError(status: 404, message: message, type: "invalid_request_error", code: "not_found")
    }

    /// 404 for a model alias the gateway does not serve (as OpenAI answers it).
    public static func modelNotFound(_ model: String) -> OpenAIError {
        OpenAIError(status: 404, message: "The model '\(model)' does not exist", type: "invalid_request_error",
                    code: "model_not_found", param: "model")
    }

    /// 405 for a method other than POST.
    public static func methodNotAllowed(_ method: String) -> OpenAIError {
        OpenAIError(status: 405, message: "method \(method) is not allowed; use POST", code: "method_not_allowed")
    }

    /// 413 for a body over the gateway's limit.
    public static func payloadTooLarge(limit: Int) -> OpenAIError {
        OpenAIError(status: 413, message: "request body is larger than the limit of \(limit) bytes", code: "payload_too_large")
    }

    /// An upstream failure the gateway reports itself (connection refused, unreadable answer...); `status` is the
    /// status the gateway answers with, usually 502.
    public static func upstream(status: Int = 502, message: String) -> OpenAIError {
        OpenAIError(status: status, message: message, type: "upstream_error", code: "upstream_error")
    }

    /// 504: the upstream did not answer in time.
    public static var timeout: OpenAIError {
        OpenAIError(status: 504, message: "the upstream server did not respond in time", type: "timeout_error", code: "timeout")
    }

    /// 503: nothing can serve the request now (no healthy upstream, shutting down...).
    public static func serviceUnavailable(_ message: String) -> OpenAIError {
        OpenAIError(status: 503, message: message, type: "server_error", code: "service_unavailable")
    }

    /// 500: a bug or an unexpected state in the gateway.
    public static func internalError(_ message: String) -> OpenAIError {
        OpenAIError(status: 500, message: message, type: "server_error", code: "internal_error")
    }
}

extension OpenAIError {
    /// 503: the gateway's memory budget has no room for the request now; retry shortly.
    public static func overBudget(limit: Int) -> OpenAIError {
        OpenAIError(status: 503, message: "the gateway is busy: requests in progress fill its memory budget of \(limit) bytes; retry in a moment",
                    type: "server_error", code: "over_capacity")
    }

    /// Sent with `overBudget`: when to retry (seconds); OpenAI's SDKs wait that long before their retry.
    public static let overBudgetHeaders = [("Retry-After", "1")]

    /// 503 while the gateway stops.
    public static let shuttingDown = OpenAIError(status: 503, message: "the gateway is shutting down", type: "server_error", code: "shutting_down")

    /// The HTTP server's own refusals in OpenAI's error shape; a stream cut off at shutdown ends with an error event.
    @Sendable public static func refusal(_ refusal: HTTPRefusal) -> HTTPRefusalResponse {
        let json = [("Content-Type", "application/json")]
        switch refusal {
        case .shuttingDown:
            return HTTPRefusalResponse(headers: json, body: shuttingDown.body, streamEnding: shuttingDown.sseEvent)
        case .badRequest(let message):
            return HTTPRefusalResponse(headers: json, body: badRequest(message).body)
        case .payloadTooLarge(let limit):
            return HTTPRefusalResponse(headers: json, body: payloadTooLarge(limit: limit).body)
        case .overBudget(let limit):
            return HTTPRefusalResponse(headers: json + overBudgetHeaders, body: overBudget(limit: limit).body)
        }
    }
}
