#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The noncentral t distribution: (Z + noncentrality) / sqrt(V / df), V ~ chi-square(df).
///
/// For t >= 0 the cdf is the Poisson mixture of incomplete beta functions of Guenther (1978)
/// and Lenth (AS 243, 1989),
///     F(t) = Phi(-delta) + 1/2 sum_j [p_j I_x(j + 1/2, df/2) + q_j I_x(j + 1, df/2)],
///     x = t^2 / (df + t^2),  p_j = e^-l l^j / j!,  q_j = delta e^-l l^j / (sqrt 2 Gamma(j + 3/2)),  l = delta^2 / 2,
/// and the upper tail is the same mixture of the complements 1 - I_x, so neither needs 1 - F.
/// Unlike AS 243, which sums upwards from j = 0 and stops on an error bound, both series run
/// over every term that matters (bounded geometrically on both sides of the Poisson peak), the
/// weights come from Loader's saddle-point form, and each incomplete beta is carried in
/// logarithms through the stable direction of its recurrence (downwards for I_x, upwards for
/// 1 - I_x), so nothing underflows or drifts. With delta >= 0 every term is positive and both
/// tails keep their relative accuracy (about 1e-13 against mpmath). For t < 0 < delta (the far
/// lower tail, the negligible second term of a two-sided power) the reflection
/// F(t; delta) = 1 - F(-t; -delta) makes the q_j negative and the small result is accurate only
/// in absolute terms, about 1e-15 (bounded by Phi(-delta)), like scipy's.
public enum NoncentralT {
    /// P(T <= t).
    public static func cdf(_ t: Double, df: Double, noncentrality: Double) -> Double {
        if t.isNaN || df.isNaN || noncentrality.isNaN || df <= 0 || noncentrality.isInfinite { return .nan }
        if noncentrality == 0 { return StudentT.cdf(t, df: df) }
        if df.isInfinite { return Normal.cdf(t - noncentrality) }
        if abs(noncentrality) > hugeNoncentrality { return hugeApproximation(t, df: df, delta: noncentrality).cdf }
        return t >= 0
            ? lowerProbability(t, df: df, delta: noncentrality)
            : upperProbability(-t, df: df, delta: -noncentrality)
    }

    /// P(T > t).
    public static func sf(_ t: Double, df: Double, noncentrality: Double) -> Double {
        if t.isNaN || df.isNaN || noncentrality.isNaN || df <= 0 || noncentrality.isInfinite { return .nan }
        if noncentrality == 0 { return StudentT.sf(t, df: df) }
        if df.isInfinite { return Normal.sf(t - noncentrality) }
        if abs(noncentrality) > hugeNoncentrality { return hugeApproximation(t, df: df, delta: noncentrality).sf }
        return t >= 0
            ? upperProbability(t, df: df, delta: noncentrality)
            : lowerProbability(-t, df: df, delta: -noncentrality)
    }

    // MARK: Internals

    /// Beyond this |delta| the series would need millions of terms; `hugeApproximation` is used.
    static let hugeNoncentrality = 1e4

    /// (cdf, sf) for |delta| > 1e4, where Z is negligible next to delta unless df is of order delta^2:
    /// T ~ delta / S with S^2 ~ chi-square(df) / df, so P(T <= t) ~ P(chi-square(df) >= df (delta/t)^2)
    /// for t > 0 < delta (relative error of order df / delta^2); for larger df the normal
    /// approximation of Abramowitz & Stegun 26.7.10. Far outside any realistic power calculation.
    private static func hugeApproximation(_ t: Double, df: Double, delta: Double) -> (cdf: Double, sf: Double) {
        if delta < 0 {
            let mirrored = hugeApproximation(-t, df: df, delta: -delta)
            return (mirrored.sf, mirrored.cdf)
        }
        if df < delta * delta / 100 {
            if t <= 0 { return (0, 1) }
            let ratio = delta / t
            let x = df * ratio * ratio
            return (ChiSquared.sf(x, df: df), ChiSquared.cdf(x, df: df))
        }
        if t.isInfinite { return t > 0 ? (1, 0) : (0, 1) }
        let z = (t * (1 - 1 / (4 * df)) - delta) / (1 + t * t / (2 * df)).squareRoot()
        return (Normal.cdf(z), Normal.sf(z))
    }

    /// Index past which the Poisson weights are negligible (below ~1e-30 of their peak).
    private static func lastIndex(_ lambda: Double) -> Int {
        Int(lambda + 15 * lambda.squareRoot() + 40)
    }

    /// Index below which the Poisson weights are negligible (below ~1e-30 of their peak).
    private static func firstIndex(_ lambda: Double) -> Int {
        Int(max(0, lambda - 15 * lambda.squareRoot() - 40))
    }

    /// log p_j and log |q_j| of the mixture, each evaluated directly (no recurrence, so no drift
    /// over the thousands of terms a large noncentrality needs).
    @inline(__always)
    private static func logWeights(_ j: Double, lambda: Double, logAbsDelta: Double) -> (p: Double, q: Double) {
        let logP = Special.logPoisson(j, lambda)
        // q_j = delta / sqrt 2 * p_j * Gamma(j + 1) / Gamma(j + 3/2), and
        // Gamma(j + 1) / Gamma(j + 3/2) = B(j + 1, 1/2) / sqrt(pi).
        let logQ = logP + logAbsDelta - 0.5 * log(2.0) + Special.logBeta(j + 1, 0.5) - 0.5 * Special.logPi
        return (logP, logQ)
    }

