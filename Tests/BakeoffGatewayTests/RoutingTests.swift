import BakeoffGateway
import Testing

@Suite("Routing: method and path to a route or a refusal")
struct RoutingTests {
    @Test(arguments: [
        ("POST", "/v1/chat/completions", GatewayRoute.proxy(.chatCompletions)),
        ("POST", "/v1/completions", .proxy(.completions)),
        ("POST", "/v1/feedback", .feedback),
        ("GET", "/v1/models", .models),
        ("GET", "/v1/assignments", .assignments),
        ("GET", "/healthz", .health),
        ("GET", "/metrics", .metrics),
        ("GET", "/v1/experiments/exp/report", .report(experiment: "exp")),
        // Paths arrive percent-decoded by the server: no second decoding ("pct%41" is that name).
        ("GET", "/v1/experiments/support bot/report", .report(experiment: "support bot")),
        ("GET", "/v1/experiments/pct%41/timeseries", .timeSeries(experiment: "pct%41")),
        ("GET", "/v1/experiments/a/b/report", .report(experiment: "a/b")),
    ])
    func knownRoutes(_ method: String, _ path: String, _ route: GatewayRoute) {
        #expect(GatewayRoute.route(method: method, path: path).success == route)
    }

    /// A known path with another method is 405; anything else is 404 (OpenAI's error shape either way).
    @Test(arguments: [
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("DELETE", "/v1/feedback", 405, "method_not_allowed"),
        ("POST", "/metrics", 405, "method_not_allowed"),
        ("PUT", "/healthz", 405, "method_not_allowed"),
        ("GET", "/v1/embeddings", 404, "not_found"),
        ("POST", "/v1/experiments/exp/report", 404, "not_found"),
        ("GET", "/", 404, "not_found"),
    ])
    func refusals(_ method: String, _ path: String, _ status: Int, _ code: String) throws {
        let error = try #require(GatewayRoute.route(method: method, path: path).failure)
        #expect(error.status == status)
        #expect(error.code == code)
    }
}
