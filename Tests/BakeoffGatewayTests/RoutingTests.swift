import BakeoffGateway
import BakeoffStore
import Foundation
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

/// `/healthz` of a gateway whose shared store has other gateways running another plan: degraded, still 200 (it
/// serves correctly), with one sentence per difference naming the gateway and what differs there.
@Suite("Health with replicas")
struct ReplicaHealthTests {
    let mine = "alpha\t0.05\nvariant control\tweight 0.5, m1 at http://a/v1, definition 0123\nvariant treatment\tweight 0.5, m2 at http://b/v1, definition 4567"
    let theirs = "alpha\t0.05\nvariant control\tweight 0.8, m1 at http://a/v1, definition 0123\nvariant treatment\tweight 0.2, m2 at http://b/v1, definition 4567"

    @Test func anotherPlanMakesTheGatewayDegradedAndSaysWhatDiffers() throws {
        let problems = GatewayPages.replicaProblems([.init(experiment: "support", gateway: "gw-2:41@1700000000", plan: theirs)],
                                                    mine: ["support": mine])
        #expect(problems == ["experiment \"support\": the gateway gw-2:41@1700000000 sharing the store runs a different plan (there: variant control: weight 0.5, m1 at http://a/v1, definition 0123 → weight 0.8, m1 at http://a/v1, definition 0123; variant treatment: weight 0.5, m2 at http://b/v1, definition 4567 → weight 0.2, m2 at http://b/v1, definition 4567)"])
        let degraded = GatewayPages.health(.ok, replicaProblems: problems)
        #expect(degraded.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(degraded.body.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "degraded")
        #expect(json["problems"] as? [String] == problems)
        #expect(GatewayPages.health(.ok).body == "{\"status\":\"ok\"}")
        let failing = GatewayPages.health(.failing(since: Date(), reason: "server closed the connection"), replicaProblems: problems)
        #expect(failing.status == 503)
        #expect(failing.body.contains("\"status\":\"unavailable\"") && failing.body.contains("\"problems\":["))
    }
}
