import BakeoffStatistics
import Foundation
import Testing

private struct BradleyTerryFixture: Decodable {
    struct Row: Decodable {
        var first: Int
        var second: Int
        var outcome: String
        var weight: Double

        var comparison: BradleyTerry.Comparison {
            let o: BradleyTerry.Outcome = outcome == "first" ? .firstWins : (outcome == "second" ? .secondWins : .tie)
            return BradleyTerry.Comparison(first, second, o, weight: weight)
        }
    }
    struct FitCase: Decodable {
        var name: String
        var variantCount: Int
        var control: Int
        var comparisons: [Row]
        var strengths: [Double]
        var winProbabilities: [Double]
        var elo: [Double]
    }
    struct Bootstrap: Decodable {
        var variantCount: Int
        var control: Int
        var replicates: Int
        var confidence: Double
        var seed: UInt64
        var clusters: [[Row]]
        var skipped: Int
        var used: Int
        var strengthLower: [Double]
        var strengthUpper: [Double]
        var winProbabilityLower: [Double]
        var winProbabilityUpper: [Double]
    }
    var fits: [FitCase]
    var bootstrap: Bootstrap
}

private let fixture: BradleyTerryFixture = Fixture.load("bradley_terry")

/// Knuth's MMIX LCG; an index is the state's top 31 bits modulo n (the fixture script does the same).
private struct LCG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
    mutating func index(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func uniform() -> Double { Double(next()) / Double(UInt64(1) << 31) }
}

@Suite("Bradley-Terry (Chatbot Arena's fit) against statsmodels GLM")
struct BradleyTerryTests {
    @Test("strengths, win probabilities against the control and Elo match statsmodels")
    func fits() throws {
        var tally = ErrorTally("BradleyTerry.fit")
        for c in fixture.fits {
            let fit = try BradleyTerry.fit(c.comparisons.map(\.comparison), variantCount: c.variantCount, control: c.control)
            #expect(fit.strengths[c.control] == 0)
            for v in 0..<c.variantCount {
                // Strengths near 0 are compared in absolute terms (1e-12), as everywhere.
                tally.check(fit.strengths[v], c.strengths[v], "\(c.name) s[\(v)]")
                tally.check(fit.winProbabilities[v], c.winProbabilities[v], "\(c.name) p[\(v)]")
                tally.check(fit.eloRatings[v], c.elo[v], "\(c.name) elo[\(v)]")
            }
            #expect(fit.iterations < 30, "\(c.name): \(fit.iterations) iterations")
        }
        tally.report()
    }

    @Test("the order of comparisons and splitting weights does not matter; a tie is half a win each way")
    func aggregation() throws {
        let a = try BradleyTerry.fit([.init(0, 1, .firstWins, weight: 3), .init(1, 0, .firstWins, weight: 2), .init(0, 1, .tie, weight: 2)],
                                     variantCount: 2)
        let b = try BradleyTerry.fit([.init(0, 1, .tie), .init(1, 0, .firstWins), .init(0, 1, .firstWins, weight: 2), .init(0, 1, .secondWins),
                                      .init(0, 1, .firstWins), .init(1, 0, .tie)],
                                     variantCount: 2)
        #expect(abs(a.strengths[1] - b.strengths[1]) < 1e-14)
        // Two variants: 0 scores 4 of 7 (3 wins + half of 2 ties), so s_1 = log(3/4).
        #expect(abs(a.strengths[1] - log(3.0 / 4.0)) < 1e-14)
        #expect(abs(a.winProbabilities[1] - 3.0 / 7.0) < 1e-14)
        #expect(a.winProbabilities[0] == 0.5 && a.eloRatings[0] == 1000)
    }

