import CMicroHTTPD
import Foundation

extension HTTPServer {
    /// A certificate and its private key, as PEM text, for serving HTTPS (`Options.tls`).
    ///
    /// Text rather than file names, so the caller reads (and reports problems with) its files itself, and tests
    /// can hand over what they generated without writing it anywhere.
    public struct TLS: Sendable {
        /// The server's certificate, optionally followed by the intermediates that complete its chain.
        public var certificatePEM: String
        /// Its private key, unencrypted.
        public var keyPEM: String

        public init(certificatePEM: String, keyPEM: String) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
        }
    }
}

/// What `Options.tls` adds to libmicrohttpd's start: the TLS flag, and the certificate and key as C strings.
///
/// Kept apart from the rest of `HTTPServer.start` so serving HTTPS stays one flag and a few options there: the
/// strings live as long as this value, which `start` keeps until `MHD_start_daemon_va` returns (libmicrohttpd
/// hands them to GnuTLS, which copies them, while it starts).
final class TLSDaemonSettings {
    /// Or-ed into the daemon's flags: `MHD_USE_TLS`, or 0 for plain HTTP.
    let flag: UInt32
    /// Appended to the daemon's options, before `MHD_OPTION_END`.
    let arguments: [CVarArg]
    /// Said after "cannot start the HTTP server on HOST:PORT" when the start fails.
    let startFailureHint: String
    private let strings: [UnsafeMutablePointer<CChar>]

    init(_ tls: HTTPServer.TLS?) throws(HTTPServerError) {
        guard let tls else {
            flag = 0
            arguments = []
            startFailureHint = ""
            strings = []
            return
        }
        guard MHD_is_feature_supported(.FEATURE_TLS) == .YES else {
            throw HTTPServerError(message: "cannot serve HTTPS: this libmicrohttpd was built without TLS (install Debian's libmicrohttpd12, which has GnuTLS)")
        }
        let certificate = strdup(tls.certificatePEM)!, key = strdup(tls.keyPEM)!
        strings = [certificate, key]
        flag = MHD_USE_TLS.rawValue
        arguments = [
            CInt(MHD_OPTION.HTTPS_MEM_CERT.rawValue), OpaquePointer(certificate),
            CInt(MHD_OPTION.HTTPS_MEM_KEY.rawValue), OpaquePointer(key),
        ]
        startFailureHint = " with TLS: check that the certificate and key are PEM, unencrypted, and belong together"
    }

    deinit { for s in strings { free(s) } }
}
