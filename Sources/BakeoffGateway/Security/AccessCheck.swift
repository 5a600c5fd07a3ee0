import BakeoffHTTP

/// Who a request may act as: the admin key and the client keys of the config, checked in constant time.
package struct AccessCheck: Sendable {
    /// The admin key (nil: admin features are off) and the environment variable it came from.
    package let adminKey: String?
    package let adminKeyEnv: String
    /// Client keys; none: every client may use the model endpoints.
    package let clientKeys: [String]

    package init(config: GatewayConfig) {
        adminKey = config.adminKey
        adminKeyEnv = config.adminKeyEnv
        clientKeys = config.access.clientKeys
    }

    /// Whether the request carries the admin key (as a bearer token or in X-Bakeoff-Admin-Key).
    package func isAdmin(_ request: HTTPRequest) -> Bool {
        guard let adminKey else { return false }
        if let given = request.header("x-bakeoff-admin-key"), constantTimeEqual(given, adminKey) { return true }
        if let auth = request.header("authorization"), auth.hasPrefix("Bearer "), constantTimeEqual(String(auth.dropFirst(7)), adminKey) { return true }
        return false
    }

    /// With client keys configured: whether the request carries one (or the admin key) as a bearer token.
    package func isClient(_ request: HTTPRequest) -> Bool {
        if clientKeys.isEmpty || isAdmin(request) { return true }
        guard let auth = request.header("authorization"), auth.hasPrefix("Bearer ") else { return false }
        let given = String(auth.dropFirst(7))
        // Every key is compared, so the time taken does not tell which one nearly matched.
        return clientKeys.map { constantTimeEqual(given, $0) }.contains(true)
    }

    /// 401 for a request without a client key.
    package func clientRefusal(_ request: HTTPRequest) -> OpenAIError {
        let sent = request.header("authorization") != nil
        return OpenAIError(status: 401, message: sent ? "Incorrect API key provided: this gateway needs one of its client keys as \"Authorization: Bearer KEY\"" : "You didn't provide an API key: this gateway needs one of its client keys as \"Authorization: Bearer KEY\" (the OpenAI SDKs send their api_key so)", type: "invalid_request_error", code: "invalid_api_key")
    }

    /// 403 while admin features are off, 401 without the admin key.
    package func adminRefusal() -> OpenAIError {
        adminKey == nil
            ? OpenAIError(status: 403, message: "admin features are off: start the gateway with \(adminKeyEnv) set to a secret, then send it as a bearer token", type: "permission_error", code: "admin_disabled")
            : OpenAIError(status: 401, message: "this needs the admin key (\(adminKeyEnv)) as \"Authorization: Bearer KEY\" or \"X-Bakeoff-Admin-Key: KEY\"", type: "authentication_error", code: "admin_key_required")
    }
}
