// MD5 (RFC 1321), written for the assignment hot loop.
//
// MD5 is used here only because the reference `ABRouter` uses it to place users in buckets; it is not
// used for anything that needs collision resistance.

/// MD5 message digests (RFC 1321).
///
/// Hashing reads contiguous input in place and keeps the partial block in a 64-byte inline buffer, so
/// it does not allocate (only the `[UInt8]` result, or a copy of a non-contiguous sequence, does).
public enum MD5 {
    /// The 16-byte digest of `bytes`, in the usual byte order (the order `hashlib.md5(...).digest()` gives).
    public static func digest<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var context = MD5Context()
        if bytes.withContiguousStorageIfAvailable({ context.update(UnsafeRawBufferPointer($0)) }) == nil {
            let array = Array(bytes)
            array.withUnsafeBytes { context.update($0) }
        }
        return context.finalize().bytes
    }

    /// The digest of the UTF-8 encoding of `string` (byte for byte; no Unicode normalization).
    public static func digest(_ string: String) -> MD5Digest {
        var context = MD5Context()
        var string = string
        string.withUTF8 { context.update(UnsafeRawBufferPointer($0)) }
        return context.finalize()
    }
}

/// A 128-bit MD5 digest.
///
/// Kept as two big-endian halves because the assignment rule reads the digest as one big-endian integer.
public struct MD5Digest: Sendable, Hashable, CustomStringConvertible {
    /// Digest bytes 0..<8 read as a big-endian integer (the high half of the 128-bit value).
    public let high: UInt64
    /// Digest bytes 8..<16 read as a big-endian integer (the low half of the 128-bit value).
    public let low: UInt64

    /// Creates a digest from its two big-endian halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The 16 digest bytes.
    public var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            result[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            result[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        return result
    }

    /// The 32-character lowercase hex form (what `hashlib.md5(...).hexdigest()` prints).
    public var hex: String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: 32) { out in
            digits.withUTF8Buffer { table in
                for i in 0..<16 {
                    let half = i < 8 ? high : low
                    let byte = Int(truncatingIfNeeded: half >> (56 - 8 * UInt64(i & 7))) & 0xff
                    out[2 * i] = table[byte >> 4]
                    out[2 * i + 1] = table[byte & 0x0f]
                }
            }
            return 32
        }
    }

    public var description: String { hex }

    /// The digest read as one big-endian 128-bit integer, modulo `divisor` (exact; `divisor` must be > 0).
    public func remainder(dividingBy divisor: UInt64) -> UInt64 {
        precondition(divisor > 0, "divisor must be positive")
        return divisor.dividingFullWidth((high: high % divisor, low: low)).remainder
    }
}

/// The four 32-bit MD5 chaining words.
struct MD5State: Sendable {
    var a: UInt32 = 0x6745_2301
    var b: UInt32 = 0xefcd_ab89
    var c: UInt32 = 0x98ba_dcfe
    var d: UInt32 = 0x1032_5476

    /// The digest of a message whose last block has been compressed into this state.
    var digest: MD5Digest {
        // Digest bytes are a, b, c, d little-endian; big-endian halves are therefore byte-swapped words.
        MD5Digest(
            high: UInt64(a.byteSwapped) << 32 | UInt64(b.byteSwapped),
            low: UInt64(c.byteSwapped) << 32 | UInt64(d.byteSwapped)
        )
    }

