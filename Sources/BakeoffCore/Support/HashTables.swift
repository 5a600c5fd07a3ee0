#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 64-bit hash of a byte string, for keying conversations, requests and users in the analysis.
///
/// Why not `Hasher`: it is randomly seeded per process and slower on short keys; the analysis needs a
/// fast, stable hash of raw bytes taken straight from the input buffer.
@inlinable
func hashBytes(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    let count = bytes.count
    var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ (UInt64(truncatingIfNeeded: count) &* 0x9E37_79B9_7F4A_7C15)
    guard let base = bytes.baseAddress else { return finalizeHash(h) }
    var i = 0
    while i + 8 <= count {
        let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ mix64(w)) &* 0x9FB2_1C65_1E98_DF25
        h = (h << 29) | (h >> 35)
        i += 8
    }
    if i < count {
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            i += 1
        }
        h = (h ^ mix64(tail ^ 0xA5A5_A5A5_A5A5_A5A5)) &* 0x9FB2_1C65_1E98_DF25
    }
    return finalizeHash(h)
}

@inlinable
func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

@inlinable
func finalizeHash(_ h: UInt64) -> UInt64 {
    let z = mix64(h)
    return z == 0 ? 1 : z  // 0 marks an empty slot
}

/// Linear-probing slots of (64-bit key hash, dense index); the two tables below share it.
struct ProbeTable {
    private var keys: [UInt64]
    private var values: [Int32]
    private var mask: Int
    private(set) var count: Int = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: 0, count: size)
        values = Array(repeating: -1, count: size)
        mask = size - 1
    }

    /// The index stored under `key` for which `matches` holds, or nil.
    @inline(__always)
    func find(_ key: UInt64, _ matches: (Int) -> Bool) -> Int? {
        var slot = Int(truncatingIfNeeded: key) & mask
        while true {
            let k = keys[slot]
            if k == 0 { return nil }
            if k == key && matches(Int(values[slot])) { return Int(values[slot]) }
            slot = (slot + 1) & mask
        }
    }

    /// The index stored under `key` for which `matches` holds, else stores `count` (the next index) there.
    @inline(__always)
    mutating func findOrInsert(_ key: UInt64, _ matches: (Int) -> Bool) -> (index: Int, inserted: Bool) {
        if count * 10 >= keys.count * 7 { grow() }
        var slot = Int(truncatingIfNeeded: key) & mask
        while true {
            let k = keys[slot]
            if k == 0 { break }
            if k == key && matches(Int(values[slot])) { return (Int(values[slot]), false) }
            slot = (slot + 1) & mask
        }
        keys[slot] = key
        values[slot] = Int32(truncatingIfNeeded: count)
        count += 1
        return (count - 1, true)
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = keys.count * 2
        keys = Array(repeating: 0, count: size)
        values = Array(repeating: -1, count: size)
        mask = size - 1
        for i in 0..<oldKeys.count where oldKeys[i] != 0 {
            var slot = Int(truncatingIfNeeded: oldKeys[i]) & mask
            while keys[slot] != 0 { slot = (slot + 1) & mask }
            keys[slot] = oldKeys[i]
            values[slot] = oldValues[i]
        }
    }

}

/// Open-addressing map from a 64-bit key hash to a dense index, assigned in insertion order.
///
/// Conversations and requests are keyed by the hash of their id alone: with 10 million ids the chance
/// that two of them share a 64-bit hash is about 3 in a million, and storing the ids would cost more
/// memory than everything else the analysis keeps.
struct HashIndex {
    private var table: ProbeTable

    init(capacity: Int = 1024) { table = ProbeTable(capacity: capacity) }

    var count: Int { table.count }

    /// The index for `key`, inserting it with the next index when absent.
    @inline(__always)
    mutating func findOrInsert(_ key: UInt64) -> (index: Int, inserted: Bool) {
        table.findOrInsert(key) { _ in true }
    }

    func find(_ key: UInt64) -> Int? { table.find(key) { _ in true } }
}

/// Map from byte-string keys to dense indices that keeps the keys, so equal hashes never merge two keys.
///
/// Used for users (and experiment and variant names), whose ids the report needs back and whose
/// number bounds the analysis' memory.
struct InternTable {
    private var table: ProbeTable
    private var storage: [UInt8] = []
    private var offsets: [Int] = [0]
    var count: Int { offsets.count - 1 }

    init(capacity: Int = 64) { table = ProbeTable(capacity: capacity) }

    mutating func findOrInsert(_ bytes: UnsafeRawBufferPointer) -> (index: Int, inserted: Bool) {
        let h = hashBytes(bytes)
        if let existing = table.find(h, { InternTable.equal(storage, offsets, $0, bytes) }) { return (existing, false) }
        let result = table.findOrInsert(h) { _ in false }  // a new slot for a new key
        storage.append(contentsOf: bytes)
        offsets.append(storage.count)
        return result
    }

    mutating func findOrInsert(_ string: String) -> Int {
        var s = string
        return s.withUTF8 { findOrInsert(UnsafeRawBufferPointer($0)).index }
    }

    func find(_ bytes: UnsafeRawBufferPointer) -> Int? {
        table.find(hashBytes(bytes)) { InternTable.equal(storage, offsets, $0, bytes) }
    }

    func find(_ string: String) -> Int? {
        var s = string
        return s.withUTF8 { find(UnsafeRawBufferPointer($0)) }
    }

    private static func equal(_ storage: [UInt8], _ offsets: [Int], _ id: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let start = offsets[id], end = offsets[id + 1]
        guard end - start == bytes.count else { return false }
        guard bytes.count > 0 else { return true }
        return storage.withUnsafeBytes { all in
            memcmp(all.baseAddress! + start, bytes.baseAddress!, bytes.count) == 0
        }
    }

    func string(_ id: Int) -> String {
        String(decoding: storage[offsets[id]..<offsets[id + 1]], as: UTF8.self)
    }
}
