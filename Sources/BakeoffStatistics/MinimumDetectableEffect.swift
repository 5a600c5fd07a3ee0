#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension TTestIndependentPower {
    /// The minimum detectable standardized effect: the effect size d at which
    /// `power(effectSize: d, nobs1:, alpha:, ratio:, alternative:)` equals the target power,
    /// solved to full precision (Brent on a sign-changing bracket).
    ///
    /// == statsmodels TTestIndPower().solve_power(effect_size=None, nobs1, alpha, power, ratio,
    /// alternative), with its sign convention: positive for two-sided and 'larger', negative for
    /// 'smaller' (the mirror image of 'larger'). statsmodels stops at its solver tolerance
    /// (brentq_expanding xtol 1e-5, absolute) and for 'smaller' at large nobs1 can return a
    /// spurious positive root; this returns the exact root of the same power equation.
    ///
    /// nobs1 is the control sample and ratio = nobs2 / nobs1. NaN when the inputs are invalid
    /// (df = nobs1 (1 + ratio) - 2 <= 0, alpha or power outside (0, 1), ratio <= 0) or the target
    /// cannot be reached by any effect (power <= alpha, the power at d = 0).
    public static func solveEffectSize(nobs1: Double, alpha: Double, power target: Double, ratio: Double, alternative: Alternative) -> Double {
        if !(nobs1.isFinite && alpha > 0 && alpha < 1 && target > 0 && target < 1 && ratio > 0 && ratio.isFinite) {
            return .nan
        }
        let nobs2 = nobs1 * ratio
        if !(nobs1 > 0 && nobs1 + nobs2 > 2) { return .nan }
        if target <= alpha { return .nan }
        // 'smaller' at -d is exactly 'larger' at d (NoncentralT.cdf(t, -nc) == sf(-t, nc)).
        let solved: Alternative = alternative == .smaller ? .larger : alternative
        let sign: Double = alternative == .smaller ? -1 : 1
        func f(_ d: Double) -> Double {
            power(effectSize: d, nobs1: nobs1, alpha: alpha, ratio: ratio, alternative: solved) - target
        }
        // Normal-approximation start: d = (z_{1 - tail alpha} + z_power) sqrt(1/nobs1 + 1/nobs2).
        let tailAlpha = alternative == .twoSided ? 0.5 * alpha : alpha
        let scale = (1 / nobs1 + 1 / nobs2).squareRoot()
        let z = Normal.quantile(1 - tailAlpha) + Normal.quantile(target)
        let guess = max(z, 0.1) * scale
        var lo = guess, fLo = f(lo)
        if fLo.isNaN { return .nan }
        var hi: Double, fHi: Double
        if fLo < 0 {
            // The t test needs a larger effect than the normal approximation: expand upwards.
            hi = 2 * lo
            fHi = f(hi)
            var steps = 0
            while fHi < 0 {
                lo = hi; fLo = fHi
                hi *= 2
                fHi = f(hi)
                steps += 1
                if steps > 200 || hi.isInfinite || fHi.isNaN { return .nan }
            }
        } else {
            // Power already reached: shrink towards 0, where the power is alpha < target.
            hi = lo; fHi = fLo
            var steps = 0
            repeat {
                hi = lo; fHi = fLo
                lo *= 0.5
                fLo = f(lo)
                steps += 1
                if steps > 1100 || fLo.isNaN { return .nan }
            } while fLo >= 0
        }
        return sign * Brent.root(f, lo, hi, fLo, fHi)
    }
}

/// Days until the planned sample is reached at the observed traffic rate.
public enum DaysLeft {
    /// (plannedUsers - currentUsers) / usersPerDay; 0 when the plan is already reached, nil when
    /// it cannot be reached (rate 0, negative or not finite) or an input is not a number.
    public static func days(currentUsers: Double, plannedUsers: Double, usersPerDay: Double) -> Double? {
        if currentUsers.isNaN || plannedUsers.isNaN || usersPerDay.isNaN { return nil }
        if currentUsers >= plannedUsers { return 0 }
        if !(usersPerDay > 0 && usersPerDay.isFinite) { return nil }
        return (plannedUsers - currentUsers) / usersPerDay
    }
}
