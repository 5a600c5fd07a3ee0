/// Non-binding futility boundaries by beta spending: at each look, the boundary below which a true effect of the
/// planned size would rarely fall, so that an experiment heading nowhere can stop early. Non-binding: the
/// efficacy boundaries are computed as if futility did not exist, so ignoring a futility stop keeps the error rate
/// at alpha (Jennison and Turnbull 7.2; gsDesign's test.type 4).
extension GroupSequentialDesign {
    /// The futility boundaries (z, on the side of the planned effect: a look whose z is below its boundary may stop
    /// for futility) of `looks`, spending `beta` (1 - power) by `spending` over the looks' spending times, when the
    /// planned effect gives E[Z] = drift at the horizon's information (`horizonInformation`, on the scale of the
    /// looks' information). The efficacy boundaries are this design's; at a look that spends all of beta (the
    /// horizon) the futility boundary meets the efficacy one.
    public func futilityBoundaries(_ looks: [Look], beta: Double, spending betaSpending: AlphaSpending, drift: Double,
                                   horizonInformation: Double) -> [Double] {
        let efficacy = boundaries(looks)
        let info = looks.map { $0.information / horizonInformation }
        var state = GroupSequentialRecursion.State.start
        var bounds: [Double] = []
        var spentBefore = 0.0
        for k in looks.indices {
            let delta = max(info[k] - (k > 0 ? info[k - 1] : 0), 1e-12)
            let shift = drift * delta
            let scale = info[k].squareRoot()
            let spent = betaSpending.spent(alpha: beta, at: looks[k].spendingTime)
            let target = spent - spentBefore
            let upper = efficacy[k].isFinite ? efficacy[k] * scale : .infinity
            var b: Double
            if looks[k].spendingTime >= 1 {
                b = efficacy[k]
            } else if target <= 0 {
                b = -.infinity
            } else {
                // P(W below b * scale at this look, still running) increases with b: bisection.
                var lo = -12.0, hi = efficacy[k].isFinite ? efficacy[k] : 12.0
                for _ in 0..<60 {
                    let mid = (lo + hi) / 2
                    let p = GroupSequentialRecursion.crossing(state, delta: delta, shift: shift, upper: .infinity, lower: mid * scale).lower
                    if p < target { lo = mid } else { hi = mid }
                }
                b = (lo + hi) / 2
                if efficacy[k].isFinite { b = min(b, efficacy[k]) }
            }
            bounds.append(b)
            spentBefore = max(spentBefore, spent)
            if k + 1 < looks.count {
                let mean = drift * info[k]
                let top = upper.isFinite ? upper : mean + GroupSequentialRecursion.tailSDs * scale
                let bottom = b.isFinite ? b * scale : mean - GroupSequentialRecursion.tailSDs * scale
                guard top > bottom else {
                    bounds += Array(repeating: efficacy[k + 1], count: looks.count - k - 1)
                    break
                }
                state = GroupSequentialRecursion.advance(state, delta: delta, shift: shift, lower: bottom, upper: top,
                                                         step: GroupSequentialRecursion.step(info, k))
            }
        }
        return bounds
    }

    /// The probability of first crossing `lower` at each look (paths stop at either boundary) when E[Z] = drift at the
    /// last look's information: what a futility boundary spends.
    public static func lowerCrossing(_ looks: [Look], upper: [Double], lower: [Double], drift: Double) -> [Double] {
        GroupSequentialRecursion.crossing(looks, upper: upper, lower: lower, drift: drift).map(\.lower)
    }
}
