/// Count, sum and sum of squares of per-unit values (gbstats SampleMeanStatistic).
///
/// Sufficient statistics rather than raw values, so groups can be accumulated in one pass and
/// merged. Degenerate cases follow gbstats: mean 0 when n = 0, variance 0 when n <= 1.
public struct SampleMoments: Sendable, Equatable {
    public var n: Double
    public var sum: Double
    public var sumOfSquares: Double

    public init(n: Double, sum: Double, sumOfSquares: Double) {
        self.n = n
        self.sum = sum
        self.sumOfSquares = sumOfSquares
    }

    /// sum / n (0 when n = 0).
    public var mean: Double {
        n == 0 ? 0 : sum / n
    }

    /// Sample variance (sumOfSquares - sum^2 / n) / (n - 1), as gbstats computes it.
    ///
    /// 0 when n <= 1; a value that rounding pushes below zero (constant data) is reported as 0.
    public var variance: Double {
        if n <= 1 { return 0 }
        return max(0, (sumOfSquares - sum * sum / n) / (n - 1))
    }

    /// Adds one unit's value.
    public mutating func add(_ x: Double) {
        n += 1
        sum += x
        sumOfSquares += x * x
    }
}

/// Per-user numerator/denominator sums for a ratio metric (gbstats RatioStatistic).
///
/// The mean is the ratio of sums and its variance comes from the delta method, so users (not
/// events) are the independent units.
public struct RatioMoments: Sendable, Equatable {
    /// Users.
    public var n: Double
    /// Per-user sums m_i.
    public var numerator: SampleMoments
    /// Per-user unit counts d_i.
    public var denominator: SampleMoments
    /// Sum of m_i * d_i.
    public var sumOfProducts: Double

    public init(n: Double, numerator: SampleMoments, denominator: SampleMoments, sumOfProducts: Double) {
        self.n = n
        self.numerator = numerator
        self.denominator = denominator
        self.sumOfProducts = sumOfProducts
    }

    /// All zero.
    public init() {
        self.init(
            n: 0, numerator: SampleMoments(n: 0, sum: 0, sumOfSquares: 0),
            denominator: SampleMoments(n: 0, sum: 0, sumOfSquares: 0), sumOfProducts: 0)
    }

    /// Adds one user with numerator m and denominator d.
    public mutating func add(numerator m: Double, denominator d: Double) {
        n += 1
        numerator.add(m)
        denominator.add(d)
        sumOfProducts += m * d
    }

    /// Sum of numerators / sum of denominators (0 when the denominator sum is 0, as gbstats).
    public var mean: Double {
        denominator.sum == 0 ? 0 : numerator.sum / denominator.sum
    }

    /// Sample covariance of m and d: (sumOfProducts - sum m * sum d / n) / (n - 1); 0 when n <= 1.
    public var covariance: Double {
        if n <= 1 { return 0 }
        return (sumOfProducts - numerator.sum * denominator.sum / n) / (n - 1)
    }

    /// Per-user delta-method variance of the ratio, exactly gbstats RatioStatistic.variance:
    /// var(m)/mu_d^2 - 2 cov mu_m / mu_d^3 + mu_m^2 var(d) / mu_d^4 (0 when mu_d = 0 or n <= 1).
    ///
    /// The variance of the ratio estimate itself is variance / n.
    public var variance: Double {
        let muD = denominator.mean
        if muD == 0 || n <= 1 { return 0 }
        let muM = numerator.mean
        return numerator.variance / (muD * muD)
            - 2 * covariance * muM / (muD * muD * muD)
            + muM * muM * denominator.variance / (muD * muD * muD * muD)
    }
}

extension RatioMoments {
    /// The user-level estimate: the ratio of sums with its per-user delta-method variance.
    public var estimate: GroupEstimate { GroupEstimate(mean: mean, variance: variance, n: n) }
}

/// One group's estimate: mean, per-user variance (so Var(mean) = variance / n), and n users.
public struct GroupEstimate: Sendable, Equatable {
    public var mean: Double
    public var variance: Double
    public var n: Double

    public init(mean: Double, variance: Double, n: Double) {
        self.mean = mean
        self.variance = variance
        self.n = n
    }
}

extension SampleMoments {
    /// The moments of two disjoint samples together.
    public static func += (lhs: inout SampleMoments, rhs: SampleMoments) {
        lhs.n += rhs.n
        lhs.sum += rhs.sum
        lhs.sumOfSquares += rhs.sumOfSquares
    }
}

extension RatioMoments {
    /// The moments of two disjoint sets of users together.
    public static func += (lhs: inout RatioMoments, rhs: RatioMoments) {
        lhs.n += rhs.n
        lhs.numerator += rhs.numerator
        lhs.denominator += rhs.denominator
        lhs.sumOfProducts += rhs.sumOfProducts
    }
}
