/// Fieller's confidence set for the ratio treatmentMean/controlMean of two independent means.
///
/// The set {r : (mT - r mC)^2 <= c^2 (vT + r^2 vC)} is an interval only when the control mean is
/// clearly away from zero; otherwise it is the complement of an interval or the whole line.
public enum FiellerSet: Sendable, Equatable {
    /// [lower, upper].
    case bounded(ConfidenceInterval)
    /// (-inf, lowerBelow] ∪ [upperAbove, +inf).
    case exclusive(lowerBelow: Double, upperAbove: Double)
    /// The whole real line.
    case unbounded

    /// Whether r belongs to the set.
    public func contains(_ r: Double) -> Bool {
        switch self {
        case .bounded(let interval): return interval.lower <= r && r <= interval.upper
        case .exclusive(let lowerBelow, let upperAbove): return r <= lowerBelow || r >= upperAbove
        case .unbounded: return !r.isNaN
        }
    }
}

public enum Fieller {
    /// Fieller's set for treatmentMean / controlMean; varianceOfTreatmentMean = s_t^2 / n_t etc.
    ///
    /// Pass the Welch test's critical value so that ratio 1 is excluded exactly when p < alpha:
    /// r = 1 satisfies the defining inequality iff (mT - mC)^2 <= c^2 (vT + vC), i.e. |t| <= c.
    /// Degenerate input (control mean and its variance both 0 with the inequality unsatisfiable,
    /// or NaN) gives a bounded NaN interval.
    public static func ratioSet(
        treatmentMean mT: Double, varianceOfTreatmentMean vT: Double,
        controlMean mC: Double, varianceOfControlMean vC: Double, criticalValue c: Double
    ) -> FiellerSet {
        let nan = FiellerSet.bounded(ConfidenceInterval(lower: .nan, upper: .nan))
        // a r^2 - 2 b r + k <= 0
        let c2 = c * c
        let a = mC * mC - c2 * vC
        let b = mT * mC
        let k = mT * mT - c2 * vT
        // b^2 - a k without cancellation.
        let disc = c2 * (vC * mT * mT + vT * a)
        if a.isNaN || b.isNaN || k.isNaN || disc.isNaN { return nan }
        if a == 0 {
            // Linear: -2 b r + k <= 0.
            if b > 0 { return .exclusive(lowerBelow: -.infinity, upperAbove: k / (2 * b)) }
            if b < 0 { return .exclusive(lowerBelow: k / (2 * b), upperAbove: .infinity) }
            return k <= 0 ? .unbounded : nan
        }
        if a < 0 && disc <= 0 { return .unbounded }
        // Roots (b -/+ sqrt(disc)) / a, the stable way round.
        let root = max(0, disc).squareRoot()
        let s = b + (b >= 0 ? root : -root)
        let r1: Double, r2: Double
        if s == 0 {
            r1 = 0
            r2 = 0
        } else {
            r1 = s / a
            r2 = k / s
        }
        let lo = min(r1, r2), hi = max(r1, r2)
        return a > 0
            ? .bounded(ConfidenceInterval(lower: lo, upper: hi))
            : .exclusive(lowerBelow: lo, upperAbove: hi)
    }
}
