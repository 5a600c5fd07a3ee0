import BakeoffStatistics
import Testing

private struct WilcoxonFixture: Decodable {
    /// A p-value, or [p-value, z] for the normal approximation.
    struct Value: Decodable {
        var pValue: Double
        var z: Double?
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let p = try? container.decode(Double.self) {
                pValue = p
            } else {
                let pair = try container.decode([Double].self)
                pValue = pair[0]
                z = pair[1]
            }
        }
    }
    struct Group: Decodable {
        var zeroMethod: String
        var alternative: String
        var statistic: Double
        var autoUses: String
        var pValues: [String: Value]
    }
    struct Sample: Decodable {
        var name: String
        var differences: [Double]
        var hodgesLehmann: Double
        var results: [Group]
    }
    struct Estimate: Decodable {
        var differences: [Double]
        var hodgesLehmann: Double
    }
    var cases: [Sample]
    var hodgesLehmann: [Estimate]
}

private let fixture: WilcoxonFixture = Fixture.load("wilcoxon")

private func alternative(_ scipyName: String) -> Alternative {
    switch scipyName {
    case "greater": return .larger
    case "less": return .smaller
    default: return .twoSided
    }
}

@Suite("Wilcoxon signed-rank test against scipy 1.17.1 wilcoxon")
struct WilcoxonSignedRankTests {
    @Test("statistic, p-value and z match scipy", arguments: WilcoxonSignedRank.ZeroMethod.allCases)
    func matchesScipy(zeroMethod: WilcoxonSignedRank.ZeroMethod) {
        var pTally = ErrorTally("WilcoxonSignedRank p \(zeroMethod)")
        var zTally = ErrorTally("WilcoxonSignedRank z \(zeroMethod)")
        var methodsSeen = Set<String>()
        for sample in fixture.cases {
            for group in sample.results where group.zeroMethod == zeroMethod.rawValue {
                for (key, expected) in group.pValues {
                    let parts = key.split(separator: "-")
                    guard let method = WilcoxonSignedRank.Method(rawValue: String(parts[0])) else {
                        Issue.record("unknown method key \(key)")
                        continue
                    }
                    let correction = parts.count > 1
                    let got = WilcoxonSignedRank.test(
                        differences: sample.differences, zeroMethod: zeroMethod, correction: correction,
                        alternative: alternative(group.alternative), method: method)
                    let context = "\(sample.name) \(group.alternative) \(key)"
                    #expect(got.statistic == group.statistic, "\(context): statistic \(got.statistic) vs \(group.statistic)")
                    // r+ is the one-sided statistic, min(r+, r-) the two-sided; the rank sums add up to all ranks
                    // (Pratt's zeros count in neither).
                    #expect(got.statistic == (group.alternative == "two-sided"
                        ? min(got.positiveRankSum, got.negativeRankSum) : got.positiveRankSum))
                    let n = Double(got.ranked)
                    if zeroMethod != .pratt {
                        #expect(got.positiveRankSum + got.negativeRankSum == n * (n + 1) / 2, "\(context)")
                    }
                    #expect(got.zeros == sample.differences.filter { $0 == 0 }.count)
                    #expect(got.ranked == (zeroMethod == .wilcox ? sample.differences.count - got.zeros : sample.differences.count))
                    pTally.check(got.pValue, expected.pValue, context)
                    let used = method == .auto ? WilcoxonSignedRank.Method(rawValue: group.autoUses)! : method
                    #expect(got.method == used, "\(context): used \(got.method)")
                    methodsSeen.insert("\(key) -> \(got.method)")
                    if let z = expected.z {
                        zTally.check(got.z ?? .nan, z, context)
                    } else if used != .approx {
                        #expect(got.z == nil, "\(context)")
                    }
                    #expect(got.hodgesLehmann == sample.hodgesLehmann, "\(context): HL \(got.hodgesLehmann)")
                }
            }
        }
        // 'auto' reaches every method it can choose.
        #expect(methodsSeen.contains("auto -> exact") && methodsSeen.contains("auto -> permutation")
                && methodsSeen.contains("auto -> approx"))
        #expect(pTally.count > 300)
        pTally.report()
        zTally.report()
    }

    @Test("Hodges-Lehmann estimate equals numpy's median of the Walsh averages")
    func hodgesLehmann() {
        for e in fixture.hodgesLehmann {
            #expect(WilcoxonSignedRank.hodgesLehmann(e.differences) == e.hodgesLehmann, "n \(e.differences.count)")
        }
        #expect(WilcoxonSignedRank.hodgesLehmann([]) == 0)
        #expect(WilcoxonSignedRank.hodgesLehmann([1, .nan]).isNaN)
    }

    @Test("the selection agrees with listing every Walsh average", arguments: [1, 2, 5, 60, 200, 301])
    func selectionAgreesWithBruteForce(n: Int) {
        var state: UInt64 = UInt64(n) &* 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
        // Coarse values, so that many averages tie.
        let d = (0..<n).map { _ in ((next() - 0.3) * 20).rounded() / 4 }
        var averages: [Double] = []
        for i in 0..<n { for j in i..<n { averages.append((d[i] + d[j]) / 2) } }
        averages.sort()
        let m = averages.count
        let median = m % 2 == 1 ? averages[m / 2] : (averages[m / 2 - 1] + averages[m / 2]) / 2
        #expect(WilcoxonSignedRank.hodgesLehmann(d) == median)
    }

    @Test("paired arrays give the test of variant - control")
    func pairedArrays() {
        let variant = [3.0, 4.5, 2.0, 5.0, 4.0, 3.5, 4.0]
        let control = [2.0, 4.0, 2.5, 3.0, 4.0, 2.0, 3.25]
        let a = WilcoxonSignedRank.test(variant: variant, control: control, zeroMethod: .pratt, alternative: .larger)
        let b = WilcoxonSignedRank.test(differences: zip(variant, control).map { $0 - $1 }, zeroMethod: .pratt, alternative: .larger)
        #expect(a == b)
        #expect(a.zeros == 1 && a.ranked == 7 && a.method == .permutation)
    }

    @Test("no non-zero difference: p = 1 for every method (scipy: NaN with the normal approximation)")
    func noDifferences() {
        for d in [[], [0.0, 0, 0], [Double](repeating: 0, count: 60)] {
            for zeroMethod in WilcoxonSignedRank.ZeroMethod.allCases {
                for method in WilcoxonSignedRank.Method.allCases {
                    for alt in [Alternative.twoSided, .larger, .smaller] {
                        let r = WilcoxonSignedRank.test(differences: d, zeroMethod: zeroMethod, alternative: alt, method: method)
                        #expect(r.pValue == 1, "n \(d.count) \(zeroMethod) \(method) \(alt)")
                        #expect(r.hodgesLehmann == 0)
                        #expect(r.z == nil || r.z == 0)
                    }
                }
            }
        }
    }

    @Test("NaN differences give NaN")
    func nan() {
        let r = WilcoxonSignedRank.test(differences: [1, 2, .nan])
        #expect(r.pValue.isNaN && r.statistic.isNaN && r.hodgesLehmann.isNaN)
    }
}