    @Test("non-identifiable data throw a typed error instead of iterating off to infinity")
    func notIdentifiable() {
        #expect(throws: BradleyTerryError.tooFewVariants(1)) { try BradleyTerry.fit([], variantCount: 1) }
        #expect(throws: BradleyTerryError.controlOutOfRange(3)) { try BradleyTerry.fit([], variantCount: 3, control: 3) }
        let selfComparison = BradleyTerry.Comparison(1, 1, .tie)
        #expect(throws: BradleyTerryError.invalidComparison(selfComparison)) {
            try BradleyTerry.fit([selfComparison], variantCount: 2)
        }
        let negative = BradleyTerry.Comparison(0, 1, .tie, weight: -1)
        #expect(throws: BradleyTerryError.invalidComparison(negative)) { try BradleyTerry.fit([negative], variantCount: 2) }
        // Variant 1 never lost (nor tied).
        #expect(throws: BradleyTerryError.unbounded(neverLost: [1], neverWon: [0])) {
            try BradleyTerry.fit([.init(0, 1, .secondWins, weight: 5)], variantCount: 2)
        }
        // 2 never compared: its own group.
        #expect(throws: BradleyTerryError.disconnected(groups: [[0, 1], [2]])) {
            try BradleyTerry.fit([.init(0, 1, .firstWins), .init(0, 1, .secondWins)], variantCount: 3)
        }
        // {0, 1} and {2, 3} compared within but not across.
        #expect(throws: BradleyTerryError.disconnected(groups: [[0, 1], [2, 3]])) {
            try BradleyTerry.fit([.init(0, 1, .tie), .init(3, 2, .tie)], variantCount: 4)
        }
        // {1, 2} beat 0 and 3 every time; 3 lost to everyone; 0 beat 3.
        #expect(throws: BradleyTerryError.unbounded(neverLost: [1, 2], neverWon: [3])) {
            try BradleyTerry.fit([.init(1, 2, .tie), .init(1, 0, .firstWins), .init(0, 2, .secondWins), .init(0, 3, .firstWins),
                                  .init(3, 2, .secondWins)], variantCount: 4)
        }
        // Only zero weights: nothing compared.
        #expect(throws: BradleyTerryError.disconnected(groups: [[0], [1]])) {
            try BradleyTerry.fit([.init(0, 1, .tie, weight: 0)], variantCount: 2)
        }
    }

    @Test("the bootstrap replays the fixture script's resampling: same skips, same percentiles")
    func bootstrapReplay() throws {
        let b = fixture.bootstrap
        var rng = LCG(state: b.seed)
        let result = try BradleyTerry.bootstrap(
            clusters: b.clusters.map { $0.map(\.comparison) }, variantCount: b.variantCount, control: b.control,
            replicates: b.replicates, confidence: b.confidence, nextIndex: { rng.index($0) })
        #expect(result.replicatesSkipped == b.skipped && result.replicatesUsed == b.used)
        #expect(b.skipped > 0)
        var tally = ErrorTally("BradleyTerry.bootstrap")
        for v in 0..<b.variantCount {
            tally.check(result.strengthIntervals[v].lower, b.strengthLower[v], "s lower \(v)")
            tally.check(result.strengthIntervals[v].upper, b.strengthUpper[v], "s upper \(v)")
            tally.check(result.winProbabilityIntervals[v].lower, b.winProbabilityLower[v], "p lower \(v)")
            tally.check(result.winProbabilityIntervals[v].upper, b.winProbabilityUpper[v], "p upper \(v)")
            tally.check(result.eloIntervals[v].lower, BradleyTerry.elo(b.strengthLower[v]), "elo lower \(v)")
            tally.check(result.eloIntervals[v].upper, BradleyTerry.elo(b.strengthUpper[v]), "elo upper \(v)")
        }
        tally.report()
    }

    @Test("without usable replicates the intervals are the whole range; unidentifiable full data throw")
    func bootstrapEdges() throws {
        var rng = LCG(state: 1)
        let clusters: [[BradleyTerry.Comparison]] = [[.init(0, 1, .firstWins)], [.init(0, 1, .secondWins)]]
        let none = try BradleyTerry.bootstrap(clusters: clusters, variantCount: 2, replicates: 0, nextIndex: { rng.index($0) })
        #expect(none.replicatesUsed == 0 && none.replicatesSkipped == 0)
        #expect(none.strengthIntervals[1] == ConfidenceInterval(lower: -.infinity, upper: .infinity))
        #expect(none.winProbabilityIntervals[1] == ConfidenceInterval(lower: 0, upper: 1))
        #expect(none.strengthIntervals[0] == ConfidenceInterval(lower: 0, upper: 0))
        #expect(throws: BradleyTerryError.unbounded(neverLost: [0], neverWon: [1])) {
            try BradleyTerry.bootstrap(clusters: [[.init(0, 1, .firstWins)]], variantCount: 2, replicates: 10,
                                       nextIndex: { rng.index($0) })
        }
    }

    /// Three variants, requests judged on every pair in both orders; the second order repeats the first half the
    /// time (judgements of one request are dependent). P(first wins) = sigma(delta) - 0.1, P(tie) = 0.2, so the
    /// expected score (win + tie / 2) is sigma(delta) and the Arena fit is consistent for the true strengths.
    @Test("cluster-bootstrap 95% intervals cover the true strengths about 95% of the time")
    func coverage() throws {
        let truth = [0.0, 0.5, -0.3]
        var rng = LCG(state: 2024)
        let runs = 200, requests = 80
        var covered = 0, total = 0, skipped = 0
        for _ in 0..<runs {
            var clusters: [[BradleyTerry.Comparison]] = []
            for _ in 0..<requests {
                var rows: [BradleyTerry.Comparison] = []
                for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                    let p = BradleyTerry.winProbability(truth[a], against: truth[b])
                    func draw() -> BradleyTerry.Outcome {
                        let u = rng.uniform()
                        return u < p - 0.1 ? .firstWins : (u < p + 0.1 ? .tie : .secondWins)
                    }
                    let first = draw()
                    let second = rng.uniform() < 0.5 ? first : draw()
                    rows.append(.init(a, b, first))
                    // The reversed order: b is first.
                    let flipped: BradleyTerry.Outcome = second == .firstWins ? .secondWins : (second == .secondWins ? .firstWins : .tie)
                    rows.append(.init(b, a, flipped))
                }
                clusters.append(rows)
            }
            let result = try BradleyTerry.bootstrap(clusters: clusters, variantCount: 3, replicates: 200, confidence: 0.95,
                                                    nextIndex: { rng.index($0) })
            skipped += result.replicatesSkipped
            for v in [1, 2] {
                total += 1
                let interval = result.strengthIntervals[v]
                if interval.lower <= truth[v] && truth[v] <= interval.upper { covered += 1 }
            }
        }
        let rate = Double(covered) / Double(total)
        if ProcessInfo.processInfo.environment["BAKEOFF_STATS_REPORT"] != nil {
            print("[coverage] BradleyTerry.bootstrap: \(covered) of \(total) (\(rate)), \(skipped) replicates skipped")
        }
        // 400 intervals: 95% +- 2.2% is one standard error; percentile intervals run a little narrow.
        #expect(rate > 0.90 && rate < 0.99, "coverage \(rate)")
    }
}
