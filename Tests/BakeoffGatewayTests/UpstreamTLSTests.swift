import Foundation
import Testing
import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffDevTools
import BakeoffTestSupport

/// An upstream's `"tls": {"ca_file": ...}`: read and checked at load (errors with their JSON path), handed to
/// every request to that upstream, and through a real gateway and an HTTPS mock: trusted, reused (one handshake
/// for many requests, shown in /metrics), or refused with a 502 that says why.
@Suite("Upstream TLS: the CA file in the config, and the gateway against an HTTPS upstream")
struct UpstreamTLSTests {
    /// A config with one experiment `exp` (model `bot`) whose single variant's upstream is `upstream` (JSON members).
    static func config(_ upstream: String) -> String {
        """
        {"experiments": [{"name": "exp", "model": "bot", "per_request_assignment": true, "variants": [
          {"name": "only", "weight": 1, "upstream": {\(upstream)}}]}]}
        """
    }

    static func problems(_ json: String, source: String = "gateway.json") -> [String] {
        switch GatewayConfig.validate(Data(json.utf8), source: source, environment: [:]) {
        case .success: return []
        case .failure(let errors): return errors.errors.map(\.description)
        }
    }

    @Test func aCAFileIsReadCheckedAndSentWithEveryRequest() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let json = Self.config("\"base_url\": \"https://127.0.0.1:9443/v1\", \"model\": \"m\", \"tls\": {\"ca_file\": \(JSONWriter.quote(certificates.caFile))}")
        let config = try GatewayConfig.parse(Data(json.utf8), source: "gateway.json", environment: [:])
        let variant = try #require(config.experiments.first?.variants.first)
        #expect(variant.upstream.tls == UpstreamTLSSettings(caFile: certificates.caFile))
        #expect(config.summary().contains("TLS certificate checked against the CAs in \(certificates.caFile) only"))
        let client = try ClientRequest.parse(Array(#"{"model":"bot","messages":[{"role":"user","content":"hi"}]}"#.utf8), endpoint: .chatCompletions)
        #expect(ProxyDecision.upstreamRequest(client, variant: variant, endpoint: .chatCompletions).caFile == certificates.caFile)

        // Without "tls", the system's CAs.
        let plain = try GatewayConfig.parse(Data(Self.config("\"base_url\": \"https://api.example.com/v1\", \"model\": \"m\"").utf8), source: "gateway.json", environment: [:])
        let plainVariant = try #require(plain.experiments.first?.variants.first)
        #expect(plainVariant.upstream.tls == nil)
        #expect(ProxyDecision.upstreamRequest(client, variant: plainVariant, endpoint: .chatCompletions).caFile == nil)
    }

    @Test func aRelativeCAFileIsFoundNextToTheConfig() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let path = certificates.directory + "/gateway.json"
        try Self.config("\"base_url\": \"https://127.0.0.1:9443/v1\", \"model\": \"m\", \"tls\": {\"ca_file\": \"ca.pem\"}").write(toFile: path, atomically: true, encoding: .utf8)
        let config = try GatewayConfig.load(path: path, environment: [:])
        #expect(config.experiments.first?.variants.first?.upstream.tls?.caFile == certificates.caFile)
    }

