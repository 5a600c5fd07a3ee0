import BakeoffGateway
import Foundation
import Synchronization
import Testing
import BakeoffCore
import BakeoffHTTP

@Suite("SHA-256, HMAC and feedback tokens")
struct SecurityTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// FIPS 180-4 / NIST example vectors, plus lengths around the padding boundary (checked with Python's hashlib).
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (String(repeating: "a", count: 55), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        (String(repeating: "a", count: 56), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
        (String(repeating: "a", count: 64), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        (String(repeating: "a", count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
    ])
    func sha256MatchesReferenceVectors(_ input: String, _ digest: String) {
        #expect(Self.hex(SHA256.hash(Array(input.utf8))) == digest)
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    @Test func hmacMatchesRFC4231() {
        #expect(Self.hex(hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(Self.hex(hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Self.hex(hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func aTokenVerifiesForItsRequestAndUserOnly() {
        let signer = FeedbackTokenSigner(key: Array("0123456789abcdef0123456789abcdef".utf8), lifetimeSeconds: 3600)
        let token = signer.token(requestID: "req_1", user: "alice", now: 1_000)
        #expect(FeedbackTokenSigner.requestID(of: token) == "req_1")
        #expect(signer.verify(token, user: "alice", now: 1_001) == nil)
        #expect(signer.verify(token, user: "bob", now: 1_001) == .badSignature)
        #expect(signer.verify(token, user: "alice", now: 4_600) == .expired)
        // Another key, a changed expiry or request, and garbage.
        let other = FeedbackTokenSigner(key: Array("another key of 32 bytes, enough!".utf8), lifetimeSeconds: 3600)
        #expect(other.verify(token, user: "alice", now: 1_001) == .badSignature)
        var parts = token.split(separator: ".").map(String.init)
        parts[1] = "999999999999"
        #expect(signer.verify(parts.joined(separator: "."), user: "alice", now: 1_001) == .badSignature)
        parts = token.split(separator: ".").map(String.init)
        parts[2] = FeedbackTokenSigner.base64URL(Array("req_2".utf8))
        #expect(signer.verify(parts.joined(separator: "."), user: "alice", now: 1_001) == .badSignature)
        // The expiry has one spelling: no sign, no leading zero.
        let expiry = token.split(separator: ".")[1]
        for other in ["+\(expiry)", "0\(expiry)"] {
            #expect(signer.verify(token.replacingOccurrences(of: ".\(expiry).", with: ".\(other)."), user: "alice", now: 1_001) == .malformed)
        }
        for junk in ["", "bk1", "bk1.x.y.z", "bk1.5.!!.AAAA", "bk2." + token.dropFirst(4)] {
            #expect(signer.verify(junk, user: "alice", now: 1_001) == .malformed, "\(junk)")
        }
    }

    @Test(arguments: [[UInt8](), [0], [0, 1], [0, 1, 2], Array(0...255)])
    func base64URLRoundTrips(_ bytes: [UInt8]) {
        let text = FeedbackTokenSigner.base64URL(bytes)
        #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
        #expect(FeedbackTokenSigner.decodeBase64URL(Substring(text)) == bytes)
    }

    @Test func feedbackNamesAreIdentifiers() {
        for ok in ["csat", "task_completed", "a.b-c_9", String(repeating: "x", count: 64)] { #expect(Gateway.isFeedbackName(ok), "\(ok)") }
        for bad in ["", "with space", "[x](https://evil.example)", "é", "a\nb", String(repeating: "x", count: 65)] {
            #expect(!Gateway.isFeedbackName(bad), "\(bad)")
        }
    }

    @Test func theFeedbackLedgerCapsEachKeyAndGivesBackFailures() {
        let ledger = FeedbackLedger(limit: 3)
        var loads = 0
        let stored = { () -> Int in loads += 1; return 1 }
        #expect(ledger.take("a", stored: stored))
        #expect(ledger.take("a", stored: stored))
        #expect(!ledger.take("a", stored: stored))  // 1 stored + 2 taken
        ledger.giveBack("a")
        #expect(ledger.take("a", stored: stored))
        #expect(loads == 1)
        #expect(ledger.take("b", stored: { 0 }))
    }
}

@Suite("Rate-limited log lines")
struct RateLimitedLogTests {
    @Test func oneLinePerTopicAndIntervalWithTheCountHeldBack() {
        let lines = Mutex<[String]>([])
        let log = RateLimitedLog(interval: 10) { line in lines.withLock { $0.append(line) } }
        let s: UInt64 = 1_000_000_000
        log.note("a", "a failed", now: 1 * s)
        log.note("a", "a failed", now: 2 * s)
        log.note("a", "a failed", now: 3 * s)
        log.note("b", "b failed", now: 3 * s)
        log.note("a", "a failed again", now: 12 * s)
        #expect(lines.withLock { $0 } == ["a failed", "b failed", "a failed again (2 more like it in the last 10 s)"])
    }
}
