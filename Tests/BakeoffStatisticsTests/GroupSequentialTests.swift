import Testing
import BakeoffStatistics

@Suite("Group-sequential boundaries (Lan-DeMets alpha spending)")
struct GroupSequentialTests {
    static let equalLooks = [0.2, 0.4, 0.6, 0.8, 1.0]

    @Test("O'Brien-Fleming-type spending, five equal looks, one-sided 0.025: the published boundaries")
    func obrienFleming() {
        let b = GroupSequential.boundaries(fractions: Self.equalLooks, alpha: 0.025, spending: .obrienFleming)
        for (got, want) in zip(b, [4.877, 3.357, 2.680, 2.290, 2.031]) {
            #expect(abs(got - want) < 2e-3, "\(b)")
        }
    }

    @Test("power family rho 3, five equal looks, one-sided 0.025: spotify-confidence's boundaries")
    func powerFamily() {
        let b = GroupSequential.boundaries(fractions: Self.equalLooks, alpha: 0.025, spending: .power(rho: 3))
        for (got, want) in zip(b, [3.540, 2.974, 2.604, 2.306, 2.045]) {
            #expect(abs(got - want) < 2e-3, "\(b)")
        }
    }

    @Test("one look at the planned size is the fixed-horizon test")
    func singleLook() {
        for spending in [AlphaSpending.obrienFleming, .pocock, .power(rho: 2)] {
            let b = GroupSequential.boundaries(fractions: [1], alpha: 0.025, spending: spending)
            #expect(abs(b[0] - 1.959964) < 1e-4)
        }
    }
}
