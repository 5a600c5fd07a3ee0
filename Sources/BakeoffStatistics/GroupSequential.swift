#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// How much of the error rate a group-sequential design has spent by information fraction t (Lan-DeMets):
/// the boundary at each look is the one that spends exactly what the function adds since the last look,
/// however the looks fall.
public enum AlphaSpending: Sendable, Hashable {
    /// O'Brien-Fleming-type: 2 - 2 Phi(z_{alpha/2} / sqrt(t)); spends almost nothing early.
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
        case .obrienFleming: return min(alpha, 2 * Normal.sf(Normal.quantile(1 - alpha / 2) / t.squareRoot()))
        case .pocock: return alpha * log(1 + (M_E - 1) * t)
        case .power(let rho): return alpha * pow(t, rho)
        }
    }

    /// Reads "obrien-fleming" (or "obf"), "pocock", "power" (rho 1) or "power:RHO" (RHO in (0, 20]): the names
    /// configs and the command line use. Nil for anything else.
    public init?(name: String) {
        let lower = String(name.lowercased().map { $0 == "_" ? "-" : $0 })
        switch lower {
        case "obrien-fleming", "o'brien-fleming", "obf": self = .obrienFleming
        case "pocock": self = .pocock
        case "power": self = .power(rho: 1)
        default:
            guard lower.hasPrefix("power:"), let rho = Double(lower.dropFirst(6)), rho > 0, rho <= 20 else { return nil }
            self = .power(rho: rho)
        }
    }

    /// The name `init(name:)` reads: "obrien-fleming", "pocock", "power:3".
    public var name: String {
        switch self {
        case .obrienFleming: return "obrien-fleming"
        case .pocock: return "pocock"
        case .power(let rho): return "power:" + (rho == rho.rounded() ? String(Int(rho)) : String(rho))
        }
    }

    /// "O'Brien-Fleming-type", "Pocock-type", "power family (rho 3)".
    public var title: String {
        switch self {
        case .obrienFleming: return "O'Brien-Fleming-type"
        case .pocock: return "Pocock-type"
        case .power(let rho): return "power family (rho \(rho == rho.rounded() ? String(Int(rho)) : String(rho)))"
        }
    }
}

/// One interim or final analysis of a group-sequential design.
public struct Look: Sendable, Hashable {
    /// The statistical information at the look on any increasing scale (users, 1 / variance): only ratios
    /// between looks matter, since they set the correlation sqrt(I_i / I_j) of the looks' z statistics.
    public var information: Double
    /// Where the look falls on the spending function's scale: the information fraction of the horizon (users
    /// over planned users), or the calendar fraction of a planned duration. 1 and above spends all of alpha.
    public var spendingTime: Double

    public init(information: Double, spendingTime: Double) {
        self.information = information
        self.spendingTime = spendingTime
    }

    /// Looks at information fractions `t` (information and spending on one scale).
    public static func fractions(_ t: [Double]) -> [Look] { t.map { Look(information: $0, spendingTime: $0) } }
}

/// A group-sequential test: its level, spending function and sides.
///
/// Boundaries come from recursive numerical integration (Armitage, McPherson and Rowe; Jennison and Turnbull,
/// ch. 19): the score statistic W_k = Z_k sqrt(I_k) has independent normal increments, so the density of W among
/// the paths that have not crossed yet is carried from look to look on a grid and each boundary is solved so that
/// the probability of first crossing there is what the spending function adds at that look.
public struct GroupSequentialDesign: Sendable, Hashable {
    /// The overall level: two-sided (|Z| crosses) or one-sided (Z crosses the upper boundary).
    public var alpha: Double
    public var spending: AlphaSpending
    public var twoSided: Bool

    public init(alpha: Double, spending: AlphaSpending = .obrienFleming, twoSided: Bool = true) {
        self.alpha = alpha
        self.spending = spending
        self.twoSided = twoSided
    }