    /// Processes one 64-byte block at `p` (any alignment).
    @inline(__always)
    mutating func compress(_ p: UnsafeRawPointer) {
        @inline(__always) func word(_ i: Int) -> UInt32 {
            UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        }
        let x0 = word(0), x1 = word(1), x2 = word(2), x3 = word(3)
        let x4 = word(4), x5 = word(5), x6 = word(6), x7 = word(7)
        let x8 = word(8), x9 = word(9), x10 = word(10), x11 = word(11)
        let x12 = word(12), x13 = word(13), x14 = word(14), x15 = word(15)
        var a = self.a, b = self.b, c = self.c, d = self.d

        ff(&a, b, c, d, x0, 7, 0xd76aa478)
        ff(&d, a, b, c, x1, 12, 0xe8c7b756)
        ff(&c, d, a, b, x2, 17, 0x242070db)
        ff(&b, c, d, a, x3, 22, 0xc1bdceee)
        ff(&a, b, c, d, x4, 7, 0xf57c0faf)
        ff(&d, a, b, c, x5, 12, 0x4787c62a)
        ff(&c, d, a, b, x6, 17, 0xa8304613)
        ff(&b, c, d, a, x7, 22, 0xfd469501)
        ff(&a, b, c, d, x8, 7, 0x698098d8)
        ff(&d, a, b, c, x9, 12, 0x8b44f7af)
        ff(&c, d, a, b, x10, 17, 0xffff5bb1)
        ff(&b, c, d, a, x11, 22, 0x895cd7be)
        ff(&a, b, c, d, x12, 7, 0x6b901122)
        ff(&d, a, b, c, x13, 12, 0xfd987193)
        ff(&c, d, a, b, x14, 17, 0xa679438e)
        ff(&b, c, d, a, x15, 22, 0x49b40821)

        gg(&a, b, c, d, x1, 5, 0xf61e2562)
        gg(&d, a, b, c, x6, 9, 0xc040b340)
        gg(&c, d, a, b, x11, 14, 0x265e5a51)
        gg(&b, c, d, a, x0, 20, 0xe9b6c7aa)
        gg(&a, b, c, d, x5, 5, 0xd62f105d)
        gg(&d, a, b, c, x10, 9, 0x02441453)
        gg(&c, d, a, b, x15, 14, 0xd8a1e681)
        gg(&b, c, d, a, x4, 20, 0xe7d3fbc8)
        gg(&a, b, c, d, x9, 5, 0x21e1cde6)
        gg(&d, a, b, c, x14, 9, 0xc33707d6)
        gg(&c, d, a, b, x3, 14, 0xf4d50d87)
        gg(&b, c, d, a, x8, 20, 0x455a14ed)
        gg(&a, b, c, d, x13, 5, 0xa9e3e905)
        gg(&d, a, b, c, x2, 9, 0xfcefa3f8)
        gg(&c, d, a, b, x7, 14, 0x676f02d9)
        gg(&b, c, d, a, x12, 20, 0x8d2a4c8a)

        hh(&a, b, c, d, x5, 4, 0xfffa3942)
        hh(&d, a, b, c, x8, 11, 0x8771f681)
        hh(&c, d, a, b, x11, 16, 0x6d9d6122)
        hh(&b, c, d, a, x14, 23, 0xfde5380c)
        hh(&a, b, c, d, x1, 4, 0xa4beea44)
        hh(&d, a, b, c, x4, 11, 0x4bdecfa9)
        hh(&c, d, a, b, x7, 16, 0xf6bb4b60)
        hh(&b, c, d, a, x10, 23, 0xbebfbc70)
        hh(&a, b, c, d, x13, 4, 0x289b7ec6)
        hh(&d, a, b, c, x0, 11, 0xeaa127fa)
        hh(&c, d, a, b, x3, 16, 0xd4ef3085)
        hh(&b, c, d, a, x6, 23, 0x04881d05)
        hh(&a, b, c, d, x9, 4, 0xd9d4d039)
        hh(&d, a, b, c, x12, 11, 0xe6db99e5)
        hh(&c, d, a, b, x15, 16, 0x1fa27cf8)
        hh(&b, c, d, a, x2, 23, 0xc4ac5665)

        ii(&a, b, c, d, x0, 6, 0xf4292244)
        ii(&d, a, b, c, x7, 10, 0x432aff97)
        ii(&c, d, a, b, x14, 15, 0xab9423a7)
        ii(&b, c, d, a, x5, 21, 0xfc93a039)
        ii(&a, b, c, d, x12, 6, 0x655b59c3)
        ii(&d, a, b, c, x3, 10, 0x8f0ccc92)
        ii(&c, d, a, b, x10, 15, 0xffeff47d)
        ii(&b, c, d, a, x1, 21, 0x85845dd1)
        ii(&a, b, c, d, x8, 6, 0x6fa87e4f)
        ii(&d, a, b, c, x15, 10, 0xfe2ce6e0)
        ii(&c, d, a, b, x6, 15, 0xa3014314)
        ii(&b, c, d, a, x13, 21, 0x4e0811a1)
        ii(&a, b, c, d, x4, 6, 0xf7537e82)
        ii(&d, a, b, c, x11, 10, 0xbd3af235)
        ii(&c, d, a, b, x2, 15, 0x2ad7d2bb)
        ii(&b, c, d, a, x9, 21, 0xeb86d391)

        self.a &+= a
        self.b &+= b
        self.c &+= c
        self.d &+= d
    }
}

