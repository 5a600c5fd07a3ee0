import BakeoffHTTP
import Foundation

/// A throwaway CA and certificates it issued, made with the `openssl` command in a temporary directory: for
/// tests of HTTPS upstreams that check what is trusted and what is not. EC keys (P-256), fast to make.
///
/// Every server certificate shares one key and names 127.0.0.1 and localhost unless said otherwise.
public struct TestCertificates: Sendable {
    public let directory: String
    /// The CA's certificate: what a client is given to trust (`caFile`).
    public var caFile: String { directory + "/ca.pem" }
    /// The servers' private key.
    public var keyFile: String { directory + "/server-key.pem" }
    /// Issued by the CA for 127.0.0.1 and localhost, valid 30 days.
    public var serverFile: String { directory + "/server.pem" }
    /// Issued by the CA, expired yesterday.
    public var expiredFile: String { directory + "/expired.pem" }
    /// Issued by the CA for other.example only.
    public var wrongHostFile: String { directory + "/wrong-host.pem" }
    /// Self-signed for 127.0.0.1 (its own CA).
    public var selfSignedFile: String { directory + "/self-signed.pem" }

    /// Makes them all in a new temporary directory.
    public static func make() throws -> TestCertificates {
        let directory = NSTemporaryDirectory() + "bakeoff-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let c = TestCertificates(directory: directory)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", directory + "/ca-key.pem", "-out", c.caFile, "-days", "30",
                     "-subj", "/CN=Bakeoff Test CA"], in: directory)
        try openssl(["req"] + ec + ["-keyout", c.keyFile, "-out", directory + "/server.csr", "-subj", "/CN=127.0.0.1"], in: directory)
        try c.issue(c.serverFile, names: "IP:127.0.0.1,DNS:localhost", days: 30)
        try c.issue(c.expiredFile, names: "IP:127.0.0.1,DNS:localhost", days: -1)
        try c.issue(c.wrongHostFile, names: "DNS:other.example", days: 30)
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: directory + "/self.ext", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", directory + "/server.csr", "-key", c.keyFile, "-out", c.selfSignedFile,
                     "-days", "30", "-extfile", directory + "/self.ext"], in: directory)
        return c
    }

    /// A server certificate and the shared key, for `HTTPServer.Options.tls`.
    public func tls(_ certificateFile: String) throws -> HTTPServer.TLS {
        HTTPServer.TLS(certificatePEM: try String(contentsOfFile: certificateFile, encoding: .utf8),
                       keyPEM: try String(contentsOfFile: keyFile, encoding: .utf8))
    }

    /// Deletes the directory.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The server's key signed by the CA, for `names` (subjectAltName), valid `days` from now (negative: expired).
    private func issue(_ file: String, names: String, days: Int) throws {
        let ext = file + ".ext"
        try "subjectAltName=\(names)\nextendedKeyUsage=serverAuth\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl(["x509", "-req", "-in", directory + "/server.csr", "-CA", caFile, "-CAkey", directory + "/ca-key.pem",
                          "-CAcreateserial", "-out", file, "-days", String(days), "-extfile", ext], in: directory)
    }

    private static func openssl(_ arguments: [String], in directory: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TestCertificateError(message: "openssl \(arguments.joined(separator: " ")) exited \(p.terminationStatus): \(text)")
        }
    }
}

/// `openssl` failed while making test certificates.
public struct TestCertificateError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