    /// P(T <= t) for t >= 0.
    static func lowerProbability(_ t: Double, df: Double, delta: Double) -> Double {
        if t == 0 { return Normal.cdf(-delta) }
        if t.isInfinite { return 1 }
        // splitRatio's x is df / (df + t^2); the beta argument here is its complement.
        let r = Special.splitRatio(t: t, df: df)
        let (x, y, logX, logY) = (r.y, r.x, r.logY, r.logX)
        let b = 0.5 * df
        let lambda = 0.5 * delta * delta
        let sign: Double = delta < 0 ? -1 : 1
        let top = lastIndex(lambda)
        let jTop = Double(top)

        // Start at the top and walk down: I_x(a - 1, b) = I_x(a, b) + D(a - 1), all positive.
        var aEven = jTop + 0.5, aOdd = jTop + 1
        var logIEven = Special.logRegularizedBeta(a: aEven, b: b, x: x, y: y, logX: logX, logY: logY).logP
        var logIOdd = Special.logRegularizedBeta(a: aOdd, b: b, x: x, y: y, logX: logX, logY: logY).logP
        // D(a) = x^a y^b / (a B(a, b)); these hold D(a - 1).
        var logDEven = Special.logBetaStep(a: aEven - 1, b: b, logX: logX, logY: logY)
        var logDOdd = Special.logBetaStep(a: aOdd - 1, b: b, logX: logX, logY: logY)
        let logAbsDelta = log(abs(delta))

        let base = Normal.cdf(-delta)
        var sum = 0.0, magnitude = 0.0
        var j = top
        while true {
            let dj = Double(j)
            let (logP, logQ) = logWeights(dj, lambda: lambda, logAbsDelta: logAbsDelta)
            let even = exp(logP + logIEven), odd = exp(logQ + logIOdd)
            sum += even + sign * odd
            magnitude += even + odd
            if j == 0 { break }
            // Below the Poisson peak the weights fall geometrically (ratio <= (j + 1/2) / lambda)
            // and I_x <= 1, which bounds everything still to come.
            if dj + 0.5 < lambda {
                let rest = (exp(logP) + exp(logQ)) * lambda / (lambda - dj - 0.5)
                if rest <= 1e-17 * (base + 0.5 * magnitude) { break }
            }
            logIEven = Special.logAddExp(logIEven, logDEven)
            logIOdd = Special.logAddExp(logIOdd, logDOdd)
            // D(c - 1) = D(c) * c / (x (c + b - 1)) with c = a - 1.
            logDEven += log(aEven - 1) - logX - log(aEven + b - 2)
            logDOdd += log(aOdd - 1) - logX - log(aOdd + b - 2)
            aEven -= 1
            aOdd -= 1
            j -= 1
        }
        // {Z + delta <= 0} implies T <= 0 <= t, so F >= Phi(-delta); this also bounds the rounding
        // error left by the cancelling terms when delta < 0.
        return min(1, max(base, base + 0.5 * sum))
    }

    /// P(T > t) for t >= 0.
    static func upperProbability(_ t: Double, df: Double, delta: Double) -> Double {
        if t == 0 { return Normal.cdf(delta) }
        if t.isInfinite { return 0 }
        let r = Special.splitRatio(t: t, df: df)
        let (x, y, logX, logY) = (r.y, r.x, r.logY, r.logX)
        let b = 0.5 * df
        let lambda = 0.5 * delta * delta
        let sign: Double = delta < 0 ? -1 : 1
        let top = lastIndex(lambda)

        // Start below the Poisson peak and walk up: 1 - I_x(a + 1, b) = (1 - I_x(a, b)) + D(a), all
        // positive. The terms left out below are at most their (negligible) weights, as 1 - I_x <= 1.
        let first = firstIndex(lambda)
        let jFirst = Double(first)
        var aEven = jFirst + 0.5, aOdd = jFirst + 1
        var logCEven = Special.logRegularizedBeta(a: aEven, b: b, x: x, y: y, logX: logX, logY: logY).logQ
        var logCOdd = Special.logRegularizedBeta(a: aOdd, b: b, x: x, y: y, logX: logX, logY: logY).logQ
        var logDEven = Special.logBetaStep(a: aEven, b: b, logX: logX, logY: logY)
        var logDOdd = Special.logBetaStep(a: aOdd, b: b, logX: logX, logY: logY)
        let logAbsDelta = log(abs(delta))

        var sum = 0.0, magnitude = 0.0
        var j = first
        while true {
            let dj = Double(j)
            let (logP, logQ) = logWeights(dj, lambda: lambda, logAbsDelta: logAbsDelta)
            let even = exp(logP + logCEven), odd = exp(logQ + logCOdd)
            sum += even + sign * odd
            magnitude += even + odd
            if j >= top { break }
            // Past the Poisson peak the weights fall geometrically (ratio <= lambda / (j + 1)) and
            // 1 - I_x <= 1, which bounds everything still to come.
            if dj + 1 > lambda {
                let rest = (exp(logP) + exp(logQ)) * (dj + 1) / (dj + 1 - lambda)
                if rest <= 1e-17 * magnitude { break }
            }
            logCEven = Special.logAddExp(logCEven, logDEven)
            logCOdd = Special.logAddExp(logCOdd, logDOdd)
            // D(a + 1) = D(a) * x (a + b) / (a + 1).
            logDEven += logX + log(aEven + b) - log(aEven + 1)
            logDOdd += logX + log(aOdd + b) - log(aOdd + 1)
            aEven += 1
            aOdd += 1
            j += 1
        }
        // T > t >= 0 needs Z + delta > 0, so the tail is at most Phi(delta); for delta < 0 this caps
        // the rounding error of the cancelling terms (relevant when delta is large and negative).
        return min(Normal.cdf(delta), max(0, 0.5 * sum))
    }
}
