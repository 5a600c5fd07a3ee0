import Foundation
import Testing
import CCurl
import BakeoffTestSupport
import BakeoffHTTP

/// HTTPS between the upstream client and a server: a certificate trusted through a CA file, connections kept
/// alive (one handshake for many calls), and every certificate that must not be trusted refused with a reason a
/// client can act on, without the upstream's address.
@Suite("HTTPS: serving, trusting a CA file, refusing bad certificates")
struct TLSTests {
    /// An HTTPS server with `certificate` that answers "ok <path>" at once.
    static func server(_ certificates: TestCertificates, _ certificate: String) throws -> HTTPServer {
        var options = HTTPServer.Options()
        options.tls = try certificates.tls(certificate)
        let server = HTTPServer(options: options) { exchange in
            exchange.respond(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok \(exchange.request.path)".utf8))
        }
        try server.start()
        return server
    }

    static func request(_ url: String, caFile: String?) -> UpstreamRequest {
        var request = UpstreamRequest(url: url, headers: [], body: Array("{}".utf8), timeoutMs: 5000, connectTimeoutMs: 2000)
        request.caFile = caFile
        return request
    }

    /// One call's outcome and body.
    static func call(_ client: UpstreamClient, _ url: String, caFile: String?) -> (outcome: UpstreamOutcome?, body: String) {
        let recorder = CallRecorder()
        client.start(request(url, caFile: caFile), handlers: recorder.handlers)
        let r = recorder.wait()
        return (r.outcome, r.body)
    }

    @Test func callsInTurnShareOneConnectionAndOneHandshake() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let server = try Self.server(certificates, certificates.serverFile)
        defer { server.stop(graceSeconds: 0) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        for i in 0..<20 {
            let r = Self.call(client, "https://127.0.0.1:\(server.port)/call\(i)", caFile: certificates.caFile)
            #expect(r.outcome == .completed(status: 200))
            #expect(r.body == "ok /call\(i)")
        }
        #expect(server.acceptedConnections == 1)
        #expect(client.connectionsOpened == 1)
        // localhost is named too.
        #expect(Self.call(client, "https://localhost:\(server.port)/by-name", caFile: certificates.caFile).outcome == .completed(status: 200))
    }

    @Test func concurrentCallsOpenNoMoreConnectionsThanCallsAtOnce() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let server = try Self.server(certificates, certificates.serverFile)
        defer { server.stop(graceSeconds: 0) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        for round in 0..<10 {
            let recorders = (0..<4).map { _ in CallRecorder() }
            for (i, r) in recorders.enumerated() {
                client.start(Self.request("https://127.0.0.1:\(server.port)/r\(round)-\(i)", caFile: certificates.caFile), handlers: r.handlers)
            }
            for r in recorders { #expect(r.wait().outcome == .completed(status: 200)) }
        }
        #expect(client.connectionsOpened <= 4)
        #expect(server.acceptedConnections == client.connectionsOpened)
    }

    /// What a refused certificate gives: unreachable, with the reason, never the address.
    static func refusal(_ outcome: UpstreamOutcome?, port: UInt16) -> String? {
        guard case .failed(.unreachable, let message)? = outcome else {
            Issue.record("expected an unreachable failure, got \(String(describing: outcome))")
            return nil
        }
        #expect(!message.contains("127.0.0.1") && !message.contains("localhost") && !message.contains(String(port)), "\(message)")
        return message
    }

    @Test func certificatesThatMustNotBeTrustedAreRefusedWithTheReason() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let client = UpstreamClient()
        defer { client.shutdown() }

        let good = try Self.server(certificates, certificates.serverFile)
        defer { good.stop(graceSeconds: 0) }
        // The system's CAs do not know the test CA.
        let untrusted = Self.refusal(Self.call(client, "https://127.0.0.1:\(good.port)/x", caFile: nil).outcome, port: good.port)
        #expect(untrusted?.contains("its TLS certificate is not trusted: it was issued by a CA the gateway does not trust") == true, "\(untrusted ?? "")")
        #expect(untrusted?.contains("\"ca_file\"") == true)

        let expired = try Self.server(certificates, certificates.expiredFile)
        defer { expired.stop(graceSeconds: 0) }
        let e = Self.refusal(Self.call(client, "https://127.0.0.1:\(expired.port)/x", caFile: certificates.caFile).outcome, port: expired.port)
        #expect(e?.contains("its TLS certificate is not trusted: it has expired") == true, "\(e ?? "")")

        let wrongHost = try Self.server(certificates, certificates.wrongHostFile)
        defer { wrongHost.stop(graceSeconds: 0) }
        let w = Self.refusal(Self.call(client, "https://127.0.0.1:\(wrongHost.port)/x", caFile: certificates.caFile).outcome, port: wrongHost.port)
        #expect(w?.contains("its TLS certificate is not trusted: it does not name the host") == true, "\(w ?? "")")

        let selfSigned = try Self.server(certificates, certificates.selfSignedFile)
        defer { selfSigned.stop(graceSeconds: 0) }
        let s = Self.refusal(Self.call(client, "https://127.0.0.1:\(selfSigned.port)/x", caFile: certificates.caFile).outcome, port: selfSigned.port)
        #expect(s?.contains("it is self-signed") == true, "\(s ?? "")")
        // Trusting the certificate itself is how a self-signed one is accepted.
        #expect(Self.call(client, "https://127.0.0.1:\(selfSigned.port)/x", caFile: certificates.selfSignedFile).outcome == .completed(status: 200))
    }

    @Test func aCAFileGoneSinceTheStartAndAPlainServerAreNamedToo() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let client = UpstreamClient()
        defer { client.shutdown() }
        let good = try Self.server(certificates, certificates.serverFile)
        defer { good.stop(graceSeconds: 0) }
        let gone = Self.refusal(Self.call(client, "https://127.0.0.1:\(good.port)/x", caFile: certificates.directory + "/missing.pem").outcome, port: good.port)
        #expect(gone?.contains("cannot read the CA file") == true, "\(gone ?? "")")

        let plain = HTTPServer(options: HTTPServer.Options()) { $0.respond(status: 200, headers: [], body: []) }
        try plain.start()
        defer { plain.stop(graceSeconds: 0) }
        let handshake = Self.refusal(Self.call(client, "https://127.0.0.1:\(plain.port)/x", caFile: certificates.caFile).outcome, port: plain.port)
        #expect(handshake?.contains("the TLS handshake failed") == true, "\(handshake ?? "")")
    }

