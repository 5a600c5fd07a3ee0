import BakeoffCore
import BakeoffTestSupport
import Testing

/// `RadixSort`: the order of a stable comparison sort (`<`, ties in the order given), for every finite double.
@Suite("Radix sort of values")
struct RadixSortTests {
    @Test(arguments: [0, 1, 63, 64, 1_000, 200_000])
    func equalsAStableComparisonSort(count: Int) {
        var rng = SplitMix(seed: UInt64(count) + 3)
        let specials: [Double] = [0, -0.0, -1, 1, 1e-300, -1e-300, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 5e-324]
        let values: [Double] = (0..<count).map { i in
            switch rng.next() % 4 {
            case 0: return specials[Int(rng.next() % UInt64(specials.count))]
            case 1: return Double(rng.next() % 50) / 4          // many ties
            case 2: return -Double(rng.next() % 1_000_000) / 7
            default: return Double(bitPattern: rng.next() >> 2)  // any positive magnitude
            }
        }
        let payload = values.indices.map { $0 }
        let order = values.indices.sorted { values[$0] < values[$1] || (values[$0] == values[$1] && $0 < $1) }
        let (sorted, carried) = RadixSort.sorted(values, carrying: payload)
        #expect(carried == order)
        #expect(sorted.map(\.bitPattern) == order.map { values[$0].bitPattern })
    }
}
