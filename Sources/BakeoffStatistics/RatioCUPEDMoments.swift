/// Per-user sufficient statistics of a ratio metric after exposure (m_i / d_i summed over users) and
/// the same metric before the experiment (the covariate, mp_i / dp_i): what CUPED needs for a ratio
/// of per-user sums.
///
/// A per-user mean metric is the special case d_i = dp_i = 1. Users without pre-experiment data enter
/// with mp_i = dp_i = 0, as gbstats does for missing covariates.
public struct RatioCUPEDMoments: Sendable, Equatable {
    /// Users.
    public var n: Double
    /// Post-exposure numerators m_i and denominators d_i.
    public var numerator: SampleMoments
    public var denominator: SampleMoments
    /// Pre-experiment numerators mp_i and denominators dp_i.
    public var preNumerator: SampleMoments
    public var preDenominator: SampleMoments
    /// Σ m·d, Σ mp·dp, Σ m·mp, Σ d·dp, Σ m·dp, Σ d·mp.
    public var numeratorDenominator: Double
    public var preNumeratorPreDenominator: Double
    public var numeratorPreNumerator: Double
    public var denominatorPreDenominator: Double
    public var numeratorPreDenominator: Double
    public var denominatorPreNumerator: Double

    public init(
        n: Double, numerator: SampleMoments, denominator: SampleMoments, preNumerator: SampleMoments,
        preDenominator: SampleMoments, numeratorDenominator: Double, preNumeratorPreDenominator: Double,
        numeratorPreNumerator: Double, denominatorPreDenominator: Double, numeratorPreDenominator: Double,
        denominatorPreNumerator: Double
    ) {
        self.n = n
        self.numerator = numerator
        self.denominator = denominator
        self.preNumerator = preNumerator
        self.preDenominator = preDenominator
        self.numeratorDenominator = numeratorDenominator
        self.preNumeratorPreDenominator = preNumeratorPreDenominator
        self.numeratorPreNumerator = numeratorPreNumerator
        self.denominatorPreDenominator = denominatorPreDenominator
        self.numeratorPreDenominator = numeratorPreDenominator
        self.denominatorPreNumerator = denominatorPreNumerator
    }

    /// All zero.
    public init() {
        let zero = SampleMoments(n: 0, sum: 0, sumOfSquares: 0)
        self.init(
            n: 0, numerator: zero, denominator: zero, preNumerator: zero, preDenominator: zero, numeratorDenominator: 0,
            preNumeratorPreDenominator: 0, numeratorPreNumerator: 0, denominatorPreDenominator: 0,
            numeratorPreDenominator: 0, denominatorPreNumerator: 0)
    }

    /// Adds one user: post-exposure m / d and pre-experiment mp / dp.
    public mutating func add(numerator m: Double, denominator d: Double, preNumerator mp: Double, preDenominator dp: Double) {
        n += 1
        numerator.add(m)
        denominator.add(d)
        preNumerator.add(mp)
        preDenominator.add(dp)
        numeratorDenominator += m * d
        preNumeratorPreDenominator += mp * dp
        numeratorPreNumerator += m * mp
        denominatorPreDenominator += d * dp
        numeratorPreDenominator += m * dp
        denominatorPreNumerator += d * mp
    }

    /// The post-exposure ratio alone, as the unadjusted test sees it.
    public var post: RatioMoments {
        RatioMoments(n: n, numerator: numerator, denominator: denominator, sumOfProducts: numeratorDenominator)
    }

    /// The pre-experiment ratio alone.
    public var pre: RatioMoments {
        RatioMoments(n: n, numerator: preNumerator, denominator: preDenominator, sumOfProducts: preNumeratorPreDenominator)
    }

    /// The moments of two disjoint sets of users together.
    public static func += (lhs: inout RatioCUPEDMoments, rhs: RatioCUPEDMoments) {
        lhs.n += rhs.n
        lhs.numerator += rhs.numerator
        lhs.denominator += rhs.denominator
        lhs.preNumerator += rhs.preNumerator
        lhs.preDenominator += rhs.preDenominator
        lhs.numeratorDenominator += rhs.numeratorDenominator
        lhs.preNumeratorPreDenominator += rhs.preNumeratorPreDenominator
        lhs.numeratorPreNumerator += rhs.numeratorPreNumerator
        lhs.denominatorPreDenominator += rhs.denominatorPreDenominator
        lhs.numeratorPreDenominator += rhs.numeratorPreDenominator
        lhs.denominatorPreNumerator += rhs.denominatorPreNumerator
    }
}
