import BakeoffCore
import Testing
import BakeoffReport
import BakeoffSimulation

/// `count` bytes of the pattern `(i * 31 + 7) mod 256`; expected digests came from Python's hashlib.
private func patternBytes(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

@Suite("MD5: RFC 1321 test suite")
struct MD5RFCTests {
    @Test(arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a"
        ),
    ])
    func vector(input: String, expected: String) {
        #expect(MD5.digest(input).hex == expected)
        #expect(hex(MD5.digest(Array(input.utf8))) == expected)
    }
}

@Suite("MD5: padding boundaries and multi-block inputs")
struct MD5LengthTests {
    @Test(arguments: [
        (0, "d41d8cd98f00b204e9800998ecf8427e"),
        (1, "89e74e640b8c46257a29de0616794d5d"),
        (55, "c9e512626618c9980ef21a96597af94c"),
        (56, "ecde7caa08e9f5657c863df107cac60a"),
        (57, "b17b1a018dd6a4d1edda8aca15f17846"),
        (63, "2f0301069e1c40af7f6c8f843b1b13f2"),
        (64, "b6bf87c24b1bc334e2541387a92b981b"),
        (65, "f168246f08b6134d66bd2a10343fa9f1"),
        (119, "d5dc3d8264de3aa24dee105910ee27fe"),
        (120, "bcc139b3848923904860d1eefd6e5923"),
        (127, "27670172396247fa5f68637f13f8933d"),
        (128, "3e85b70ffc8df5c735ecf2a8f14f1bee"),
        (129, "e45ecac9930fe93de302f98ba673ba36"),
        (1000, "2b1e78d5765de9e10495a01412a1cf22"),
        (1_000_000, "c9bd641122080114548d4af2a41a7e11"),
        (1 << 20, "3f2c8bd9cfde6550fdff4b36617c3261"),
    ])
    func patternOfLength(count: Int, expected: String) {
        #expect(hex(MD5.digest(patternBytes(count))) == expected)
    }

    @Test func oneMillionLetterA() {
        #expect(MD5.digest(String(repeating: "a", count: 1_000_000)).hex == "7707d6ae4e027c70eea2a935c2296f21")
    }

    @Test func nonContiguousSequenceMatchesArray() {
        let lazyBytes = (0..<1000).lazy.map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        #expect(hex(MD5.digest(lazyBytes)) == "2b1e78d5765de9e10495a01412a1cf22")
        #expect(MD5.digest(patternBytes(1000)[...]) == MD5.digest(patternBytes(1000)))
    }
}

@Suite("MD5: strings and the digest type")
struct MD5DigestTests {
    @Test func stringsAreHashedAsTheirUTF8Bytes() {
        #expect(MD5.digest("тест-β-🧪微调:café").hex == "404b4efe7d4ddd4cac1b68c207fe618b")
        // No normalization: NFD "e\u{301}" hashes differently from NFC "é" although Swift's == says equal.
        #expect("caf\u{E9}" == "cafe\u{301}")
        #expect(MD5.digest("cafe\u{301}").hex == "10a85865ce7a7d2f0dc3faf37c617a8d")
        #expect(MD5.digest("caf\u{E9}") != MD5.digest("cafe\u{301}"))
    }

    @Test func bytesHexAndDescriptionAgree() {
        let digest = MD5.digest("abc")
        #expect(digest.bytes == MD5.digest(Array("abc".utf8)))
        #expect(digest.description == digest.hex)
        #expect(digest.high == 0x9001_5098_3cd2_4fb0)
        #expect(digest.low == 0xd696_3f7d_28e1_7f72)
        #expect(MD5Digest(high: digest.high, low: digest.low) == digest)
    }

    /// Remainders of the digest as a big-endian 128-bit integer, from Python `int(hexdigest, 16) % m`.
    @Test(arguments: [
        ("a", 6497 as UInt64, 3_343_094 as UInt64, 2_475_215_842_878_177_226 as UInt64),
        ("abc", 3570, 911_680_407, 496_471_913_503_778_008),
        ("message digest", 4400, 525_762_910, 14_851_603_960_480_952_434),
        ("abcdefghijklmnopqrstuvwxyz", 2715, 395_207_012, 12_195_778_647_159_895_962),
    ])
    func remainderIsExact(input: String, mod10000: UInt64, modPrime: UInt64, modLargePrime: UInt64) {
        let digest = MD5.digest(input)
        #expect(digest.remainder(dividingBy: 10_000) == mod10000)
        #expect(digest.remainder(dividingBy: 1_000_000_007) == modPrime)
        #expect(digest.remainder(dividingBy: UInt64.max - 58) == modLargePrime)
    }
}
