/// A chi-square goodness-of-fit result.
public struct GoodnessOfFit: Sendable, Equatable {
    public var statistic: Double
    public var degreesOfFreedom: Double
    public var pValue: Double

    public init(statistic: Double, degreesOfFreedom: Double, pValue: Double) {
        self.statistic = statistic
        self.degreesOfFreedom = degreesOfFreedom
        self.pValue = pValue
    }
}

public enum ChiSquareTest {
    /// Pearson chi-square of observed counts against expected proportions (normalized to the
    /// observed total); == scipy.stats.chisquare(f_obs, f_exp) and gbstats check_srm.
    ///
    /// Like check_srm, cells whose proportion is not positive are left out of the statistic (their
    /// expected count is 0) but still count towards df = k - 1, and an empty sample gives
    /// statistic 0 and p = 1. Mismatched lengths or fewer than two cells give NaN.
    public static func goodnessOfFit(observed: [Double], expectedProportions: [Double]) -> GoodnessOfFit {
        let k = observed.count
        let df = Double(k - 1)
        if k != expectedProportions.count || k < 2 {
            return GoodnessOfFit(statistic: .nan, degreesOfFreedom: df, pValue: .nan)
        }
        let total = observed.reduce(0, +)
        if total == 0 { return GoodnessOfFit(statistic: 0, degreesOfFreedom: df, pValue: 1) }
        let weight = expectedProportions.reduce(0, +)
        var statistic = 0.0
        for (o, w) in zip(observed, expectedProportions) where w > 0 {
            let e = w / weight * total
            statistic += (o - e) * (o - e) / e
        }
        return GoodnessOfFit(statistic: statistic, degreesOfFreedom: df, pValue: ChiSquared.sf(statistic, df: df))
    }
}
