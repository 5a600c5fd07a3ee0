import BakeoffStatistics

/// The statistics an eval's analysis uses, in one place: each is BakeoffStatistics' implementation checked
/// against its reference (README, "Each method against its reference").
enum PairedStatistics {
    struct TResult {
        var mean: Double
        var sd: Double
        var ciLow: Double
        var ciHigh: Double
        var p: Double
    }

    /// The paired t test on per-request differences (scipy `ttest_rel` / `ttest_1samp`).
    static func pairedT(_ d: [Double], alpha: Double) -> TResult {
        let t = PairedTTest.test(differences: d, alpha: alpha)
        return TResult(mean: t.meanDifference, sd: t.standardDeviation.isFinite ? t.standardDeviation : 0,
                       ciLow: t.interval.lower, ciHigh: t.interval.upper, p: t.pValue)
    }

    /// Wilcoxon's signed-rank p (scipy `wilcoxon` defaults: zeros dropped, exact for small samples without ties).
    static func wilcoxon(_ d: [Double]) -> Double? {
        guard d.contains(where: { $0 != 0 }) else { return nil }
        return WilcoxonSignedRank.test(differences: d).pValue
    }

    /// The sign test: wins against losses, ties left out (scipy `binomtest`).
    static func signTest(wins: Int, losses: Int) -> Double {
        BinomialTest.pValue(successes: wins, trials: wins + losses)
    }

    /// Requests for the exact sign test to detect `winRate` among decisive requests, a share `tieRate` tied.
    static func requestsForWinRate(_ winRate: Double, tieRate: Double, alpha: Double, power: Double) -> Int? {
        PairedSampleSize.requests(winRate: winRate, tieRate: tieRate, alpha: alpha, power: power)?.requests
    }

    /// Requests for the paired t test to detect a mean difference `delta` with per-request differences of
    /// standard deviation `sd`.
    static func requestsForMeanDifference(_ delta: Double, sd: Double, alpha: Double, power: Double) -> Int? {
        PairedSampleSize.requests(difference: delta, standardDeviation: sd, alpha: alpha, power: power)?.requests
    }
}
