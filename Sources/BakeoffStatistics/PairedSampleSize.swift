#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How many requests a paired comparison of a mean difference needs.
public struct MeanDifferencePlan: Sendable, Equatable {
    /// The smallest number of requests whose paired t test reaches the target power.
    public var requests: Int
    /// The power at `requests`.
    public var power: Double
    /// difference / standardDeviationOfDifferences (±infinity when that is 0).
    public var effectSize: Double
    public var standardDeviationOfDifferences: Double

    public init(requests: Int, power: Double, effectSize: Double, standardDeviationOfDifferences: Double) {
        self.requests = requests
        self.power = power
        self.effectSize = effectSize
        self.standardDeviationOfDifferences = standardDeviationOfDifferences
    }
}

/// How many requests an exact sign test of wins and losses needs.
public struct WinRatePlan: Sendable, Equatable {
    /// m, the non-tied requests the sign test needs (see `PairedSampleSize.requests(winRate:...)`).
    public var decisiveRequests: Int
    /// ceil(m / (1 - tieRate)): the requests to run so that m of them are expected to be decided.
    public var requests: Int
    /// The exact power with m decisive requests.
    public var power: Double
    /// The two-sided rejection region at m: at most this many wins, or at least m minus it.
    public var criticalCount: Int

    public init(decisiveRequests: Int, requests: Int, power: Double, criticalCount: Int) {
        self.decisiveRequests = decisiveRequests
        self.requests = requests
        self.power = power
        self.criticalCount = criticalCount
    }
}

/// Sample sizes for paired designs: every request answered by both variants.
///
/// Why paired: differences on the same request cancel the request's own difficulty, so with correlated scores a
/// paired eval needs far fewer requests than two independent samples (sd_d^2 = sdA^2 + sdB^2 - 2 rho sdA sdB).
public enum PairedSampleSize {
    /// sd of the differences from the two variants' sds and their correlation over requests.
    public static func standardDeviationOfDifferences(sdA: Double, sdB: Double, correlation rho: Double) -> Double {
        (sdA * sdA + sdB * sdB - 2 * rho * sdA * sdB).squareRoot()
    }

    /// The power of the paired (one-sample) t test at standardized effect mean(d) / sd(d) with n requests.
    ///
    /// == statsmodels `TTestPower().power(effect_size, nobs=n, alpha, alternative)`: df = n - 1, noncentrality
    /// effectSize sqrt(n), two-sided power adding both rejection tails. NaN for n <= 1 (no degrees of freedom).
    public static func power(effectSize: Double, requests n: Double, alpha: Double, alternative: Alternative = .twoSided) -> Double {
        if !(n > 1) || effectSize.isNaN || !(alpha > 0 && alpha < 1) { return .nan }
        let df = n - 1
        let nc = effectSize * n.squareRoot()
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        let lowerCritical = StudentT.quantile(tailAlpha, df: df)
        var result = 0.0
        if alternative != .smaller { result += NoncentralT.sf(-lowerCritical, df: df, noncentrality: nc) }
        if alternative != .larger { result += NoncentralT.cdf(lowerCritical, df: df, noncentrality: nc) }
        return result
    }

    /// The smallest number of requests (at least 2) whose paired t test detects a mean difference with the target
    /// power; power increases with n, so every larger n does too.
    ///
    /// nil when no n can: difference 0, a difference pointing away from a one-sided alternative, an input out of
    /// range (alpha or power outside (0, 1), a negative or non-finite sd), or more than 10^15 requests needed.
    /// An sd of 0 needs the minimum, 2.
    public static func requests(
        difference: Double, standardDeviation sd: Double, alpha: Double = 0.05, power target: Double = 0.8,
        alternative: Alternative = .twoSided
    ) -> MeanDifferencePlan? {
        guard difference.isFinite, sd.isFinite, sd >= 0, alpha > 0, alpha < 1, target > 0, target < 1 else { return nil }
        if difference == 0 { return nil }
        if alternative == .larger && difference < 0 { return nil }
        if alternative == .smaller && difference > 0 { return nil }
        if sd == 0 {
            return MeanDifferencePlan(requests: 2, power: 1, effectSize: difference > 0 ? .infinity : -.infinity,
                                      standardDeviationOfDifferences: 0)
        }
        let effect = difference / sd
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        let z = Normal.quantile(1 - tailAlpha) + Normal.quantile(target)
        let guess = (z / abs(effect)) * (z / abs(effect))
        if !(guess < 1e15) { return nil }
        func reaches(_ n: Int) -> Bool { power(effectSize: effect, requests: Double(n), alpha: alpha, alternative: alternative) >= target }
        // The t test needs a few more than the normal approximation; step from it (a handful of steps).
        var n = max(2, Int(guess.rounded(.up)))
        while n > 2 && reaches(n - 1) { n -= 1 }
        while !reaches(n) { n += 1 }
        return MeanDifferencePlan(
            requests: n, power: power(effectSize: effect, requests: Double(n), alpha: alpha, alternative: alternative),
            effectSize: effect, standardDeviationOfDifferences: sd)
    }