    /// The alpha spent by spending time `t`: a two-sided design spends the one-sided function at alpha / 2 on each
    /// side (as gsDesign, rpact and ldbounds do: two-sided 0.05 is one-sided 0.025 twice; for O'Brien-Fleming-type
    /// spending this differs from the function at alpha).
    public func spent(at t: Double) -> Double {
        twoSided ? 2 * spending.spent(alpha: alpha / 2, at: t) : spending.spent(alpha: alpha, at: t)
    }

    /// The z boundaries of `looks` (information increasing): |Z_k| >= c_k (two-sided) or Z_k >= c_k rejects at look
    /// k. A look that spends nothing gets an infinite boundary. Cached: every metric of a report shares its looks.
    public func boundaries(_ looks: [Look]) -> [Double] {
        let key = BoundaryCache.Key(design: self, looks: looks)
        if let cached = BoundaryCache.shared.value(key) { return cached }
        let bounds = GroupSequentialRecursion.boundaries(looks, design: self)
        BoundaryCache.shared.store(key, bounds)
        return bounds
    }

    /// The boundary at the last of `looks`.
    public func currentBoundary(_ looks: [Look]) -> Double { boundaries(looks).last ?? .infinity }

    /// The probability of first crossing the upper and the lower boundary at each look when E[Z_k] =
    /// drift * sqrt(I_k / I_ref) (the drift on the scale of `information`, so drift 0 is the null).
    public func crossingProbabilities(_ looks: [Look], bounds: [Double], drift: Double = 0) -> [(upper: Double, lower: Double)] {
        GroupSequentialRecursion.crossing(looks, upper: bounds, lower: twoSided ? bounds.map { -$0 } : nil, drift: drift)
    }

    /// The repeated p-value at the last look: the smallest level at which this design, with these looks, rejects
    /// now (z is the last look's statistic; its sign matters one-sided). It is below `alpha` exactly when z
    /// crosses `boundaries(looks).last` (Jennison and Turnbull, 9.2).
    public func repeatedPValue(z: Double, looks: [Look]) -> Double {
        guard z.isFinite, !looks.isEmpty else { return .nan }
        let statistic = twoSided ? abs(z) : z
        if statistic <= 0 { return 1 }
        return RepeatedPValueTable.table(for: self, looks: looks).pValue(statistic)
    }

    /// The estimate of the drift (the effect in units of the last look's standard error times sqrt of its
    /// information) that is median-unbiased under the stage-wise ordering, after the upper boundary was crossed at
    /// the last of `looks` with statistic z (Jennison and Turnbull, 8.4): the drift at which a result at least as
    /// extreme (an earlier upper crossing, or this look with a larger Z) has probability one half. Returns the
    /// effect on the scale of the estimate: multiply by the last look's standard error.
    public func medianUnbiasedZ(z: Double, looks: [Look]) -> Double {
        guard let last = looks.last, z.isFinite else { return .nan }
        let sign: Double = z < 0 ? -1 : 1
        let statistic = abs(z)
        var bounds = boundaries(looks)
        bounds[bounds.count - 1] = statistic
        let reference = last.information
        // P(at least as extreme | drift) increases with the drift; drift is per sqrt(information / reference).
        func extreme(_ drift: Double) -> Double {
            GroupSequentialRecursion.crossing(looks, upper: bounds, lower: twoSided ? bounds.dropLast().map { -$0 } + [-.infinity] : nil,
                                              drift: drift, reference: reference).reduce(0) { $0 + $1.upper }
        }
        var lo = statistic - 10, hi = statistic + 2
        for _ in 0..<34 {
            let mid = (lo + hi) / 2
            if extreme(mid) < 0.5 { lo = mid } else { hi = mid }
        }
        return sign * (lo + hi) / 2
    }