    @Test func aKeyThatDoesNotFitStopsTheStartWithAHint() throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        var options = HTTPServer.Options()
        options.tls = HTTPServer.TLS(certificatePEM: try String(contentsOfFile: certificates.serverFile, encoding: .utf8), keyPEM: "not a key")
        let server = HTTPServer(options: options) { _ in }
        #expect {
            try server.start()
        } throws: { error in
            "\(error)".contains("with TLS: check that the certificate and key are PEM")
        }
    }

    @Test func reasonsForEveryVerifyResult() {
        func message(_ code: CURLcode, _ verify: Int) -> String { UpstreamTLSProblem(code: code, verifyResult: verify).message }
        #expect(message(CURLE_PEER_FAILED_VERIFICATION, 9).contains("not valid yet"))
        #expect(message(CURLE_PEER_FAILED_VERIFICATION, 2).contains("chain is incomplete"))
        #expect(message(CURLE_PEER_FAILED_VERIFICATION, 99).contains("verify error 99"))
        #expect(message(CURLE_PEER_FAILED_VERIFICATION, 1).contains("does not name the host"))
        #expect(message(CURLE_SSL_CONNECT_ERROR, 0).contains("handshake failed"))
        for verify in [0, 1, 2, 9, 10, 18, 19, 20, 21, 23, 26, 99] {
            #expect(message(CURLE_PEER_FAILED_VERIFICATION, verify).hasPrefix("cannot reach the upstream: its TLS certificate is not trusted: "))
        }
    }
}
