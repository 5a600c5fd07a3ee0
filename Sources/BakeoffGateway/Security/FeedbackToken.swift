import BakeoffHTTP
/// A signed feedback token: lets an app send feedback straight from a browser without holding a client key.
///
/// Every proxied response carries one (`x-bakeoff-feedback-token`). It names the request, its user and an
/// expiry, signed with HMAC-SHA256 under a key from the environment, so `POST /v1/feedback` can accept it in
/// place of the user: whoever holds it got it from that user's response. Format:
/// `bk1.<expiry, seconds since 1970>.<base64url request id>.<base64url signature>`; the user is not in it
/// (the gateway knows the request's user), only in what is signed.
public struct FeedbackTokenSigner: Sendable {
    let key: [UInt8]
    /// `key`, prepared once.
    private let hmac: HMACKey
    /// How long a token is accepted after its response.
    public let lifetimeSeconds: Int64

    public init(key: [UInt8], lifetimeSeconds: Int64) {
        self.key = key
        hmac = HMACKey(key)
        self.lifetimeSeconds = lifetimeSeconds
    }

    /// What a token says once its signature is checked.
    public enum Failure: Error, Equatable, Sendable {
        case malformed, badSignature, expired
    }

    /// A token for `requestID` and `user`, valid until `now + lifetimeSeconds`.
    public func token(requestID: String, user: String, now: Int64) -> String {
        let expiry = now + lifetimeSeconds
        return "bk1.\(expiry).\(Self.base64URL(Array(requestID.utf8))).\(Self.base64URL(signature(requestID: requestID, user: user, expiry: expiry)))"
    }

    /// The request a token names, before anything is checked (nil when it is not a token).
    public static func requestID(of token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "bk1", let bytes = decodeBase64URL(parts[2]) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Checks that `token` was signed here for its request and `user` (that request's user), and has not
    /// expired at `now` (seconds since 1970): nil when it holds, else why not.
    public func verify(_ token: String, user: String, now: Int64) -> Failure? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        // One spelling per token: the expiry in plain digits (no sign, no leading zero).
        guard parts.count == 4, parts[0] == "bk1", parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), parts[1].first != "0",
              let expiry = Int64(parts[1]),
              let request = Self.decodeBase64URL(parts[2]).flatMap({ String(validating: $0, as: UTF8.self) }),
              let given = Self.decodeBase64URL(parts[3]) else {
            return .malformed
        }
        guard constantTimeEqual(given, signature(requestID: request, user: user, expiry: expiry)) else { return .badSignature }
        guard expiry > now else { return .expired }
        return nil
    }

    private func signature(requestID: String, user: String, expiry: Int64) -> [UInt8] {
        // Lengths first, so no two (request, user) pairs give the same message.
        var message = "bk1\n\(requestID.utf8.count):\(requestID)\n\(user.utf8.count):\(user)\n\(expiry)"
        return message.withUTF8 { hmac.authenticate(UnsafeRawBufferPointer($0)) }
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    package static func base64URL(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var v = UInt32(bytes[i]) << 16
            if n > 1 { v |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { v |= UInt32(bytes[i + 2]) }
            for j in 0...n { out.append(alphabet[Int((v >> UInt32(18 - 6 * j)) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func decodeBase64URL(_ text: Substring) -> [UInt8]? {
        var values: [UInt8] = []
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt8(v))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let n = min(4, values.count - i)
            var v: UInt32 = 0
            for j in 0..<4 { v = v << 6 | (j < n ? UInt32(values[i + j]) : 0) }
            for j in 0..<(n - 1) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(16 - 8 * j))) }
            i += 4
        }
        return out
    }
}

/// Compares secrets without an early exit on the first difference.
func constantTimeEqual(_ x: [UInt8], _ y: [UInt8]) -> Bool {
    guard x.count == y.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<x.count { diff |= x[i] ^ y[i] }
    return diff == 0
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool { constantTimeEqual(Array(a.utf8), Array(b.utf8)) }