    /// The drift (E[Z] at the full information of `looks`' last look) at which the design rejects with
    /// probability `power` on the upper side: divided by the fixed-horizon test's drift z_{1-alpha/sides} +
    /// z_power and squared, the maximum sample's inflation factor.
    public func drift(forPower power: Double, looks: [Look]) -> Double {
        let bounds = boundaries(looks)
        var lo = 0.0, hi = 20.0
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            let p = GroupSequentialRecursion.crossing(looks, upper: bounds, lower: twoSided ? bounds.map { -$0 } : nil, drift: mid)
                .reduce(0) { $0 + $1.upper }
            if p < power { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The maximum sample over the fixed-horizon sample for the same power (at least 1), and the expected sample
    /// under the alternative and under the null, as fractions of the fixed-horizon sample, for looks at spending
    /// fractions `fractions` of the maximum.
    public func sampleSize(power: Double, fractions: [Double]) -> GroupSequentialSampleSize {
        let looks = Look.fractions(fractions)
        let bounds = boundaries(looks)
        let fixedDrift = Normal.quantile(1 - alpha / (twoSided ? 2 : 1)) + Normal.quantile(power)
        let drift = self.drift(forPower: power, looks: looks)
        let inflation = (drift / fixedDrift) * (drift / fixedDrift)
        func expected(_ d: Double) -> Double {
            let crossing = GroupSequentialRecursion.crossing(looks, upper: bounds, lower: twoSided ? bounds.map { -$0 } : nil, drift: d)
            var stopped = 0.0, sum = 0.0
            for (k, p) in crossing.enumerated() {
                let stop = p.upper + p.lower
                sum += stop * fractions[k]
                stopped += stop
            }
            return sum + (1 - stopped) * (fractions.last ?? 1)
        }
        return GroupSequentialSampleSize(inflationFactor: inflation, expectedUnderAlternative: inflation * expected(drift),
                                         expectedUnderNull: inflation * expected(0), drift: drift, boundaries: bounds)
    }
}

/// What a group-sequential design costs in users against the fixed-horizon test with the same power.
public struct GroupSequentialSampleSize: Sendable, Equatable {
    /// Maximum sample / fixed-horizon sample.
    public var inflationFactor: Double
    /// Expected sample when the planned effect is real / fixed-horizon sample.
    public var expectedUnderAlternative: Double
    /// Expected sample when there is no effect / fixed-horizon sample.
    public var expectedUnderNull: Double
    /// E[Z] at the maximum sample for the planned power.
    public var drift: Double
    /// The z boundaries at the planned looks.
    public var boundaries: [Double]
}

/// The recursion behind every group-sequential computation, on the score scale W = Z sqrt(I / I_ref).
enum GroupSequentialRecursion {
    /// Grid points per standard deviation of the smaller neighbouring increment (Simpson's rule).
    static let pointsPerSD = 8.0
    /// The grid reaches this many standard deviations beyond the mean where no boundary cuts it.
    static let tailSDs = 8.5
    /// No grid gets more points than this (thousands of looks close together).
    static let maximumPoints = 8001

    /// Paths still running at a look: grid points and their masses (Simpson weight times density).
    struct State {
        var points: [Double]
        var masses: [Double]
        static let start = State(points: [0], masses: [1])
    }

    /// Information on a scale where the last look is 1.
    static func scaled(_ looks: [Look], reference: Double? = nil) -> [Double] {
        let ref = reference ?? looks.last?.information ?? 1
        return looks.map { $0.information / ref }
    }

    /// The probability that a path from `state` crosses above `upper` or below `lower` (on the W scale) at a look
    /// `delta` later in information, with mean increment `shift`.
    static func crossing(_ state: State, delta: Double, shift: Double, upper: Double, lower: Double) -> (upper: Double, lower: Double) {
        let sd = delta.squareRoot()
        var up = 0.0, down = 0.0
        for j in state.points.indices {
            let m = state.masses[j]
            guard m != 0 else { continue }
            let y = state.points[j] + shift
            if upper.isFinite { up += m * Normal.sf((upper - y) / sd) }
            if lower.isFinite { down += m * Normal.cdf((lower - y) / sd) }
        }
        return (up, down)
    }

    /// The derivative of the two-sided crossing probability in c when upper = c * scale and lower = -c * scale.
    static func crossingSlope(_ state: State, delta: Double, shift: Double, upper: Double, lower: Double, scale: Double) -> Double {
        let sd = delta.squareRoot()
        var slope = 0.0
        for j in state.points.indices {
            let m = state.masses[j]
            guard m != 0 else { continue }
            let y = state.points[j] + shift
            if upper.isFinite { slope -= m * Normal.pdf((upper - y) / sd) * scale / sd }
            if lower.isFinite { slope -= m * Normal.pdf((lower - y) / sd) * scale / sd }
        }
        return slope
    }

    /// The paths of `state` carried `delta` on (mean increment `shift`) and cut to (lower, upper), on a grid of
    /// step about `step`.
    static func advance(_ state: State, delta: Double, shift: Double, lower: Double, upper: Double, step: Double) -> State {
        let intervals = max(2, min(maximumPoints - 1, Int(((upper - lower) / step).rounded(.up))))
        let n = (intervals % 2 == 0 ? intervals : intervals + 1) + 1
        let h = (upper - lower) / Double(n - 1)
        let sd = delta.squareRoot()
        let norm = 1 / (sd * (2 * Double.pi).squareRoot())
        let reach = tailSDs * sd
        // Old points in order, to cut each sum to the kernel's reach.
        let old = state.points, mass = state.masses
        var points = [Double](repeating: 0, count: n), masses = [Double](repeating: 0, count: n)
        // Old grids after the first look are evenly spaced: along one, the kernel exp(-d^2 / 2 delta) follows the
        // recurrence e' = e r, r' = r q (two multiplications instead of an exp per pair).
        let spacing = old.count > 1 ? old[1] - old[0] : 0
        let even = old.count > 2 && abs((old[old.count - 1] - old[0]) / Double(old.count - 1) - spacing) <= 1e-12 * max(1, abs(spacing))
        let q = exp(-spacing * spacing / delta)
        var first = 0
        for i in 0..<n {
            let x = lower + h * Double(i)
            points[i] = x
            var density = 0.0
            while first < old.count && old[first] + shift < x - reach { first += 1 }
            var j = first
            if even, j < old.count {
                var d = x - old[j] - shift
                var e = exp(-d * d / (2 * delta))
                var r = exp((2 * d * spacing - spacing * spacing) / (2 * delta))
                while j < old.count && d >= -reach {
                    density += mass[j] * e
                    e *= r
                    r *= q
                    d -= spacing
                    j += 1
                }
            }
            while j < old.count {
                let d = x - old[j] - shift
                if d < -reach { break }
                if mass[j] != 0 { density += mass[j] * exp(-d * d / (2 * delta)) }
                j += 1
            }
            let weight: Double = (i == 0 || i == n - 1) ? 1 : (i % 2 == 1 ? 4 : 2)
            masses[i] = density * norm * weight * h / 3
        }
        return State(points: points, masses: masses)
    }

    /// The grid step for the look at index k: a fraction of the smaller of the increments on either side.
    static func step(_ info: [Double], _ k: Int) -> Double {
        let before = info[k] - (k > 0 ? info[k - 1] : 0)
        let after = k + 1 < info.count ? info[k + 1] - info[k] : before
        return max(min(before, after), 1e-12).squareRoot() / pointsPerSD
    }

    /// Increments of `info`, each at least a tiny positive amount (repeated looks at the same information).
    static func increment(_ info: [Double], _ k: Int) -> Double {
        max(info[k] - (k > 0 ? info[k - 1] : 0), 1e-12)
    }

    static func boundaries(_ looks: [Look], design: GroupSequentialDesign) -> [Double] {
        let twoSided = design.twoSided
        let info = scaled(looks)
        var state = State.start
        var bounds: [Double] = []
        var spentBefore = 0.0
        for k in looks.indices {
            let spent = design.spent(at: looks[k].spendingTime)
            let target = spent - spentBefore
            let delta = increment(info, k)
            let scale = info[k].squareRoot()
            let c: Double
            if target <= 0 {
                c = .infinity
            } else {
                c = solve(target: target) { c in
                    let p = crossing(state, delta: delta, shift: 0, upper: c * scale, lower: twoSided ? -c * scale : -.infinity)
                    let slope = crossingSlope(state, delta: delta, shift: 0, upper: c * scale, lower: twoSided ? -c * scale : -.infinity, scale: scale)
                    return (p.upper + p.lower, slope)
                }
            }
            bounds.append(c)
            spentBefore = max(spentBefore, spent)
            if k + 1 < looks.count {
                let upper = c.isFinite ? c * scale : tailSDs * scale
                let lower = twoSided && c.isFinite ? -c * scale : -tailSDs * scale
                state = advance(state, delta: delta, shift: 0, lower: lower, upper: upper, step: step(info, k))
            }
        }
        return bounds
    }

    /// The probability of first crossing `upper` and `lower` (z scale; nil or -inf: none) at each look, with
    /// E[Z_k] = drift * sqrt(I_k / reference) (reference: the last look's information).
    static func crossing(_ looks: [Look], upper: [Double], lower: [Double]?, drift: Double, reference: Double? = nil) -> [(upper: Double, lower: Double)] {
        let info = scaled(looks, reference: reference)
        var state = State.start
        var out: [(upper: Double, lower: Double)] = []
        for k in looks.indices {
            let delta = increment(info, k)
            let shift = drift * delta
            let scale = info[k].squareRoot()
            let u = upper[k].isFinite ? upper[k] * scale : .infinity
            let l = lower.map { $0[k].isFinite ? $0[k] * scale : -.infinity } ?? -.infinity
            out.append(crossing(state, delta: delta, shift: shift, upper: u, lower: l))
            if k + 1 < looks.count {
                let mean = drift * info[k]
                let top = u.isFinite ? u : mean + tailSDs * scale
                let bottom = l.isFinite ? l : mean - tailSDs * scale
                guard top > bottom else { break }
                state = advance(state, delta: delta, shift: shift, lower: bottom, upper: top, step: step(info, k))
            }
        }
        while out.count < looks.count { out.append((0, 0)) }
        return out
    }

    /// The c where the decreasing crossing probability equals `target`: Newton's method kept inside a bisection
    /// bracket.
    static func solve(target: Double, _ f: (Double) -> (value: Double, slope: Double)) -> Double {
        var lo = 0.0, hi = 40.0
        var c = -Normal.quantile(min(0.5, target))
        for _ in 0..<100 {
            let (value, slope) = f(c)
            let g = value - target
            if abs(g) <= target * 1e-12 { return c }
            if g > 0 { lo = c } else { hi = c }
            var next = slope < 0 ? c - g / slope : .nan
            if !(next > lo && next < hi) { next = (lo + hi) / 2 }
            if abs(next - c) < 1e-12 || hi - lo < 1e-12 { return next }
            c = next
        }
        return c
    }
}

/// A design's boundary at the last look as a function of the level, for repeated p-values: computed at a ladder
/// of levels (and the design's own, so that p < alpha exactly when the boundary is crossed) and inverted by
/// monotone interpolation of log(level) against the boundary.
struct RepeatedPValueTable: Sendable {
    /// (boundary, log level), boundary increasing.
    var nodes: [(c: Double, logP: Double)]

    static let levels: [Double] = [0.999, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.025, 0.01, 0.005, 2e-3, 1e-3, 3e-4, 1e-4, 1e-5, 1e-6,
                                   1e-8, 1e-10, 1e-12]

    static func table(for design: GroupSequentialDesign, looks: [Look]) -> RepeatedPValueTable {
        let key = BoundaryCache.Key(design: design, looks: looks)
        if let cached = BoundaryCache.shared.table(key) { return cached }
        var levels = Set(Self.levels)
        // Exact at the design's alpha and its Bonferroni-Holm shares, so that p < level exactly when the boundary at
        // that level is crossed.
        for j in 1...6 { levels.insert(design.alpha / Double(j)) }
        var nodes: [(c: Double, logP: Double)] = []
        for level in levels.sorted(by: >) {
            var d = design
            d.alpha = level
            let c = d.currentBoundary(looks)
            guard c.isFinite else { continue }
            nodes.append((c, log(level)))
        }
        nodes.sort { $0.c < $1.c }
        // Keep the boundary strictly increasing as the level falls.
        var strict: [(c: Double, logP: Double)] = []
        for n in nodes where strict.last.map({ n.c > $0.c && n.logP < $0.logP }) ?? true { strict.append(n) }
        let table = RepeatedPValueTable(nodes: strict)
        BoundaryCache.shared.store(key, table)
        return table
    }

    /// The level whose boundary is `statistic`: Fritsch-Carlson monotone cubic between nodes, linear extrapolation
    /// of log(level) beyond the last (a normal tail's log is close to linear in c over a short reach).
    func pValue(_ statistic: Double) -> Double {
        // No level's boundary is finite (nothing is spent yet at this look): no level rejects.
        guard let first = nodes.first, let last = nodes.last else { return 1 }
        if statistic <= first.c { return 1 }
        if statistic >= last.c {
            guard nodes.count >= 2 else { return exp(last.logP) }
            let a = nodes[nodes.count - 2]
            // log sf(z) falls like -z^2/2: extrapolate with the tail's own slope at the last node.
            let slope = min((last.logP - a.logP) / (last.c - a.c), -last.c)
            return exp(last.logP + slope * (statistic - last.c))
        }
        var k = 0
        while nodes[k + 1].c < statistic { k += 1 }
        let x: [Double] = nodes.map(\.c), y: [Double] = nodes.map(\.logP)
        var secant: [Double] = []
        for i in 0..<(x.count - 1) { secant.append((y[i + 1] - y[i]) / (x[i + 1] - x[i])) }
        func tangent(_ i: Int) -> Double {
            if i == 0 { return secant[0] }
            if i == x.count - 1 { return secant[i - 1] }
            let a = secant[i - 1], b = secant[i]
            guard a * b > 0 else { return 0 }
            let right: Double = x[i + 1] - x[i], left: Double = x[i] - x[i - 1]
            let w1 = 2 * right + left, w2 = right + 2 * left
            return (w1 + w2) / (w1 / a + w2 / b)
        }
        let h = x[k + 1] - x[k], s = (statistic - x[k]) / h
        let h00 = (1 + 2 * s) * (1 - s) * (1 - s), h10 = s * (1 - s) * (1 - s)
        let h01 = s * s * (3 - 2 * s), h11 = s * s * (s - 1)
        let logP = h00 * y[k] + h10 * h * tangent(k) + h01 * y[k + 1] + h11 * h * tangent(k + 1)
        return min(1, exp(logP))
    }
}

/// Boundaries and p-value tables already computed, shared by every report in the process (a report's metrics and
/// arms share their looks; the daily points of a series repeat each other's).
final class BoundaryCache: Sendable {
    struct Key: Hashable, Sendable {
        var design: GroupSequentialDesign
        var looks: [Look]
    }
    static let shared = BoundaryCache()
    static let capacity = 2048

    private let entries = Mutex<(bounds: [Key: [Double]], tables: [Key: RepeatedPValueTable])>(([:], [:]))

    func value(_ key: Key) -> [Double]? { entries.withLock { $0.bounds[key] } }
    func table(_ key: Key) -> RepeatedPValueTable? { entries.withLock { $0.tables[key] } }

    func store(_ key: Key, _ bounds: [Double]) {
        entries.withLock {
            if $0.bounds.count >= Self.capacity { $0.bounds.removeAll(keepingCapacity: true) }
            $0.bounds[key] = bounds
        }
    }

    func store(_ key: Key, _ table: RepeatedPValueTable) {
        entries.withLock {
            if $0.tables.count >= Self.capacity { $0.tables.removeAll(keepingCapacity: true) }
            $0.tables[key] = table
        }
    }
}

/// The boundaries of the older API: one-sided, looks at information fractions.
public enum GroupSequential {
    /// One-sided z boundaries of looks at information fractions `fractions` spending `alpha` by `spending`.
    public static func boundaries(fractions: [Double], alpha: Double, spending: AlphaSpending) -> [Double] {
        GroupSequentialDesign(alpha: alpha, spending: spending, twoSided: false).boundaries(Look.fractions(fractions))
    }
}
