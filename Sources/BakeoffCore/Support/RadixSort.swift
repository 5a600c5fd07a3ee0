/// A stable sort of finite doubles by value, in linear time: the order `sort { $0 < $1 }` gives (equal values,
/// 0 and -0 among them, stay in the order given).
///
/// Why: the dashboard sorts each day's latencies and times to first token as it reads (hundreds of thousands
/// a day, for every quantile field); a least-significant-digit radix sort on the values' bits takes a few
/// passes over them where a comparison sort takes about twenty.
package enum RadixSort {
    /// The value's bits, ordered as the values are (negative values reversed, -0 as 0).
    @inline(__always)
    static func key(_ x: Double) -> UInt64 {
        let bits = (x == 0 ? 0 : x).bitPattern
        return bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
    }

    /// `values` sorted, each with its `payload` element; stable.
    package static func sorted<Payload>(_ values: [Double], carrying payload: [Payload]) -> (values: [Double], payload: [Payload]) {
        precondition(values.count == payload.count)
        let n = values.count
        if n < 64 {
            let order = values.indices.sorted { values[$0] < values[$1] || (values[$0] == values[$1] && $0 < $1) }
            return (order.map { values[$0] }, order.map { payload[$0] })
        }
        var keys = values.map(key), index = Array(0..<n).map { UInt32(truncatingIfNeeded: $0) }
        var keysOut = keys, indexOut = index
        var counts = [Int](repeating: 0, count: 1 << 16)
        for pass in 0..<4 {
            let shift = UInt64(pass * 16)
            for i in counts.indices { counts[i] = 0 }
            for k in keys { counts[Int((k >> shift) & 0xFFFF)] += 1 }
            // Every key with the same digit: this pass would not move anything.
            if counts[Int((keys[0] >> shift) & 0xFFFF)] == n { continue }
            var sum = 0
            for i in counts.indices {
                let c = counts[i]
                counts[i] = sum
                sum += c
            }
            for j in 0..<n {
                let d = Int((keys[j] >> shift) & 0xFFFF)
                let at = counts[d]
                counts[d] = at + 1
                keysOut[at] = keys[j]
                indexOut[at] = index[j]
            }
            swap(&keys, &keysOut)
            swap(&index, &indexOut)
        }
        return (index.map { values[Int($0)] }, index.map { payload[Int($0)] })
    }
}
