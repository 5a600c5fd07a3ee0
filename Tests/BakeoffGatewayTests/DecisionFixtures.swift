import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import BakeoffTestSupport
import Foundation

/// What the decision tests share: the harness's config, its access rules and feedback signer, users that
/// land in each variant.
enum Fixture {
    static func config(top: String = "", environment: [String: String] = GatewayHarness.environment) -> GatewayConfig {
        try! GatewayConfig.parse(Data(GatewayHarness.config(top: top).utf8), source: "gateway.json", environment: environment)
    }

    static let standard = config()
    static let signer = FeedbackTokenSigner(key: Array(GatewayHarness.feedbackKey.utf8), lifetimeSeconds: standard.access.feedbackTokenLifetimeSeconds)
    static let authorization = ("Authorization", "Bearer " + GatewayHarness.adminKey)

    /// A user of experiment `exp` assigned to `variant` (`u-0`, `u-1`, ... the first that is).
    static func user(in variant: String, config: GatewayConfig = standard) -> String {
        let experiment = config.experiment(named: "exp")!
        return (0...).lazy.map { "u-\($0)" }.first { experiment.variant(for: $0).name == variant }!
    }

    static func request(_ method: String = "POST", _ path: String = "/v1/chat/completions", json: String = "",
                        headers: [(String, String)] = [], query: [String: String] = [:]) -> HTTPRequest {
        HTTPRequest(method: method, path: path, query: query, headers: headers.map { (name: $0.0.lowercased(), value: $0.1) }, body: Array(json.utf8))
    }

    /// A request `exp` served: `req_1` of `alice` in `conv-1`, on control.
    static let served = RequestInfo(experiment: "exp", variant: "control", userID: "alice", conversationID: "conv-1", requestID: "req_1")
    /// A request `anon` served without a user (its user id is its request id).
    static let anonymous = RequestInfo(experiment: "anon", variant: "treatment", userID: "req_anon", conversationID: "req_anon", requestID: "req_anon")
}

extension Result {
    /// The error, or nil on success.
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
    var success: Success? {
        if case .success(let v) = self { return v }
        return nil
    }
}
