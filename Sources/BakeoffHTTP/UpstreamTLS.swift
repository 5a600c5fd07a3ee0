import CCurl

/// Why a call to an https:// upstream failed in TLS, in words a client may read: the reason and what to do,
/// never the upstream's address (libcurl's own text names the host it expected).
///
/// From libcurl's result and, for a certificate it refused, OpenSSL's verify result
/// (`CURLINFO_SSL_VERIFYRESULT`). libcurl sets that to 1 before the handshake and to OpenSSL's result once the
/// chain is checked; it checks the host name before reading the result, so 1 (or 0) with a refused
/// certificate means the chain was fine and the name did not match.
package struct UpstreamTLSProblem: Sendable, Equatable {
    package var code: CURLcode
    package var verifyResult: Int

    package init(code: CURLcode, verifyResult: Int) {
        self.code = code
        self.verifyResult = verifyResult
    }

    /// What the client gets in its 502 and the operator on stderr.
    package var message: String {
        switch code {
        case CURLE_SSL_CACERT_BADFILE:
            return "cannot reach the upstream: the gateway cannot read the CA file of its tls.ca_file (moved or changed since the gateway started?)"
        case CURLE_PEER_FAILED_VERIFICATION:
            return "cannot reach the upstream: its TLS certificate is not trusted: " + reason
        default:
            return "cannot reach the upstream: the TLS handshake failed (is it serving HTTPS on that port?)"
        }
    }

    /// Why OpenSSL refused the certificate, and the remedy. The numbers are OpenSSL's `X509_V_ERR_*`.
    private var reason: String {
        let untrusted = "; give the gateway the CA that issued it in the upstream's \"tls\": {\"ca_file\": \"ca.pem\"}"
        switch verifyResult {
        case 0, 1:
            return "it does not name the host of the upstream's base_url (subjectAltName); use a host it names, or reissue it with this one"
        case 9:  // X509_V_ERR_CERT_NOT_YET_VALID
            return "it is not valid yet (check this machine's clock)"
        case 10:  // X509_V_ERR_CERT_HAS_EXPIRED
            return "it has expired; renew the upstream's certificate"
        case 18:  // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            return "it is self-signed; give the gateway that certificate in the upstream's \"tls\": {\"ca_file\": \"cert.pem\"}"
        case 19, 20, 21:  // SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
            return "it was issued by a CA the gateway does not trust" + untrusted
        case 2:  // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            return "its chain is incomplete (the upstream should send its intermediate certificates)" + untrusted
        case 23:  // X509_V_ERR_CERT_REVOKED
            return "it has been revoked"
        case 26:  // X509_V_ERR_INVALID_PURPOSE
            return "it is not a certificate for a TLS server (extendedKeyUsage)"
        default:
            return "OpenSSL's verify error \(verifyResult) (see `openssl verify -CAfile ca.pem` on the upstream's certificate)"
        }
    }
}
