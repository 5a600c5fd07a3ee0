#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Internal special functions shared by the distributions.
//
// Everything here works on logarithms where magnitudes could cancel: for large arguments
// `lgamma(a) + lgamma(b) - lgamma(a + b)` loses as many digits as lgamma(a) has before the
// decimal point (six or seven for a degree of freedom of a million), so log Beta and the
// incomplete-function prefixes are built from Stirling corrections instead (as R's nmath does).

enum Special {
    static let logSqrtTwoPi = 0.918_938_533_204_672_741_780_329_736_406  // log(sqrt(2*pi))
    static let logPi = 1.144_729_885_849_400_174_143_427_351_353_058_7
    static let doubleEpsilon = 2.220_446_049_250_313e-16

    /// Stirling correction `lgamma(x) - ((x - 1/2) log x - x + log sqrt(2 pi))` for x >= 10.
    ///
    /// Asymptotic series through B16; the first omitted term is below 2e-18 at x = 10.
    static func lgammaCorrection(_ x: Double) -> Double {
        if x >= 1e8 { return 1 / (12 * x) }
        let z = 1 / (x * x)
        let series = 1.0 / 12 + z * (-1.0 / 360 + z * (1.0 / 1260 + z * (-1.0 / 1680 + z * (1.0 / 1188
            + z * (-691.0 / 360_360 + z * (1.0 / 156 + z * (-3617.0 / 122_400)))))))
        return series / x
    }

    /// log Gamma(x) for x > 0 (absolute accuracy, which is what exponents need).
    ///
    /// Avoids C `lgamma`, which writes the global `signgam` and so is not safe to call concurrently.
    static func logGamma(_ x: Double) -> Double {
        if x.isNaN || x <= 0 { return .nan }
        if x < 10 { return log(tgamma(x)) }
        return (x - 0.5) * log(x) - x + logSqrtTwoPi + lgammaCorrection(x)
    }

    /// log Beta(a, b) for a, b > 0, accurate when one or both arguments are huge.
    static func logBeta(_ a: Double, _ b: Double) -> Double {
        let p = min(a, b), q = max(a, b)
        if p.isNaN || p <= 0 { return .nan }
        if q.isInfinite { return -.infinity }
        if p >= 10 {
            let corr = lgammaCorrection(p) + lgammaCorrection(q) - lgammaCorrection(p + q)
            return -0.5 * log(q) + logSqrtTwoPi + corr + (p - 0.5) * log(p / (p + q)) + q * log1p(-p / (p + q))
        } else if q >= 10 {
            let corr = lgammaCorrection(q) - lgammaCorrection(p + q)
            return logGamma(p) + corr + p - p * log(p + q) + (q - 0.5) * log1p(-p / (p + q))
        } else {
            return log(tgamma(p) * (tgamma(q) / tgamma(p + q)))
        }
    }

    /// Loader's deviance term `x log(x / m) + m - x`, computed without cancellation when x is near m.
    static func bd0(_ x: Double, _ m: Double) -> Double {
        if abs(x - m) < 0.1 * (x + m) {
            var v = (x - m) / (x + m)
            var s = (x - m) * v
            var ej = 2 * x * v
            v *= v
            var j = 1.0
            while j < 1000 {
                ej *= v
                let s1 = s + ej / (2 * j + 1)
                if s1 == s { return s1 }
                s = s1
                j += 1
            }
            return s
        }
        return x * log(x / m) + m - x
    }

    /// log(e^-lambda lambda^j / j!), accurate for large j and lambda (Loader's saddle-point form:
    /// the naive j log(lambda) - lambda - lgamma(j + 1) loses ~|j log lambda| ulp).
    static func logPoisson(_ j: Double, _ lambda: Double) -> Double {
        if j == 0 { return -lambda }
        if j < 10 { return j * log(lambda) - lambda - logGamma(j + 1) }
        return -bd0(j, lambda) - logSqrtTwoPi - 0.5 * log(j) - lgammaCorrection(j)
    }

    /// log(exp(a) + exp(b)) without overflow.
    @inline(__always)
    static func logAddExp(_ a: Double, _ b: Double) -> Double {
        if a == -.infinity { return b }
        if b == -.infinity { return a }
        let hi = max(a, b), lo = min(a, b)
        return hi + log1p(exp(lo - hi))
    }

    // MARK: Incomplete gamma

    /// log(x^a e^-x / Gamma(a)) for a > 0, x > 0.
    static func logGammaPrefix(a: Double, x: Double) -> Double {
        if a < 10 {
            return a * log(x) - x - logGamma(a)
        }
        // a log x - x - lgamma(a) = -bd0(a, x) + log(sqrt(a / 2pi)) - lgammaCorrection(a)
        return -bd0(a, x) + 0.5 * log(a) - logSqrtTwoPi - lgammaCorrection(a)
    }