    /// The same from each variant's sd and the correlation of their scores over requests.
    public static func requests(
        difference: Double, sdA: Double, sdB: Double, correlation: Double, alpha: Double = 0.05,
        power target: Double = 0.8, alternative: Alternative = .twoSided
    ) -> MeanDifferencePlan? {
        guard correlation >= -1, correlation <= 1 else { return nil }
        let sd = standardDeviationOfDifferences(sdA: sdA, sdB: sdB, correlation: correlation)
        return requests(difference: difference, standardDeviation: sd, alpha: alpha, power: target, alternative: alternative)
    }

    /// The standardized effect mean(d) / sd(d) that n requests detect with the target power (the inverse of
    /// `requests`; multiply by sd(d) for the difference), solved to full precision.
    ///
    /// Positive for two-sided and `.larger`, negative for `.smaller` (statsmodels' convention). nil for n < 2, alpha
    /// or power outside (0, 1), or a target at or below alpha (reached with no effect).
    public static func detectableEffectSize(
        requests n: Int, alpha: Double = 0.05, power target: Double = 0.8, alternative: Alternative = .twoSided
    ) -> Double? {
        guard n >= 2, alpha > 0, alpha < 1, target > alpha, target < 1 else { return nil }
        let solved: Alternative = alternative == .smaller ? .larger : alternative
        func f(_ d: Double) -> Double { power(effectSize: d, requests: Double(n), alpha: alpha, alternative: solved) - target }
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        let guess = (Normal.quantile(1 - tailAlpha) + Normal.quantile(target)) / Double(n).squareRoot()
        var lo = 0.5 * guess, hi = 2 * guess
        var fLo = f(lo), fHi = f(hi)
        var steps = 0
        while fLo > 0 && steps < 200 { hi = lo; fHi = fLo; lo *= 0.5; fLo = f(lo); steps += 1 }
        while fHi < 0 && steps < 400 { lo = hi; fLo = fHi; hi *= 2; fHi = f(hi); steps += 1 }
        guard fLo <= 0, fHi >= 0 else { return nil }
        let root = Brent.root(f, lo, hi, fLo, fHi)
        if root.isNaN { return nil }
        return alternative == .smaller ? -root : root
    }

    // MARK: Win rate (exact sign test)

    /// The two-sided exact sign test's rejection region with m decisive requests: the largest c < m / 2 with
    /// scipy `binomtest(c, m, 0.5).pvalue` = 2 P(X <= c) <= alpha, so the test rejects when the wins are at most c
    /// or at least m - c; -1 when no outcome is significant (m = 5 or fewer at alpha 0.05).
    public static func signTestCriticalCount(decisiveRequests m: Int, alpha: Double) -> Int {
        precondition(m >= 0 && alpha > 0 && alpha < 1, "need m >= 0 and alpha in (0, 1)")
        var c = -1
        advanceCritical(&c, m: m, alpha: alpha)
        return c
    }

    /// The exact power of the two-sided sign test at level alpha with m decisive requests when the variant wins a
    /// share p of them: P(X <= c) + P(X >= m - c) for X ~ Binomial(m, p), c the critical count (0 when c = -1).
    public static func signTestPower(decisiveRequests m: Int, winRate p: Double, alpha: Double) -> Double {
        precondition(p >= 0 && p <= 1, "the win rate must be in [0, 1]")
        return signPower(m: m, p: p, critical: signTestCriticalCount(decisiveRequests: m, alpha: alpha))
    }

