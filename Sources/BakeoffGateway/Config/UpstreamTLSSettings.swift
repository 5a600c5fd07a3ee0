import Foundation

/// How the gateway trusts an https:// upstream's certificate: an upstream's `"tls": {"ca_file": "ca.pem"}`.
///
/// Upstreams on a private network often have certificates from an internal CA, or self-signed ones, that the
/// system's CAs do not vouch for. Naming that CA here makes the gateway verify the upstream as strictly as a
/// public one (chain, validity dates, host name) rather than not verifying it at all.
public struct UpstreamTLSSettings: Sendable, Equatable {
    /// A PEM file of the CAs the upstream's certificate must chain to, trusted instead of the system's (and
    /// only for this upstream). An absolute path: a relative one in the config is found next to it.
    public var caFile: String

    public init(caFile: String) {
        self.caFile = caFile
    }

    /// What is wrong with `path` as a CA file, or nil when it holds PEM certificates: checked when the config is
    /// loaded, so a missing or wrong file stops the start with its name instead of failing every request.
    package static func problem(caFile path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return "no such file (the PEM file of the CA that issued the upstream's certificate)"
        }
        if isDirectory.boolValue { return "is a directory; name the PEM file of the CA itself" }
        guard let data = FileManager.default.contents(atPath: path) else { return "cannot be read (check its permissions)" }
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("PRIVATE KEY-----") {
            return "holds a private key: the gateway needs only the CA's certificate, so keep the key out of this file"
        }
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        var rest = Substring(text), count = 0
        while let start = rest.range(of: begin) {
            count += 1
            guard let stop = rest[start.upperBound...].range(of: end) else {
                return "certificate \(count) has no \(end) line (the file is cut short?)"
            }
            let der = Data(base64Encoded: String(rest[start.upperBound..<stop.lowerBound]), options: .ignoreUnknownCharacters)
            guard let der, der.first == 0x30 else { return "certificate \(count) is damaged: its base64 does not decode to a certificate" }
            rest = rest[stop.upperBound...]
        }
        guard count > 0 else {
            return "holds no PEM certificate (\(begin)); a DER file converts with: openssl x509 -inform der -in ca.der -out ca.pem"
        }
        return nil
    }
}