/// Compresses one block into each of four independent states; lane `i`'s block is at `blocks + i * md5LaneStride`.
///
/// One MD5 is a serial chain of 64 dependent steps, so a single hash leaves most of the CPU idle;
/// interleaving four independent hashes gets about 2.5x as many done per second. The blocks share one
/// base pointer because the 16 state words already use up the general-purpose registers.
func md5Compress4(_ states: inout MD5States4, blocks: UnsafeRawPointer) {
    let x0 = MD5Words(blocks)
    let x1 = MD5Words(blocks + md5LaneStride)
    let x2 = MD5Words(blocks + 2 * md5LaneStride)
    let x3 = MD5Words(blocks + 3 * md5LaneStride)
    var a0 = states.0.a, b0 = states.0.b, c0 = states.0.c, d0 = states.0.d
    var a1 = states.1.a, b1 = states.1.b, c1 = states.1.c, d1 = states.1.d
    var a2 = states.2.a, b2 = states.2.b, c2 = states.2.c, d2 = states.2.d
    var a3 = states.3.a, b3 = states.3.b, c3 = states.3.c, d3 = states.3.d

    ff(&a0, b0, c0, d0, x0[0], 7, 0xd76aa478)
    ff(&a1, b1, c1, d1, x1[0], 7, 0xd76aa478)
    ff(&a2, b2, c2, d2, x2[0], 7, 0xd76aa478)
    ff(&a3, b3, c3, d3, x3[0], 7, 0xd76aa478)
    ff(&d0, a0, b0, c0, x0[1], 12, 0xe8c7b756)
    ff(&d1, a1, b1, c1, x1[1], 12, 0xe8c7b756)
    ff(&d2, a2, b2, c2, x2[1], 12, 0xe8c7b756)
    ff(&d3, a3, b3, c3, x3[1], 12, 0xe8c7b756)
    ff(&c0, d0, a0, b0, x0[2], 17, 0x242070db)
    ff(&c1, d1, a1, b1, x1[2], 17, 0x242070db)
    ff(&c2, d2, a2, b2, x2[2], 17, 0x242070db)
    ff(&c3, d3, a3, b3, x3[2], 17, 0x242070db)
    ff(&b0, c0, d0, a0, x0[3], 22, 0xc1bdceee)
    ff(&b1, c1, d1, a1, x1[3], 22, 0xc1bdceee)
    ff(&b2, c2, d2, a2, x2[3], 22, 0xc1bdceee)
    ff(&b3, c3, d3, a3, x3[3], 22, 0xc1bdceee)
    ff(&a0, b0, c0, d0, x0[4], 7, 0xf57c0faf)
    ff(&a1, b1, c1, d1, x1[4], 7, 0xf57c0faf)
    ff(&a2, b2, c2, d2, x2[4], 7, 0xf57c0faf)
    ff(&a3, b3, c3, d3, x3[4], 7, 0xf57c0faf)
    ff(&d0, a0, b0, c0, x0[5], 12, 0x4787c62a)
    ff(&d1, a1, b1, c1, x1[5], 12, 0x4787c62a)
    ff(&d2, a2, b2, c2, x2[5], 12, 0x4787c62a)
    ff(&d3, a3, b3, c3, x3[5], 12, 0x4787c62a)
    ff(&c0, d0, a0, b0, x0[6], 17, 0xa8304613)
    ff(&c1, d1, a1, b1, x1[6], 17, 0xa8304613)
    ff(&c2, d2, a2, b2, x2[6], 17, 0xa8304613)
    ff(&c3, d3, a3, b3, x3[6], 17, 0xa8304613)
    ff(&b0, c0, d0, a0, x0[7], 22, 0xfd469501)
    ff(&b1, c1, d1, a1, x1[7], 22, 0xfd469501)
    ff(&b2, c2, d2, a2, x2[7], 22, 0xfd469501)
    ff(&b3, c3, d3, a3, x3[7], 22, 0xfd469501)
    ff(&a0, b0, c0, d0, x0[8], 7, 0x698098d8)
    ff(&a1, b1, c1, d1, x1[8], 7, 0x698098d8)
    ff(&a2, b2, c2, d2, x2[8], 7, 0x698098d8)
    ff(&a3, b3, c3, d3, x3[8], 7, 0x698098d8)
    ff(&d0, a0, b0, c0, x0[9], 12, 0x8b44f7af)
    ff(&d1, a1, b1, c1, x1[9], 12, 0x8b44f7af)
    ff(&d2, a2, b2, c2, x2[9], 12, 0x8b44f7af)
    ff(&d3, a3, b3, c3, x3[9], 12, 0x8b44f7af)
    ff(&c0, d0, a0, b0, x0[10], 17, 0xffff5bb1)
    ff(&c1, d1, a1, b1, x1[10], 17, 0xffff5bb1)
    ff(&c2, d2, a2, b2, x2[10], 17, 0xffff5bb1)
    ff(&c3, d3, a3, b3, x3[10], 17, 0xffff5bb1)
    ff(&b0, c0, d0, a0, x0[11], 22, 0x895cd7be)
    ff(&b1, c1, d1, a1, x1[11], 22, 0x895cd7be)
    ff(&b2, c2, d2, a2, x2[11], 22, 0x895cd7be)
    ff(&b3, c3, d3, a3, x3[11], 22, 0x895cd7be)
    ff(&a0, b0, c0, d0, x0[12], 7, 0x6b901122)
    ff(&a1, b1, c1, d1, x1[12], 7, 0x6b901122)
    ff(&a2, b2, c2, d2, x2[12], 7, 0x6b901122)
    ff(&a3, b3, c3, d3, x3[12], 7, 0x6b901122)
    ff(&d0, a0, b0, c0, x0[13], 12, 0xfd987193)
    ff(&d1, a1, b1, c1, x1[13], 12, 0xfd987193)
    ff(&d2, a2, b2, c2, x2[13], 12, 0xfd987193)
    ff(&d3, a3, b3, c3, x3[13], 12, 0xfd987193)
    ff(&c0, d0, a0, b0, x0[14], 17, 0xa679438e)
    ff(&c1, d1, a1, b1, x1[14], 17, 0xa679438e)
    ff(&c2, d2, a2, b2, x2[14], 17, 0xa679438e)
    ff(&c3, d3, a3, b3, x3[14], 17, 0xa679438e)
    ff(&b0, c0, d0, a0, x0[15], 22, 0x49b40821)
    ff(&b1, c1, d1, a1, x1[15], 22, 0x49b40821)
    ff(&b2, c2, d2, a2, x2[15], 22, 0x49b40821)
    ff(&b3, c3, d3, a3, x3[15], 22, 0x49b40821)

    gg(&a0, b0, c0, d0, x0[1], 5, 0xf61e2562)
    gg(&a1, b1, c1, d1, x1[1], 5, 0xf61e2562)
    gg(&a2, b2, c2, d2, x2[1], 5, 0xf61e2562)
    gg(&a3, b3, c3, d3, x3[1], 5, 0xf61e2562)
    gg(&d0, a0, b0, c0, x0[6], 9, 0xc040b340)
    gg(&d1, a1, b1, c1, x1[6], 9, 0xc040b340)
    gg(&d2, a2, b2, c2, x2[6], 9, 0xc040b340)
    gg(&d3, a3, b3, c3, x3[6], 9, 0xc040b340)
    gg(&c0, d0, a0, b0, x0[11], 14, 0x265e5a51)
    gg(&c1, d1, a1, b1, x1[11], 14, 0x265e5a51)
    gg(&c2, d2, a2, b2, x2[11], 14, 0x265e5a51)
    gg(&c3, d3, a3, b3, x3[11], 14, 0x265e5a51)
    gg(&b0, c0, d0, a0, x0[0], 20, 0xe9b6c7aa)
    gg(&b1, c1, d1, a1, x1[0], 20, 0xe9b6c7aa)
    gg(&b2, c2, d2, a2, x2[0], 20, 0xe9b6c7aa)
    gg(&b3, c3, d3, a3, x3[0], 20, 0xe9b6c7aa)
    gg(&a0, b0, c0, d0, x0[5], 5, 0xd62f105d)
    gg(&a1, b1, c1, d1, x1[5], 5, 0xd62f105d)
    gg(&a2, b2, c2, d2, x2[5], 5, 0xd62f105d)
    gg(&a3, b3, c3, d3, x3[5], 5, 0xd62f105d)
    gg(&d0, a0, b0, c0, x0[10], 9, 0x02441453)
    gg(&d1, a1, b1, c1, x1[10], 9, 0x02441453)
    gg(&d2, a2, b2, c2, x2[10], 9, 0x02441453)
    gg(&d3, a3, b3, c3, x3[10], 9, 0x02441453)
    gg(&c0, d0, a0, b0, x0[15], 14, 0xd8a1e681)
    gg(&c1, d1, a1, b1, x1[15], 14, 0xd8a1e681)
    gg(&c2, d2, a2, b2, x2[15], 14, 0xd8a1e681)
    gg(&c3, d3, a3, b3, x3[15], 14, 0xd8a1e681)
    gg(&b0, c0, d0, a0, x0[4], 20, 0xe7d3fbc8)
    gg(&b1, c1, d1, a1, x1[4], 20, 0xe7d3fbc8)
    gg(&b2, c2, d2, a2, x2[4], 20, 0xe7d3fbc8)
    gg(&b3, c3, d3, a3, x3[4], 20, 0xe7d3fbc8)
    gg(&a0, b0, c0, d0, x0[9], 5, 0x21e1cde6)
    gg(&a1, b1, c1, d1, x1[9], 5, 0x21e1cde6)
    gg(&a2, b2, c2, d2, x2[9], 5, 0x21e1cde6)
    gg(&a3, b3, c3, d3, x3[9], 5, 0x21e1cde6)
    gg(&d0, a0, b0, c0, x0[14], 9, 0xc33707d6)
    gg(&d1, a1, b1, c1, x1[14], 9, 0xc33707d6)
    gg(&d2, a2, b2, c2, x2[14], 9, 0xc33707d6)
    gg(&d3, a3, b3, c3, x3[14], 9, 0xc33707d6)
    gg(&c0, d0, a0, b0, x0[3], 14, 0xf4d50d87)
    gg(&c1, d1, a1, b1, x1[3], 14, 0xf4d50d87)
    gg(&c2, d2, a2, b2, x2[3], 14, 0xf4d50d87)
    gg(&c3, d3, a3, b3, x3[3], 14, 0xf4d50d87)
    gg(&b0, c0, d0, a0, x0[8], 20, 0x455a14ed)
    gg(&b1, c1, d1, a1, x1[8], 20, 0x455a14ed)
    gg(&b2, c2, d2, a2, x2[8], 20, 0x455a14ed)
    gg(&b3, c3, d3, a3, x3[8], 20, 0x455a14ed)
    gg(&a0, b0, c0, d0, x0[13], 5, 0xa9e3e905)
    gg(&a1, b1, c1, d1, x1[13], 5, 0xa9e3e905)
    gg(&a2, b2, c2, d2, x2[13], 5, 0xa9e3e905)
    gg(&a3, b3, c3, d3, x3[13], 5, 0xa9e3e905)
    gg(&d0, a0, b0, c0, x0[2], 9, 0xfcefa3f8)
    gg(&d1, a1, b1, c1, x1[2], 9, 0xfcefa3f8)
    gg(&d2, a2, b2, c2, x2[2], 9, 0xfcefa3f8)
    gg(&d3, a3, b3, c3, x3[2], 9, 0xfcefa3f8)
    gg(&c0, d0, a0, b0, x0[7], 14, 0x676f02d9)
    gg(&c1, d1, a1, b1, x1[7], 14, 0x676f02d9)
    gg(&c2, d2, a2, b2, x2[7], 14, 0x676f02d9)
    gg(&c3, d3, a3, b3, x3[7], 14, 0x676f02d9)
    gg(&b0, c0, d0, a0, x0[12], 20, 0x8d2a4c8a)
    gg(&b1, c1, d1, a1, x1[12], 20, 0x8d2a4c8a)
    gg(&b2, c2, d2, a2, x2[12], 20, 0x8d2a4c8a)
    gg(&b3, c3, d3, a3, x3[12], 20, 0x8d2a4c8a)

    hh(&a0, b0, c0, d0, x0[5], 4, 0xfffa3942)
    hh(&a1, b1, c1, d1, x1[5], 4, 0xfffa3942)
    hh(&a2, b2, c2, d2, x2[5], 4, 0xfffa3942)
    hh(&a3, b3, c3, d3, x3[5], 4, 0xfffa3942)
    hh(&d0, a0, b0, c0, x0[8], 11, 0x8771f681)
    hh(&d1, a1, b1, c1, x1[8], 11, 0x8771f681)
    hh(&d2, a2, b2, c2, x2[8], 11, 0x8771f681)
    hh(&d3, a3, b3, c3, x3[8], 11, 0x8771f681)
    hh(&c0, d0, a0, b0, x0[11], 16, 0x6d9d6122)
    hh(&c1, d1, a1, b1, x1[11], 16, 0x6d9d6122)
    hh(&c2, d2, a2, b2, x2[11], 16, 0x6d9d6122)
    hh(&c3, d3, a3, b3, x3[11], 16, 0x6d9d6122)
    hh(&b0, c0, d0, a0, x0[14], 23, 0xfde5380c)
    hh(&b1, c1, d1, a1, x1[14], 23, 0xfde5380c)
    hh(&b2, c2, d2, a2, x2[14], 23, 0xfde5380c)
    hh(&b3, c3, d3, a3, x3[14], 23, 0xfde5380c)
    hh(&a0, b0, c0, d0, x0[1], 4, 0xa4beea44)
    hh(&a1, b1, c1, d1, x1[1], 4, 0xa4beea44)
    hh(&a2, b2, c2, d2, x2[1], 4, 0xa4beea44)
    hh(&a3, b3, c3, d3, x3[1], 4, 0xa4beea44)
    hh(&d0, a0, b0, c0, x0[4], 11, 0x4bdecfa9)
    hh(&d1, a1, b1, c1, x1[4], 11, 0x4bdecfa9)
    hh(&d2, a2, b2, c2, x2[4], 11, 0x4bdecfa9)
    hh(&d3, a3, b3, c3, x3[4], 11, 0x4bdecfa9)
    hh(&c0, d0, a0, b0, x0[7], 16, 0xf6bb4b60)
    hh(&c1, d1, a1, b1, x1[7], 16, 0xf6bb4b60)
    hh(&c2, d2, a2, b2, x2[7], 16, 0xf6bb4b60)
    hh(&c3, d3, a3, b3, x3[7], 16, 0xf6bb4b60)
    hh(&b0, c0, d0, a0, x0[10], 23, 0xbebfbc70)
    hh(&b1, c1, d1, a1, x1[10], 23, 0xbebfbc70)
    hh(&b2, c2, d2, a2, x2[10], 23, 0xbebfbc70)
    hh(&b3, c3, d3, a3, x3[10], 23, 0xbebfbc70)
    hh(&a0, b0, c0, d0, x0[13], 4, 0x289b7ec6)
    hh(&a1, b1, c1, d1, x1[13], 4, 0x289b7ec6)
    hh(&a2, b2, c2, d2, x2[13], 4, 0x289b7ec6)
    hh(&a3, b3, c3, d3, x3[13], 4, 0x289b7ec6)
    hh(&d0, a0, b0, c0, x0[0], 11, 0xeaa127fa)
    hh(&d1, a1, b1, c1, x1[0], 11, 0xeaa127fa)
    hh(&d2, a2, b2, c2, x2[0], 11, 0xeaa127fa)
    hh(&d3, a3, b3, c3, x3[0], 11, 0xeaa127fa)
    hh(&c0, d0, a0, b0, x0[3], 16, 0xd4ef3085)
    hh(&c1, d1, a1, b1, x1[3], 16, 0xd4ef3085)
    hh(&c2, d2, a2, b2, x2[3], 16, 0xd4ef3085)
    hh(&c3, d3, a3, b3, x3[3], 16, 0xd4ef3085)
    hh(&b0, c0, d0, a0, x0[6], 23, 0x04881d05)
    hh(&b1, c1, d1, a1, x1[6], 23, 0x04881d05)
    hh(&b2, c2, d2, a2, x2[6], 23, 0x04881d05)
    hh(&b3, c3, d3, a3, x3[6], 23, 0x04881d05)
    hh(&a0, b0, c0, d0, x0[9], 4, 0xd9d4d039)
    hh(&a1, b1, c1, d1, x1[9], 4, 0xd9d4d039)
    hh(&a2, b2, c2, d2, x2[9], 4, 0xd9d4d039)
    hh(&a3, b3, c3, d3, x3[9], 4, 0xd9d4d039)
    hh(&d0, a0, b0, c0, x0[12], 11, 0xe6db99e5)
    hh(&d1, a1, b1, c1, x1[12], 11, 0xe6db99e5)
    hh(&d2, a2, b2, c2, x2[12], 11, 0xe6db99e5)
    hh(&d3, a3, b3, c3, x3[12], 11, 0xe6db99e5)
    hh(&c0, d0, a0, b0, x0[15], 16, 0x1fa27cf8)
    hh(&c1, d1, a1, b1, x1[15], 16, 0x1fa27cf8)
    hh(&c2, d2, a2, b2, x2[15], 16, 0x1fa27cf8)
    hh(&c3, d3, a3, b3, x3[15], 16, 0x1fa27cf8)
    hh(&b0, c0, d0, a0, x0[2], 23, 0xc4ac5665)
    hh(&b1, c1, d1, a1, x1[2], 23, 0xc4ac5665)
    hh(&b2, c2, d2, a2, x2[2], 23, 0xc4ac5665)
    hh(&b3, c3, d3, a3, x3[2], 23, 0xc4ac5665)

    ii(&a0, b0, c0, d0, x0[0], 6, 0xf4292244)
    ii(&a1, b1, c1, d1, x1[0], 6, 0xf4292244)
    ii(&a2, b2, c2, d2, x2[0], 6, 0xf4292244)
    ii(&a3, b3, c3, d3, x3[0], 6, 0xf4292244)
    ii(&d0, a0, b0, c0, x0[7], 10, 0x432aff97)
    ii(&d1, a1, b1, c1, x1[7], 10, 0x432aff97)
    ii(&d2, a2, b2, c2, x2[7], 10, 0x432aff97)
    ii(&d3, a3, b3, c3, x3[7], 10, 0x432aff97)
    ii(&c0, d0, a0, b0, x0[14], 15, 0xab9423a7)
    ii(&c1, d1, a1, b1, x1[14], 15, 0xab9423a7)
    ii(&c2, d2, a2, b2, x2[14], 15, 0xab9423a7)
    ii(&c3, d3, a3, b3, x3[14], 15, 0xab9423a7)
    ii(&b0, c0, d0, a0, x0[5], 21, 0xfc93a039)
    ii(&b1, c1, d1, a1, x1[5], 21, 0xfc93a039)
    ii(&b2, c2, d2, a2, x2[5], 21, 0xfc93a039)
    ii(&b3, c3, d3, a3, x3[5], 21, 0xfc93a039)
    ii(&a0, b0, c0, d0, x0[12], 6, 0x655b59c3)
    ii(&a1, b1, c1, d1, x1[12], 6, 0x655b59c3)
    ii(&a2, b2, c2, d2, x2[12], 6, 0x655b59c3)
    ii(&a3, b3, c3, d3, x3[12], 6, 0x655b59c3)
    ii(&d0, a0, b0, c0, x0[3], 10, 0x8f0ccc92)
    ii(&d1, a1, b1, c1, x1[3], 10, 0x8f0ccc92)
    ii(&d2, a2, b2, c2, x2[3], 10, 0x8f0ccc92)
    ii(&d3, a3, b3, c3, x3[3], 10, 0x8f0ccc92)
    ii(&c0, d0, a0, b0, x0[10], 15, 0xffeff47d)
    ii(&c1, d1, a1, b1, x1[10], 15, 0xffeff47d)
    ii(&c2, d2, a2, b2, x2[10], 15, 0xffeff47d)
    ii(&c3, d3, a3, b3, x3[10], 15, 0xffeff47d)
    ii(&b0, c0, d0, a0, x0[1], 21, 0x85845dd1)
    ii(&b1, c1, d1, a1, x1[1], 21, 0x85845dd1)
    ii(&b2, c2, d2, a2, x2[1], 21, 0x85845dd1)
    ii(&b3, c3, d3, a3, x3[1], 21, 0x85845dd1)
    ii(&a0, b0, c0, d0, x0[8], 6, 0x6fa87e4f)
    ii(&a1, b1, c1, d1, x1[8], 6, 0x6fa87e4f)
    ii(&a2, b2, c2, d2, x2[8], 6, 0x6fa87e4f)
    ii(&a3, b3, c3, d3, x3[8], 6, 0x6fa87e4f)
    ii(&d0, a0, b0, c0, x0[15], 10, 0xfe2ce6e0)
    ii(&d1, a1, b1, c1, x1[15], 10, 0xfe2ce6e0)
    ii(&d2, a2, b2, c2, x2[15], 10, 0xfe2ce6e0)
    ii(&d3, a3, b3, c3, x3[15], 10, 0xfe2ce6e0)
    ii(&c0, d0, a0, b0, x0[6], 15, 0xa3014314)
    ii(&c1, d1, a1, b1, x1[6], 15, 0xa3014314)
    ii(&c2, d2, a2, b2, x2[6], 15, 0xa3014314)
    ii(&c3, d3, a3, b3, x3[6], 15, 0xa3014314)
    ii(&b0, c0, d0, a0, x0[13], 21, 0x4e0811a1)
    ii(&b1, c1, d1, a1, x1[13], 21, 0x4e0811a1)
    ii(&b2, c2, d2, a2, x2[13], 21, 0x4e0811a1)
    ii(&b3, c3, d3, a3, x3[13], 21, 0x4e0811a1)
    ii(&a0, b0, c0, d0, x0[4], 6, 0xf7537e82)
    ii(&a1, b1, c1, d1, x1[4], 6, 0xf7537e82)
    ii(&a2, b2, c2, d2, x2[4], 6, 0xf7537e82)
    ii(&a3, b3, c3, d3, x3[4], 6, 0xf7537e82)
    ii(&d0, a0, b0, c0, x0[11], 10, 0xbd3af235)
    ii(&d1, a1, b1, c1, x1[11], 10, 0xbd3af235)
    ii(&d2, a2, b2, c2, x2[11], 10, 0xbd3af235)
    ii(&d3, a3, b3, c3, x3[11], 10, 0xbd3af235)
    ii(&c0, d0, a0, b0, x0[2], 15, 0x2ad7d2bb)
    ii(&c1, d1, a1, b1, x1[2], 15, 0x2ad7d2bb)
    ii(&c2, d2, a2, b2, x2[2], 15, 0x2ad7d2bb)
    ii(&c3, d3, a3, b3, x3[2], 15, 0x2ad7d2bb)
    ii(&b0, c0, d0, a0, x0[9], 21, 0xeb86d391)
    ii(&b1, c1, d1, a1, x1[9], 21, 0xeb86d391)
    ii(&b2, c2, d2, a2, x2[9], 21, 0xeb86d391)
    ii(&b3, c3, d3, a3, x3[9], 21, 0xeb86d391)

    states.0.a &+= a0; states.0.b &+= b0; states.0.c &+= c0; states.0.d &+= d0
    states.1.a &+= a1; states.1.b &+= b1; states.1.c &+= c1; states.1.d &+= d1
    states.2.a &+= a2; states.2.b &+= b2; states.2.c &+= c2; states.2.d &+= d2
    states.3.a &+= a3; states.3.b &+= b3; states.3.c &+= c3; states.3.d &+= d3
}