    @Test func mistakesStopTheLoadWithTheirPathAndWhatToDo() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let dir = certificates.directory
        try "just text\n".write(toFile: dir + "/not-pem.pem", atomically: true, encoding: .utf8)
        let withKey = try String(contentsOfFile: certificates.caFile, encoding: .utf8) + String(contentsOfFile: certificates.keyFile, encoding: .utf8)
        try withKey.write(toFile: dir + "/with-key.pem", atomically: true, encoding: .utf8)
        try "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".write(toFile: dir + "/damaged.pem", atomically: true, encoding: .utf8)
        let https = "\"base_url\": \"https://127.0.0.1:9443/v1\", \"model\": \"m\", "
        let at = "gateway.json: experiments[0].variants[0].upstream.tls"
        let cases: [(upstream: String, expected: String)] = [
            (https + "\"tls\": {\"ca_file\": \"\(dir)/missing.pem\"}", "\(at).ca_file: \(dir)/missing.pem: no such file"),
            (https + "\"tls\": {\"ca_file\": \"\(dir)\"}", "\(at).ca_file: \(dir): is a directory"),
            (https + "\"tls\": {\"ca_file\": \"\(dir)/not-pem.pem\"}", "holds no PEM certificate (-----BEGIN CERTIFICATE-----); a DER file converts with: openssl x509 -inform der"),
            (https + "\"tls\": {\"ca_file\": \"\(dir)/with-key.pem\"}", "\(at).ca_file: \(dir)/with-key.pem: holds a private key"),
            (https + "\"tls\": {\"ca_file\": \"\(dir)/damaged.pem\"}", "certificate 1 is damaged"),
            (https + "\"tls\": {}", "\(at).ca_file: \"tls\" needs a \"ca_file\""),
            (https + "\"tls\": \"ca.pem\"", "\(at): "),
            (https + "\"tls\": {\"ca_file\": \"\(certificates.caFile)\", \"insecure_skip_verify\": true}", "\(at).insecure_skip_verify: unknown key"),
            ("\"base_url\": \"http://127.0.0.1:9001/v1\", \"model\": \"m\", \"tls\": {\"ca_file\": \"\(certificates.caFile)\"}",
             "\(at): applies only to an https:// base_url"),
        ]
        for c in cases {
            let found = Self.problems(Self.config(c.upstream))
            #expect(found.contains { $0.contains(c.expected) }, "expected \(c.expected) in \(found)")
        }
        // A relative file is looked for next to the config, and named so.
        let relative = Self.problems(Self.config(https + "\"tls\": {\"ca_file\": \"ca.pem\"}"), source: "/nowhere/gateway.json")
        #expect(relative.contains { $0.contains("/nowhere/ca.pem: no such file") }, "\(relative)")
    }

    /// A gateway in process with a real upstream client, in front of an HTTPS mock.
    static func gateway(mock: MockUpstream, caFile: String?) throws -> (Gateway, UpstreamClient) {
        let tls = caFile.map { ", \"tls\": {\"ca_file\": \(JSONWriter.quote($0))}" } ?? ""
        let json = config("\"base_url\": \(JSONWriter.quote(mock.baseURL)), \"model\": \"m\"" + tls)
        let config = try GatewayConfig.parse(Data(json.utf8), source: "gateway.json", environment: [:])
        let client = UpstreamClient()
        return (Gateway(config: config, events: MemoryEventSink(), upstream: client), client)
    }

    static func send(_ gateway: Gateway) throws -> FakeExchange.Answer {
        let exchange = FakeExchange(method: "POST", path: "/v1/chat/completions", headers: [],
                                    body: Array(#"{"model":"bot","messages":[{"role":"user","content":"Where is my order?"}]}"#.utf8))
        gateway.handle(exchange)
        return try #require(exchange.wait(), "no answer within 10 s")
    }

    @Test func aTrustedHTTPSUpstreamAnswersOverOneReusedConnection() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.jitterMs = 0
        options.tokensPerSecond = 0
        options.tls = try certificates.tls(certificates.serverFile)
        let mock = MockUpstream(options: options)
        try mock.start()
        defer { mock.stop() }
        #expect(mock.baseURL.hasPrefix("https://127.0.0.1:"))
        let (gateway, _) = try Self.gateway(mock: mock, caFile: certificates.caFile)
        defer { gateway.stop(graceSeconds: 0) }
        for _ in 0..<50 {
            let answer = try Self.send(gateway)
            #expect(answer.status == 200, "\(answer.text)")
        }
        #expect(mock.requestsReceived == 50)
        #expect(mock.connectionsAccepted == 1)
        #expect(mock.statsJSON == #"{"requests":50,"connections":1,"tls":true,"tls_handshakes":1}"#)
        let metrics = FakeExchange(method: "GET", path: "/metrics")
        gateway.handle(metrics)
        #expect(metrics.wait()?.text.contains("bakeoff_upstream_connections_opened_total 1\n") == true)
    }

    @Test func anUntrustedCertificateGivesTheClientA502ThatSaysSo() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.tls = try certificates.tls(certificates.serverFile)
        let mock = MockUpstream(options: options)
        try mock.start()
        defer { mock.stop() }
        let (gateway, _) = try Self.gateway(mock: mock, caFile: nil)
        defer { gateway.stop(graceSeconds: 0) }
        let answer = try Self.send(gateway)
        #expect(answer.status == 502)
        #expect(answer.errorCode == "upstream_unreachable")
        let message = ((answer.json?["error"] as? [String: Any])?["message"] as? String) ?? ""
        #expect(message.contains("its TLS certificate is not trusted: it was issued by a CA the gateway does not trust"), "\(message)")
        #expect(!message.contains("127.0.0.1") && !message.contains(String(mock.port)), "\(message)")
        #expect(mock.requestsReceived == 0)
    }
}
