import Foundation

/// How much of the error rate a group-sequential design has spent by information fraction t (Lan-DeMets):
/// the boundary at each look is the one that spends exactly what the function adds since the last look,
/// however the looks fall.
public enum AlphaSpending: Sendable, Equatable {
    /// O'Brien-Fleming-type: 2 - 2 Phi(z_{alpha/2} / sqrt(t)) (one-sided alpha); spends almost nothing early.
    case obrienFleming
    /// Pocock-type: alpha * ln(1 + (e - 1) t); spends evenly.
    case pocock
    /// The power family alpha * t^rho (spotify-confidence's): rho 1 spends in proportion to information, larger
    /// rho later.
    case power(rho: Double)

    /// The error rate spent by information fraction `t` (0 at 0, `alpha` from 1 on).
    public func spent(alpha: Double, at t: Double) -> Double {
        guard t > 0 else { return 0 }
        let t = min(t, 1)
        switch self {
        case .obrienFleming: return 2 * Normal.sf(Normal.quantile(1 - alpha / 2) / t.squareRoot())
        case .pocock: return alpha * log(1 + (M_E - 1) * t)
        case .power(let rho): return alpha * pow(t, rho)
        }
    }
}

/// One-sided group-sequential boundaries by recursive numerical integration (Armitage, McPherson and Rowe; Jennison
/// and Turnbull, ch. 19): under the null the score statistic has independent normal increments with variance
/// equal to the information added, so the density of the statistic among the paths that have not crossed yet is
/// carried from look to look on a grid.
public enum GroupSequential {
    /// Points per unit of standard deviation in the integration grid (Simpson's rule).
    static let pointsPerSD = 48.0
    /// The grid reaches this many standard deviations below the mean.
    static let lowerSDs = 9.0

    /// The z boundaries of looks at information fractions `fractions` (increasing, in (0, 1] or beyond), each
    /// spending what `spending` adds since the previous look of one-sided `alpha`. A look that spends nothing gets
    /// an infinite boundary.
    public static func boundaries(fractions: [Double], alpha: Double, spending: AlphaSpending) -> [Double] {
        var bounds: [Double] = []
        // The continuation density of the score statistic S = Z sqrt(t) on a grid, after the last look.
        var grid: [Double] = []
        var density: [Double] = []
        var previousT = 0.0
        var previousSpent = 0.0
        for t in fractions {
            let spent = spending.spent(alpha: alpha, at: t)
            let target = max(0, spent - previousSpent)
            let delta = t - previousT
            let crossing: (Double) -> Double
            if grid.isEmpty {
                crossing = { c in Normal.sf(c) }
            } else {
                let (g, d) = (grid, density)
                let sdStep = delta.squareRoot()
                crossing = { c in
                    let limit = c * t.squareRoot()
                    return simpson(g, d.indices.map { d[$0] * Normal.sf((limit - g[$0]) / sdStep) })
                }
            }
            let c = target <= 0 ? Double.infinity : solve(crossing, target)
            bounds.append(c)
            // Carry the density of the paths still running to this look.
            let upper = (c.isFinite ? c : 12) * t.squareRoot()
            let lower = -lowerSDs * t.squareRoot()
            let n = max(64, Int((upper - lower) / t.squareRoot() * pointsPerSD)) | 1
            let newGrid = (0..<n).map { lower + (upper - lower) * Double($0) / Double(n - 1) }
            if grid.isEmpty {
                density = newGrid.map { s in exp(-s * s / (2 * t)) / (2 * Double.pi * t).squareRoot() }
            } else {
                let sd = delta.squareRoot()
                density = newGrid.map { s in
                    simpson(grid, density.indices.map { density[$0] * exp(-(s - grid[$0]) * (s - grid[$0]) / (2 * delta)) / (sd * (2 * Double.pi).squareRoot()) })
                }
            }
            grid = newGrid
            previousT = t
            previousSpent = max(previousSpent, spent)
        }
        return bounds
    }

    /// Simpson's rule over an evenly spaced, odd-sized grid.
    static func simpson(_ x: [Double], _ y: [Double]) -> Double {
        let n = x.count
        guard n >= 3 else { return 0 }
        let h = (x[n - 1] - x[0]) / Double(n - 1)
        var sum = y[0] + y[n - 1]
        for i in 1..<(n - 1) { sum += (i % 2 == 1 ? 4 : 2) * y[i] }
        return sum * h / 3
    }

    /// The c where the decreasing `crossing(c)` equals `target`, by bisection.
    static func solve(_ crossing: (Double) -> Double, _ target: Double) -> Double {
        var lo = -2.0, hi = 12.0
        for _ in 0..<80 {
            let mid = (lo + hi) / 2
            if crossing(mid) > target { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }
}
