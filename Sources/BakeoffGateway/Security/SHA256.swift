import BakeoffHTTP
/// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for signing feedback tokens.
///
/// Why our own: the toolchain has no crypto module on Linux and no package can be fetched; both are short,
/// and tested against the NIST and RFC 4231 vectors.
public struct SHA256: Sendable {
    private var h0: UInt32 = 0x6a09e667, h1: UInt32 = 0xbb67ae85, h2: UInt32 = 0x3c6ef372, h3: UInt32 = 0xa54ff53a
    private var h4: UInt32 = 0x510e527f, h5: UInt32 = 0x9b05688c, h6: UInt32 = 0x1f83d9ab, h7: UInt32 = 0x5be0cd19
    /// The bytes of an incomplete block (fewer than 64).
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) != nil { return }
        Array(bytes).withUnsafeBytes { update($0) }
    }

    /// Whole blocks straight from the caller's bytes; only a partial block is copied.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress else { return }
        var n = bytes.count
        length &+= UInt64(n)
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, n)
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
            p += take
            n -= take
            guard buffer.count == 64 else { return }
            buffer.withUnsafeBytes { compress($0.baseAddress!) }
            buffer.removeAll(keepingCapacity: true)
        }
        while n >= 64 {
            compress(p)
            p += 64
            n -= 64
        }
        if n > 0 { buffer.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n)) }
    }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        // The last one or two blocks, on the stack.
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
            let used = buffer.count
            buffer.withUnsafeBytes { tail.baseAddress!.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(tail.baseAddress!), byteCount: used) }
            tail[used] = 0x80
            let total = used + 1 > 56 ? 128 : 64
            for i in (used + 1)..<(total - 8) { tail[i] = 0 }
            for i in 0..<8 { tail[total - 1 - i] = UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8)) }
            compress(UnsafeRawPointer(tail.baseAddress!))
            if total == 128 { compress(UnsafeRawPointer(tail.baseAddress! + 64)) }
        }
        buffer = []
        let words = (h0, h1, h2, h3, h4, h5, h6, h7)
        return [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            withUnsafeBytes(of: words) { raw in
                for j in 0..<8 {
                    let word = raw.load(fromByteOffset: j * 4, as: UInt32.self)
                    out[j * 4] = UInt8(truncatingIfNeeded: word >> 24)
                    out[j * 4 + 1] = UInt8(truncatingIfNeeded: word >> 16)
                    out[j * 4 + 2] = UInt8(truncatingIfNeeded: word >> 8)
                    out[j * 4 + 3] = UInt8(truncatingIfNeeded: word)
                }
            }
            count = 32
        }
    }

    public static func hash<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    /// One 64-byte block (no allocation: the schedule lives on the stack).
    private mutating func compress(_ block: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            Self.k.withUnsafeBufferPointer { k in
                for i in 0..<16 {
                    w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                }
                for i in 16..<64 {
                    let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                    let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7
                for i in 0..<64 {
                    let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = h &+ s1 &+ ch &+ k[i] &+ w[i]
                    let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ maj
                    h = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                }
                h0 &+= a; h1 &+= b; h2 &+= c; h3 &+= d
                h4 &+= e; h5 &+= f; h6 &+= g; h7 &+= h
            }
        }
    }

    @inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}

/// A key ready for HMAC-SHA256: the hash states after its inner and outer pads, computed once, so each
/// message costs its own blocks and one more (instead of two more, and the key's preparation).
public struct HMACKey: Sendable {
    private let inner: SHA256
    private let outer: SHA256

    public init(_ key: [UInt8]) {
        var k = key.count > 64 ? SHA256.hash(key) : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        var inner = SHA256()
        inner.update(k.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(k.map { $0 ^ 0x5c })
        self.inner = inner
        self.outer = outer
    }

    public func authenticate(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var i = inner
        i.update(message)
        var o = outer
        o.update(i.finalize())
        return o.finalize()
    }

    public func authenticate(_ message: [UInt8]) -> [UInt8] { message.withUnsafeBytes { authenticate($0) } }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    HMACKey(key).authenticate(message)
}