    /// Regularized incomplete gamma P(a, x) and its complement Q(a, x) = 1 - P(a, x).
    ///
    /// Power series below the mean, Lentz continued fraction above it: each returns the smaller
    /// of P and Q to full relative accuracy.
    static func regularizedGamma(a: Double, x: Double) -> (p: Double, q: Double) {
        if a.isNaN || x.isNaN || a <= 0 { return (.nan, .nan) }
        if x <= 0 { return (0, 1) }
        if x.isInfinite { return (1, 0) }
        if x < a + 1 {
            // P = x^a e^-x / Gamma(a + 1) * sum_k x^k / ((a+1)...(a+k))
            var term = 1.0, sum = 1.0, ap = a
            for _ in 0..<100_000 {
                ap += 1
                term *= x / ap
                sum += term
                if term < sum * 1e-17 { break }
            }
            let p = exp(logGammaPrefix(a: a, x: x) - log(a)) * sum
            return (p, 1 - p)
        }
        let tiny = 1e-300
        var b = x + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var h = d
        var i = 1.0
        while i < 100_000 {
            let an = -i * (i - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 3e-16 { break }
            i += 1
        }
        let q = exp(logGammaPrefix(a: a, x: x)) * h
        return (1 - q, q)
    }

    // MARK: Incomplete beta

    /// Continued fraction for I_x(a, b) / (x^a y^b / B(a, b)) in the form of DiDonato and Morris
    /// (TOMS 708, `bfrac`), used for x < (a + 1) / (a + b + 2) where it converges quickly.
    ///
    /// Unlike the textbook form in x alone, its terms use y = 1 - x and
    /// lambda = a - (a + b) x = (a + b) y - b as given, so nothing cancels when x is within
    /// 1/a of 1 (the t tail at df = 1e6 lost five digits to that in the textbook form).
    static func betaContinuedFraction(a: Double, b: Double, x: Double, y: Double) -> Double {
        let lambda = a > b ? (a + b) * y - b : a - (a + b) * x
        let c = lambda + 1
        let c0 = b / a
        let c1 = 1 / a + 1
        let yp1 = y + 1
        var n = 0.0, p = 1.0, s = a + 1
        var an = 0.0, bn = 1.0, anp1 = 1.0, bnp1 = c / c1
        var r = c1 / c
        while n < 100_000 {
            n += 1
            var t = n / a
            let w = n * (b - n) * x
            var e = a / s
            let alpha = p * (p + c0) * e * e * (w * x)
            e = (1 + t) / (c1 + t + t)
            let beta = n + w / s + e * (c + n * yp1)
            p = 1 + t
            s += 2
            t = alpha * an + beta * anp1
            an = anp1
            anp1 = t
            t = alpha * bn + beta * bnp1
            bn = bnp1
            bnp1 = t
            let r0 = r
            r = anp1 / bnp1
            if abs(r - r0) <= 3e-16 * r || !r.isFinite { break }
            an /= bnp1
            bn /= bnp1
            anp1 = r
            bnp1 = 1
        }
        return r
    }

    /// log(x^a y^b / B(a, b)), the factor in front of the continued fraction.
    static func logBetaPrefix(a: Double, b: Double, logX: Double, logY: Double) -> Double {
        let ax = logX == -.infinity ? -Double.infinity : a * logX
        let by = logY == -.infinity ? -Double.infinity : b * logY
        return ax + by - logBeta(a, b)
    }

    /// log(x^a y^b / (a B(a, b))) = log(I_x(a, b) - I_x(a + 1, b)), the step of the recurrence in a.
    static func logBetaStep(a: Double, b: Double, logX: Double, logY: Double) -> Double {
        logBetaPrefix(a: a, b: b, logX: logX, logY: logY) - log(a)
    }

    /// log I_x(a, b) and log(1 - I_x(a, b)), with y = 1 - x and both logarithms supplied by the
    /// caller (they usually come from log1p of a ratio, which is where the accuracy is won).
    static func logRegularizedBeta(a: Double, b: Double, x: Double, y: Double, logX: Double, logY: Double)
        -> (logP: Double, logQ: Double)
    {
        if logX == -.infinity { return (-.infinity, 0) }
        if logY == -.infinity { return (0, -.infinity) }
        if x < (a + 1) / (a + b + 2) {
            let logP = logBetaPrefix(a: a, b: b, logX: logX, logY: logY)
                + log(betaContinuedFraction(a: a, b: b, x: x, y: y))
            return (logP, log1p(-exp(logP)))
        } else {
            let logQ = logBetaPrefix(a: b, b: a, logX: logY, logY: logX)
                + log(betaContinuedFraction(a: b, b: a, x: y, y: x))
            return (log1p(-exp(logQ)), logQ)
        }
    }

    /// I_x(a, b) and 1 - I_x(a, b); see `logRegularizedBeta`.
    static func regularizedBeta(a: Double, b: Double, x: Double, y: Double, logX: Double, logY: Double)
        -> (p: Double, q: Double)
    {
        if logX == -.infinity { return (0, 1) }
        if logY == -.infinity { return (1, 0) }
        if x < (a + 1) / (a + b + 2) {
            let p = exp(logBetaPrefix(a: a, b: b, logX: logX, logY: logY))
                * betaContinuedFraction(a: a, b: b, x: x, y: y)
            return (p, 1 - p)
        } else {
            let q = exp(logBetaPrefix(a: b, b: a, logX: logY, logY: logX))
                * betaContinuedFraction(a: b, b: a, x: y, y: x)
            return (1 - q, q)
        }
    }

    /// x = 1 / (1 + s) and y = s / (1 + s) with their logarithms, for s = t^2 / df >= 0.
    ///
    /// Both t distributions need these; computing them from s (never as 1 - something) keeps
    /// full relative accuracy at both ends, and the huge-t branch avoids overflow of t^2.
    static func splitRatio(t: Double, df: Double) -> (x: Double, y: Double, logX: Double, logY: Double) {
        let at = abs(t)
        var s = at * at / df
        if !s.isFinite { s = (at / df) * at }
        if s.isInfinite {
            // t^2/df overflows: x underflows to 0 but its logarithm is still finite.
            let logS = 2 * log(at) - log(df)
            return (0, 1, -logS, 0)
        }
        if s == 0 { return (1, 0, 0, -.infinity) }
        let logX = -log1p(s)
        let logY = s > 1 ? -log1p(1 / s) : log(s) + logX
        return (1 / (1 + s), s / (1 + s), logX, logY)
    }
}
