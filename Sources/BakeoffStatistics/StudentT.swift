#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Student's t distribution with real degrees of freedom df > 0.
///
/// Through the regularized incomplete beta function with a Stirling-corrected log Beta, so
/// both tails keep full relative accuracy even for df = 1e6.
public enum StudentT {
    /// P(T <= t).
    public static func cdf(_ t: Double, df: Double) -> Double {
        if t.isNaN || df.isNaN || df <= 0 { return .nan }
        if df.isInfinite { return Normal.cdf(t) }
        if t == 0 { return 0.5 }
        let (tail, central) = tailAndCentral(t, df: df)
        return t < 0 ? tail : 0.5 + 0.5 * central
    }

    /// P(T > t), accurate deep in the upper tail.
    public static func sf(_ t: Double, df: Double) -> Double {
        cdf(-t, df: df)
    }

    /// The t with P(T <= t) = p, as scipy.stats.t.ppf.
    ///
    /// Hill's (1970) approximation refined by safeguarded Newton steps on the logarithm of
    /// whichever of the tail or central probability is smaller, so the result keeps full
    /// relative accuracy for p near 0, 1 and 1/2.
    public static func quantile(_ p: Double, df: Double) -> Double {
        if p.isNaN || df.isNaN || df <= 0 || p < 0 || p > 1 { return .nan }
        if p == 0 { return -.infinity }
        if p == 1 { return .infinity }
        if df.isInfinite { return Normal.quantile(p) }
        if p == 0.5 { return 0 }
        let lower = p < 0.5
        let x = positiveQuantile(tail: lower ? p : 1 - p, df: df)
        return lower ? -x : x
    }

    // MARK: Internals

    /// P(T > |t|) and P(|T| < |t|), each to full relative accuracy.
    static func tailAndCentral(_ t: Double, df: Double) -> (tail: Double, central: Double) {
        let r = Special.splitRatio(t: t, df: df)
        // P(|T| > |t|) = I_x(df/2, 1/2) with x = df / (df + t^2).
        let (p, q) = Special.regularizedBeta(a: 0.5 * df, b: 0.5, x: r.x, y: r.y, logX: r.logX, logY: r.logY)
        return (0.5 * p, q)
    }

    /// log of the density at t.
    static func logDensity(_ t: Double, df: Double) -> Double {
        let r = Special.splitRatio(t: t, df: df)
        return -0.5 * log(df) - Special.logBeta(0.5 * df, 0.5) + 0.5 * (df + 1) * r.logX
    }

    /// Hill's (1970, ACM 396) starting value for the x > 0 with P(T > x) = q, in the form R's qt uses.
    static func hillGuess(tail q: Double, df: Double) -> Double {
        let twoSided = 2 * q
        if abs(df - 2) < 1e-12 {
            if twoSided > 0.9 { return (1 - twoSided) * sqrt(2 / (twoSided * (2 - twoSided))) }
            return sqrt(2 / (twoSided * (2 - twoSided)) - 2)
        }
        if abs(df - 1) < 1e-12 {
            return 1 / tan(Double.pi * q)
        }
        if df > 1 {
            let a = 1 / (df - 0.5)
            let b = 48 / (a * a)
            var c = ((20700 * a / b - 98) * a - 16) * a + 96.36
            let d = ((94.5 / (b + c) - 3) / b + 1) * sqrt(a * Double.pi / 2) * df
            var y = pow(d * twoSided, 2 / df)
            if y.isFinite && y >= Special.doubleEpsilon {
                if (df < 2.1 && twoSided > 0.5) || y > 0.05 + a {
                    let x = Normal.quantile(0.5 * twoSided)
                    y = x * x
                    if df < 5 { c += 0.3 * (df - 4.5) * (x + 0.6) }
                    c = (((0.05 * d * x - 5) * x - 7) * x - 2) * x + b + c
                    y = (((((0.4 * y + 6.3) * y + 36) * y + 94.5) / c - y - 3) / b + 1) * x
                    y = expm1(a * y * y)
                } else {
                    y = ((1 / (((df + 6) / (df * y) - 0.089 * d - 0.822) * (df + 2) * 3) + 0.5 / (df + 4)) * y - 1)
                        * (df + 1) / (df + 2) + 1 / y
                }
                let guess = sqrt(df * y)
                if guess.isFinite && guess > 0 { return guess }
            }
        }
        // Far tail: P(T > x) ~ df^((df-1)/2) / B(df/2, 1/2) * x^-df.
        let guess = exp((0.5 * (df - 1) * log(df) - Special.logBeta(0.5 * df, 0.5) - log(q)) / df)
        return guess.isFinite && guess > 0 ? guess : 1
    }

    /// The x > 0 with P(T > x) = q for 0 < q < 1/2.
    static func positiveQuantile(tail q: Double, df: Double) -> Double {
        // Above q = 1/4 solve P(|T| < x) = 1 - 2q instead (exact in floating point), so that
        // small quantiles keep their relative accuracy.
        let useCentral = q > 0.25
        let logTarget = useCentral ? log1p(-2 * q) : log(q)
        var u = log(hillGuess(tail: q, df: df))
        // Bracket on u = log x, maintained as Newton proceeds.
        var lo = -Double.infinity, hi = Double.infinity
        for _ in 0..<200 {
            let x = exp(u)
            let (tail, central) = tailAndCentral(x, df: df)
            let value = useCentral ? central : tail
            let g = log(value) - logTarget  // increasing in u for central, decreasing for tail
            if g == 0 { return x }
            let tooBig = useCentral ? g > 0 : g < 0
            if tooBig { hi = u } else { lo = u }
            // d log(value) / du = x * density / value, with sign.
            let slope = (useCentral ? 2.0 : -1.0) * exp(log(x) + logDensity(x, df: df) - log(value))
            var step = -g / slope
            // Newton converges quadratically: after a step this small the error is far below 1 ulp.
            if abs(step) <= 1e-11 { return exp(u + step) }
            if !step.isFinite { step = tooBig ? -1 : 1 }
            step = max(-2, min(2, step))
            var next = u + step
            if !(next > lo && next < hi) {
                // Outside the bracket: bisect if it is closed, otherwise expand.
                if lo.isFinite && hi.isFinite {
                    if hi - lo <= 4e-16 * max(1, abs(u)) { return exp(u) }
                    next = 0.5 * (lo + hi)
                } else {
                    next = tooBig ? u - 2 : u + 2
                }
            }
            u = next
        }
        return exp(u)
    }
}