/// A streaming MD5 computation whose partial block is a fixed 64-byte buffer stored inline.
///
/// A value type, so a context that has absorbed a common prefix can be copied and continued per message.
struct MD5Context: Sendable {
    typealias Block = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    private(set) var state = MD5State()
    /// The partial block; only the first `blockCount` bytes are meaningful.
    private(set) var block: Block = (0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var blockCount = 0
    /// Bytes absorbed so far.
    private(set) var length: UInt64 = 0

    init() {}

    /// Absorbs `input`.
    mutating func update(_ input: UnsafeRawBufferPointer) {
        guard var p = input.baseAddress, !input.isEmpty else { return }
        var n = input.count
        length &+= UInt64(n)
        if blockCount > 0 {
            let take = Swift.min(64 - blockCount, n)
            let offset = blockCount
            withUnsafeMutableBytes(of: &block) { buffer in
                buffer.baseAddress!.advanced(by: offset).copyMemory(from: p, byteCount: take)
            }
            blockCount += take
            p += take
            n -= take
            if blockCount < 64 { return }
            compressBlockBuffer()
            blockCount = 0
        }
        while n >= 64 {
            state.compress(p)
            p += 64
            n -= 64
        }
        if n > 0 {
            let rest = n
            withUnsafeMutableBytes(of: &block) { buffer in
                buffer.baseAddress!.copyMemory(from: p, byteCount: rest)
            }
            blockCount = n
        }
    }

    /// Pads, processes the final block(s) and returns the digest.
    mutating func finalize() -> MD5Digest {
        let bitLength = length &* 8
        let used = blockCount
        withUnsafeMutableBytes(of: &block) { buffer in
            buffer[used] = 0x80
            for i in (used + 1)..<64 { buffer[i] = 0 }
        }
        if used >= 56 {
            compressBlockBuffer()
            block = (0, 0, 0, 0, 0, 0, 0, 0)
        }
        block.7 = bitLength.littleEndian
        compressBlockBuffer()
        blockCount = 0
        return state.digest
    }

    private mutating func compressBlockBuffer() {
        let copy = block
        withUnsafeBytes(of: copy) { state.compress($0.baseAddress!) }
    }
}

/// Four MD5 states hashed side by side.
typealias MD5States4 = (MD5State, MD5State, MD5State, MD5State)

/// Distance in bytes between the blocks of consecutive lanes passed to `md5Compress4`.
let md5LaneStride = 128

/// A 64-byte block read as sixteen little-endian 32-bit words.
private struct MD5Words {
    let base: UnsafeRawPointer

