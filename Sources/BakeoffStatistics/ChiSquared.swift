/// The chi-square distribution with real degrees of freedom df > 0.
///
/// Through the regularized incomplete gamma function, so both tails keep full relative accuracy.
public enum ChiSquared {
    /// P(X <= x).
    public static func cdf(_ x: Double, df: Double) -> Double {
        if x.isNaN || df.isNaN || df <= 0 { return .nan }
        if x <= 0 { return 0 }
        return Special.regularizedGamma(a: 0.5 * df, x: 0.5 * x).p
    }

    /// P(X > x), accurate deep in the upper tail.
    public static func sf(_ x: Double, df: Double) -> Double {
        if x.isNaN || df.isNaN || df <= 0 { return .nan }
        if x <= 0 { return 1 }
        return Special.regularizedGamma(a: 0.5 * df, x: 0.5 * x).q
    }
}
