#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The alternative hypothesis of a test, with statsmodels' spelling as raw values.
public enum Alternative: String, Sendable {
    case twoSided = "two-sided", larger, smaller
}

/// Power of the two-sample t test (pooled df), as statsmodels TTestIndPower.
public enum TTestIndependentPower {
    /// == statsmodels TTestIndPower().power(effect_size, nobs1, alpha, ratio, alternative).
    ///
    /// df = nobs1 (1 + ratio) - 2 and noncentrality d sqrt(1 / (1/nobs1 + 1/(nobs1 ratio)));
    /// two-sided power adds both rejection tails.
    public static func power(effectSize: Double, nobs1: Double, alpha: Double, ratio: Double, alternative: Alternative) -> Double {
        let nobs2 = nobs1 * ratio
        let df = (nobs1 - 1) + (nobs2 - 1)
        let nc = effectSize * (1 / (1 / nobs1 + 1 / nobs2)).squareRoot()
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        // t.ppf(tailAlpha); t.isf(tailAlpha) is its negation.
        let lowerCritical = StudentT.quantile(tailAlpha, df: df)
        if lowerCritical.isNaN || nc.isNaN { return .nan }
        var result = 0.0
        if alternative != .smaller {
            result += NoncentralT.sf(-lowerCritical, df: df, noncentrality: nc)
        }
        if alternative != .larger {
            result += NoncentralT.cdf(lowerCritical, df: df, noncentrality: nc)
        }
        return result
    }

    /// Continuous nobs1 at which the power equals the target, solved to full precision.
    ///
    /// statsmodels solve_power gives the same root to its solver tolerance (xtol 1e-5). The
    /// search starts at df = 1; if even that design reaches the target, its nobs1
    /// (3 / (1 + ratio)) is returned. NaN when the target cannot be reached (effect size 0,
    /// an effect pointing away from a one-sided alternative, power outside (alpha, 1)).
    public static func solveNobs1(effectSize: Double, alpha: Double, power target: Double, ratio: Double, alternative: Alternative) -> Double {
        if !(effectSize.isFinite && alpha > 0 && alpha < 1 && target > 0 && target < 1 && ratio > 0 && ratio.isFinite) {
            return .nan
        }
        if effectSize == 0 { return .nan }
        if alternative == .larger && effectSize < 0 { return .nan }
        if alternative == .smaller && effectSize > 0 { return .nan }
        func f(_ n: Double) -> Double {
            power(effectSize: effectSize, nobs1: n, alpha: alpha, ratio: ratio, alternative: alternative) - target
        }
        let minimum = 3 / (1 + ratio)
        // Normal-approximation starting point.
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        let z = Normal.quantile(1 - tailAlpha) + Normal.quantile(target)
        let guess = max(minimum, z * z * (1 + 1 / ratio) / (effectSize * effectSize))
        var lo = minimum, hi = guess
        var fHi = f(hi)
        if fHi.isNaN { return .nan }
        if fHi >= 0 {
            let fMin = f(minimum)
            if fMin >= 0 { return minimum }
            // Shrink towards the minimum until the bracket is tight enough to start from.
            var fLo = fMin
            var candidate = max(minimum, 0.5 * hi)
            while candidate > minimum {
                let value = f(candidate)
                if value.isNaN { return .nan }
                if value < 0 { lo = candidate; fLo = value; break }
                hi = candidate; fHi = value
                candidate = max(minimum, 0.5 * candidate)
                if candidate == minimum { break }
            }
            return Brent.root(f, lo, hi, fLo, fHi)
        }
        lo = hi
        var fLo = fHi
        hi = 2 * lo
        fHi = f(hi)
        var doublings = 0
        while fHi < 0 {
            lo = hi
            fLo = fHi
            hi *= 2
            fHi = f(hi)
            doublings += 1
            if doublings > 200 || hi.isInfinite || fHi.isNaN { return .nan }
        }
        return Brent.root(f, lo, hi, fLo, fHi)
    }
}

/// Brent's root finder (zeroin) on a sign-changing bracket, to full double precision.
enum Brent {
    static func root(_ f: (Double) -> Double, _ a0: Double, _ b0: Double, _ fa0: Double, _ fb0: Double) -> Double {
        var a = a0, b = b0, fa = fa0, fb = fb0
        if fa == 0 { return a }
        if fb == 0 { return b }
        if (fa > 0) == (fb > 0) { return .nan }
        var c = a, fc = fa
        var d = b - a, e = d
        for _ in 0..<300 {
            if (fb > 0) == (fc > 0) {
                c = a; fc = fa
                d = b - a; e = d
            }
            if abs(fc) < abs(fb) {
                a = b; b = c; c = a
                fa = fb; fb = fc; fc = fa
            }
            let tol = 2 * Special.doubleEpsilon * abs(b) + 1e-300
            let m = 0.5 * (c - b)
            if abs(m) <= tol || fb == 0 { return b }
            if abs(e) < tol || abs(fa) <= abs(fb) {
                d = m; e = m
            } else {
                var p: Double, q: Double
                let s = fb / fa
                if a == c {
                    p = 2 * m * s
                    q = 1 - s
                } else {
                    let qq = fa / fc, r = fb / fc
                    p = s * (2 * m * qq * (qq - r) - (b - a) * (r - 1))
                    q = (qq - 1) * (r - 1) * (s - 1)
                }
                if p > 0 { q = -q } else { p = -p }
                if 2 * p < min(3 * m * q - abs(tol * q), abs(e * q)) {
                    e = d; d = p / q
                } else {
                    d = m; e = m
                }
            }
            a = b; fa = fb
            b += abs(d) > tol ? d : (m > 0 ? tol : -tol)
            fb = f(b)
            if fb.isNaN { return .nan }
        }
        return b
    }
}