    @inline(__always)
    init(_ base: UnsafeRawPointer) {
        self.base = base
    }

    @inline(__always)
    subscript(_ i: Int) -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
    }
}

// The step functions add the term that depends on `b` (the previous step's result) last, and round 2 uses
// `(c & ~d) + (b & d)` (the two terms never share set bits), so the serial chain per step is as short as
// possible: about 8% faster for a single hash.

@inline(__always)
private func md5Rotate(_ x: UInt32, _ s: UInt32) -> UInt32 {
    (x &<< s) | (x &>> (32 &- s))
}

@inline(__always)
private func ff(_ a: inout UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ x: UInt32, _ s: UInt32, _ t: UInt32) {
    a = md5Rotate(a &+ x &+ t &+ (d ^ (b & (c ^ d))), s) &+ b
}

@inline(__always)
private func gg(_ a: inout UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ x: UInt32, _ s: UInt32, _ t: UInt32) {
    a = md5Rotate(a &+ x &+ t &+ (c & ~d) &+ (b & d), s) &+ b
}

@inline(__always)
private func hh(_ a: inout UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ x: UInt32, _ s: UInt32, _ t: UInt32) {
    a = md5Rotate(a &+ x &+ t &+ (b ^ (c ^ d)), s) &+ b
}

@inline(__always)
private func ii(_ a: inout UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ x: UInt32, _ s: UInt32, _ t: UInt32) {
    a = md5Rotate(a &+ x &+ t &+ (c ^ (b | ~d)), s) &+ b
}