    /// The requests an exact two-sided sign test needs to detect a win rate p != 1/2 among non-tied requests, when a
    /// share `tieRate` of requests ends in a tie (and so drops out of the sign test).
    ///
    /// Exact power is not monotone in m: adding a request without widening the rejection region lowers it (a saw
    /// tooth of period about 2 around a rising trend). The m returned is the smallest from which the power stays at
    /// or above the target through a documented horizon: with m1 the first m reaching the target, it is one more
    /// than the last m <= max(2 m1, m1 + 50) whose power falls short. (The reference script checks that no dip
    /// occurs up to 4 m1 on every fixture.) requests = ceil(m / (1 - tieRate)), a quotient within 1e-9 of an
    /// integer counting as that integer.
    ///
    /// nil for p = 1/2, p, alpha or power outside (0, 1), tieRate outside [0, 1), or when more than about 10^6
    /// decisive requests would be needed (|p - 1/2| below roughly 0.0015; the search runs over every m).
    public static func requests(winRate p: Double, tieRate: Double = 0, alpha: Double = 0.05, power target: Double = 0.8) -> WinRatePlan? {
        guard p > 0, p < 1, p != 0.5, tieRate >= 0, tieRate < 1, alpha > 0, alpha < 1, target > 0, target < 1 else {
            return nil
        }
        let z = Normal.quantile(1 - 0.5 * alpha) + Normal.quantile(target)
        let approximate = z * z * p * (1 - p) / ((p - 0.5) * (p - 0.5))
        if !(approximate < 1e6) { return nil }
        var c = -1
        var first: Int? = nil
        var lastShort = 0
        var powers: [Double] = [0]  // powers[m]
        var criticals: [Int] = [-1]
        var m = 0
        while true {
            m += 1
            advanceCritical(&c, m: m, alpha: alpha)
            let value = signPower(m: m, p: p, critical: c)
            powers.append(value)
            criticals.append(c)
            if value < target {
                lastShort = m
            } else if first == nil {
                first = m
            }
            if let first, m >= max(2 * first, first + 50) { break }
        }
        let decisive = lastShort + 1
        let quotient = Double(decisive) / (1 - tieRate)
        let nearest = quotient.rounded()
        let total = abs(quotient - nearest) <= 1e-9 * quotient ? nearest : quotient.rounded(.up)
        return WinRatePlan(decisiveRequests: decisive, requests: Int(total), power: powers[decisive],
                           criticalCount: criticals[decisive])
    }

    /// The win rate p > 1/2 among decisive requests that n requests detect with the target power (the exact sign
    /// test on m = floor(n (1 - tieRate)) decisive ones); 1 - p is the losing rate detected equally well.
    ///
    /// For fixed m the power rises with |p - 1/2|, so the root is unique; solved to full precision. nil when m
    /// decisive requests cannot reject at all (critical count -1), the target is not above the power at p = 1/2
    /// (the test's size), or an input is out of range.
    public static func detectableWinRate(requests n: Int, tieRate: Double = 0, alpha: Double = 0.05, power target: Double = 0.8) -> Double? {
        guard n >= 0, tieRate >= 0, tieRate < 1, alpha > 0, alpha < 1, target > 0, target < 1 else { return nil }
        let m = Int((Double(n) * (1 - tieRate)).rounded(.down))
        let c = signTestCriticalCount(decisiveRequests: m, alpha: alpha)
        if c < 0 { return nil }
        func f(_ p: Double) -> Double { signPower(m: m, p: p, critical: c) - target }
        let fLo = f(0.5), fHi = f(1)
        guard fLo < 0, fHi > 0 else { return nil }
        let root = Brent.root(f, 0.5, 1, fLo, fHi)
        return root.isNaN ? nil : root
    }

    // MARK: Internals

    /// P(X <= c) for X ~ Binomial(m, 1/2), through the incomplete beta function: I_{1/2}(m - c, c + 1).
    static func nullLowerTail(_ c: Int, m: Int) -> Double {
        if c < 0 { return 0 }
        if c >= m { return 1 }
        let half = -log(2.0)
        return Special.regularizedBeta(a: Double(m - c), b: Double(c + 1), x: 0.5, y: 0.5, logX: half, logY: half).p
    }

    /// Raises c to the critical count at m; valid from any c at or below it (the critical count never falls as m
    /// grows: P(X_m <= c) <= P(X_{m-1} <= c)).
    static func advanceCritical(_ c: inout Int, m: Int, alpha: Double) {
        while 2 * (c + 1) < m && 2 * nullLowerTail(c + 1, m: m) <= alpha { c += 1 }
    }

    static func signPower(m: Int, p: Double, critical c: Int) -> Double {
        if c < 0 { return 0 }
        let a = Double(m - c), b = Double(c + 1)
        let q = 1 - p
        // P(X <= c) = I_{1-p}(m - c, c + 1); P(X >= m - c) = I_p(m - c, c + 1).
        let lower = p == 1 ? 0 : (p == 0 ? 1 : Special.regularizedBeta(a: a, b: b, x: q, y: p, logX: log1p(-p), logY: log(p)).p)
        let upper = p == 0 ? 0 : (p == 1 ? 1 : Special.regularizedBeta(a: a, b: b, x: p, y: q, logX: log(p), logY: log1p(-p)).p)
        return lower + upper
    }
}
