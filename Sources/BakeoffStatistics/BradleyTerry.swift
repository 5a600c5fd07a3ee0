#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a Bradley-Terry model cannot be fitted: the maximum-likelihood strengths do not exist (or are not unique).
public enum BradleyTerryError: Error, Sendable, Equatable {
    /// Fewer than two variants.
    case tooFewVariants(Int)
    /// The control is not one of the variants.
    case controlOutOfRange(Int)
    /// A comparison names a variant outside 0..<variantCount, compares a variant with itself, or has a weight that is
    /// negative or not finite.
    case invalidComparison(BradleyTerry.Comparison)
    /// The variants fall into groups never compared with each other (a variant never compared is a group of its
    /// own), so strengths of different groups are unrelated. Each group's variants, in increasing order.
    case disconnected(groups: [[Int]])
    /// Compared, but some group of variants never lost nor tied against the others (`neverLost`) and some never won
    /// nor tied (`neverWon`): their maximum-likelihood strengths are infinite.
    case unbounded(neverLost: [Int], neverWon: [Int])
}

/// Bradley-Terry strengths of k >= 2 variants from pairwise judgements, fitted as Chatbot Arena fits them.
///
/// P(i beats j) = 1 / (1 + exp(-(s_i - s_j))), strengths on the natural-log scale with the control at 0. Arena's
/// `compute_mle_elo` fits a logistic regression without intercept on +1/-1 design rows in which a tie counts as half
/// a win for each side; this maximizes the same likelihood, sum over pairs of W_ij log P(i beats j) with W_ij the
/// weight of i's wins over j plus half the weight of their ties, by Newton's method on the aggregated k x k counts
/// (with step halving, to full precision). == statsmodels `GLM(y, X, family=Binomial(), freq_weights=w)` on Arena's
/// rows with the control's column dropped.
///
/// The estimate exists and is unique exactly when every variant can be reached from every other through "beat or
/// tied" relations (Zermelo 1929, Ford 1957); otherwise `fit` throws `BradleyTerryError` instead of iterating off
/// to infinity.
public enum BradleyTerry {
    /// Who won one judgement.
    public enum Outcome: String, Sendable, CaseIterable {
        case firstWins, secondWins, tie
    }

    /// One judgement of `first` against `second` (indices of variants), counted `weight` times.
    public struct Comparison: Sendable, Equatable {
        public var first: Int
        public var second: Int
        public var outcome: Outcome
        public var weight: Double

        public init(_ first: Int, _ second: Int, _ outcome: Outcome, weight: Double = 1) {
            self.first = first
            self.second = second
            self.outcome = outcome
            self.weight = weight
        }
    }

    /// Fitted strengths.
    public struct Fit: Sendable, Equatable {
        /// The reference variant, whose strength is 0.
        public var control: Int
        /// s_v, natural-log scale, s_control = 0.
        public var strengths: [Double]
        /// P(v beats the control) = 1 / (1 + exp(-s_v)); 0.5 for the control.
        public var winProbabilities: [Double]
        /// Arena's Elo scale, 400 / ln 10 * s_v + 1000 (the control at 1000).
        public var eloRatings: [Double]
        /// Newton iterations used.
        public var iterations: Int

        public init(control: Int, strengths: [Double], winProbabilities: [Double], eloRatings: [Double], iterations: Int) {
            self.control = control
            self.strengths = strengths
            self.winProbabilities = winProbabilities
            self.eloRatings = eloRatings
            self.iterations = iterations
        }
    }

    /// A cluster bootstrap: the fit on all data and percentile intervals from the resampled fits.
    public struct Bootstrap: Sendable, Equatable {
        /// The fit on every comparison.
        public var estimate: Fit
        /// Percentile intervals of each strength ([0, 0] for the control).
        public var strengthIntervals: [ConfidenceInterval]
        /// Percentile intervals of each P(v beats the control) ([0.5, 0.5] for the control).
        public var winProbabilityIntervals: [ConfidenceInterval]
        /// The strength intervals on the Elo scale.
        public var eloIntervals: [ConfidenceInterval]
        public var confidence: Double
        /// Replicates fitted and used for the intervals.
        public var replicatesUsed: Int
        /// Replicates skipped because their resample was not identifiable (a variant undefeated or winless, or
        /// never compared). They are the most extreme resamples, so many skips mean the intervals are too narrow.
        public var replicatesSkipped: Int

        public init(
            estimate: Fit, strengthIntervals: [ConfidenceInterval], winProbabilityIntervals: [ConfidenceInterval],
            eloIntervals: [ConfidenceInterval], confidence: Double, replicatesUsed: Int, replicatesSkipped: Int
        ) {
            self.estimate = estimate
            self.strengthIntervals = strengthIntervals
            self.winProbabilityIntervals = winProbabilityIntervals
            self.eloIntervals = eloIntervals
            self.confidence = confidence
            self.replicatesUsed = replicatesUsed
            self.replicatesSkipped = replicatesSkipped
        }
    }

    /// 400 / ln 10: Elo points per unit of natural-log strength.
    public static let eloPerUnitStrength = 400 / log(10.0)

    /// Arena's Elo scale: 400 / ln 10 * strength + 1000.
    public static func elo(_ strength: Double) -> Double {
        eloPerUnitStrength * strength + 1000
    }

    /// P(a variant of strength `strength` beats one of strength `other`).
    public static func winProbability(_ strength: Double, against other: Double = 0) -> Double {
        1 / (1 + exp(-(strength - other)))
    }

    /// The maximum-likelihood strengths, the control's fixed at 0.
    public static func fit(_ comparisons: [Comparison], variantCount k: Int, control: Int = 0) throws(BradleyTerryError) -> Fit {
        try validate(variantCount: k, control: control)
        var wins = [Double](repeating: 0, count: k * k)
        for c in comparisons { try add(c, to: &wins, k: k) }
        try checkIdentifiable(wins, k: k)
        return makeFit(wins, k: k, control: control)
    }

    /// Percentile intervals from resampling whole clusters (requests) with replacement.
    ///
    /// Why clusters: the judgements of one request (both orders, every pair of variants) share its difficulty, so
    /// they are not independent; resampling requests keeps that dependence, as Arena resamples battles.
    /// Each replicate draws clusters.count indices in turn from `nextIndex(clusters.count)`, which must return an
    /// index in 0..<clusters.count (the caller's random source, so that runs can be reproduced). Replicates whose
    /// resample is not identifiable are skipped and counted. Intervals are numpy's default (linear) percentiles at
    /// (1 - confidence) / 2 and (1 + confidence) / 2; with no usable replicate they are the whole range. Throws if
    /// the full data are not identifiable.
    public static func bootstrap(
        clusters: [[Comparison]], variantCount k: Int, control: Int = 0, replicates: Int, confidence: Double = 0.95,
        nextIndex: (Int) -> Int
    ) throws(BradleyTerryError) -> Bootstrap {
        precondition(replicates >= 0, "replicates must be >= 0")
        precondition(confidence > 0 && confidence < 1, "confidence must be in (0, 1)")
        try validate(variantCount: k, control: control)
        // Each cluster's judgements aggregated once: (cell of the k x k matrix, weight).
        var cells: [[(Int, Double)]] = []
        var all = [Double](repeating: 0, count: k * k)
        for cluster in clusters {
            var local = [Double](repeating: 0, count: k * k)
            for c in cluster { try add(c, to: &local, k: k) }
            var sparse: [(Int, Double)] = []
            for (cell, w) in local.enumerated() where w > 0 {
                sparse.append((cell, w))
                all[cell] += w
            }
            cells.append(sparse)
        }
        try checkIdentifiable(all, k: k)
        let estimate = makeFit(all, k: k, control: control)

        var samples = [[Double]](repeating: [], count: k)
        var used = 0, skipped = 0
        for _ in 0..<replicates {
            var wins = [Double](repeating: 0, count: k * k)
            for _ in 0..<cells.count {
                let index = nextIndex(cells.count)
                precondition(index >= 0 && index < cells.count, "nextIndex(n) must return an index in 0..<n")
                for (cell, w) in cells[index] { wins[cell] += w }
            }
            if identifiability(wins, k: k) != nil {
                skipped += 1
                continue
            }
            let s = solve(wins, k: k, control: control).strengths
            for v in 0..<k { samples[v].append(s[v]) }
            used += 1
        }
        let tail = (1 - confidence) / 2
        var strengthIntervals: [ConfidenceInterval] = []
        var probabilityIntervals: [ConfidenceInterval] = []
        var eloIntervals: [ConfidenceInterval] = []
        for v in 0..<k {
            if v == control {
                strengthIntervals.append(ConfidenceInterval(lower: 0, upper: 0))
                probabilityIntervals.append(ConfidenceInterval(lower: 0.5, upper: 0.5))
                eloIntervals.append(ConfidenceInterval(lower: elo(0), upper: elo(0)))
                continue
            }
            if samples[v].isEmpty {
                strengthIntervals.append(ConfidenceInterval(lower: -.infinity, upper: .infinity))
                probabilityIntervals.append(ConfidenceInterval(lower: 0, upper: 1))
                eloIntervals.append(ConfidenceInterval(lower: -.infinity, upper: .infinity))
                continue
            }
            let sorted = samples[v].sorted()
            let probabilities = sorted.map { winProbability($0) }  // increasing, as the strengths
            let strength = ConfidenceInterval(lower: percentile(sorted, tail), upper: percentile(sorted, 1 - tail))
            strengthIntervals.append(strength)
            probabilityIntervals.append(
                ConfidenceInterval(lower: percentile(probabilities, tail), upper: percentile(probabilities, 1 - tail)))
            eloIntervals.append(ConfidenceInterval(lower: elo(strength.lower), upper: elo(strength.upper)))
        }
        return Bootstrap(
            estimate: estimate, strengthIntervals: strengthIntervals, winProbabilityIntervals: probabilityIntervals,
            eloIntervals: eloIntervals, confidence: confidence, replicatesUsed: used,
            replicatesSkipped: skipped)
    }

    // MARK: Internals

    static func validate(variantCount k: Int, control: Int) throws(BradleyTerryError) {
        if k < 2 { throw .tooFewVariants(k) }
        if control < 0 || control >= k { throw .controlOutOfRange(control) }
    }

    /// Adds a judgement to W (row-major k x k): W[i][j] is i's wins over j plus half their ties.
    static func add(_ c: Comparison, to wins: inout [Double], k: Int) throws(BradleyTerryError) {
        guard c.first >= 0, c.first < k, c.second >= 0, c.second < k, c.first != c.second,
              c.weight.isFinite, c.weight >= 0
        else { throw .invalidComparison(c) }
        switch c.outcome {
        case .firstWins: wins[c.first * k + c.second] += c.weight
        case .secondWins: wins[c.second * k + c.first] += c.weight
        case .tie:
            wins[c.first * k + c.second] += 0.5 * c.weight
            wins[c.second * k + c.first] += 0.5 * c.weight
        }
    }

    static func checkIdentifiable(_ wins: [Double], k: Int) throws(BradleyTerryError) {
        if let error = identifiability(wins, k: k) { throw error }
    }

    /// nil when the strengths exist and are unique: the "beat or tied" graph (i -> j when W[i][j] > 0) is strongly
    /// connected.
    static func identifiability(_ wins: [Double], k: Int) -> BradleyTerryError? {
        // reach[i][j]: j can be reached from i along i -> j edges.
        var reach = [[Bool]](repeating: [Bool](repeating: false, count: k), count: k)
        for start in 0..<k {
            var stack = [start]
            reach[start][start] = true
            while let i = stack.popLast() {
                for j in 0..<k where !reach[start][j] && wins[i * k + j] > 0 {
                    reach[start][j] = true
                    stack.append(j)
                }
            }
        }
        if (0..<k).allSatisfy({ i in (0..<k).allSatisfy { reach[i][$0] } }) { return nil }
        // Undirected components first (an edge either way).
        var component = [Int](repeating: -1, count: k)
        var groups: [[Int]] = []
        for start in 0..<k where component[start] < 0 {
            var stack = [start]
            component[start] = groups.count
            var members: [Int] = []
            while let i = stack.popLast() {
                members.append(i)
                for j in 0..<k where component[j] < 0 && (wins[i * k + j] > 0 || wins[j * k + i] > 0) {
                    component[j] = groups.count
                    stack.append(j)
                }
            }
            groups.append(members.sorted())
        }
        if groups.count > 1 { return .disconnected(groups: groups) }
        // Strongly connected components: i and j together when each reaches the other. A component no outside
        // variant beat (or tied) never lost; one that beat (or tied) no outside variant never won.
        var neverLost: [Int] = [], neverWon: [Int] = []
        for i in 0..<k {
            let members = (0..<k).filter { reach[i][$0] && reach[$0][i] }
            let outside = (0..<k).filter { !(reach[i][$0] && reach[$0][i]) }
            if !members.contains(where: { m in outside.contains { wins[$0 * k + m] > 0 } }) { neverLost.append(i) }
            if !members.contains(where: { m in outside.contains { wins[m * k + $0] > 0 } }) { neverWon.append(i) }
        }
        return .unbounded(neverLost: neverLost, neverWon: neverWon)
    }

    static func makeFit(_ wins: [Double], k: Int, control: Int) -> Fit {
        let (s, iterations) = solve(wins, k: k, control: control)
        return Fit(control: control, strengths: s, winProbabilities: s.map { winProbability($0) },
                   eloRatings: s.map { elo($0) }, iterations: iterations)
    }

    /// log P(i beats j) = -log(1 + exp(-x)), x = s_i - s_j, without overflow.
    @inline(__always)
    static func logSigmoid(_ x: Double) -> Double {
        x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x))
    }

    static func logLikelihood(_ wins: [Double], _ s: [Double], k: Int) -> Double {
        var total = 0.0
        for i in 0..<k {
            for j in (i + 1)..<k {
                let wij = wins[i * k + j], wji = wins[j * k + i]
                if wij > 0 { total += wij * logSigmoid(s[i] - s[j]) }
                if wji > 0 { total += wji * logSigmoid(s[j] - s[i]) }
            }
        }
        return total
    }

    /// Newton's method with step halving on the concave log-likelihood (identifiable data assumed).
    static func solve(_ wins: [Double], k: Int, control: Int) -> (strengths: [Double], iterations: Int) {
        let free = (0..<k).filter { $0 != control }
        let m = free.count
        var s = [Double](repeating: 0, count: k)
        var current = logLikelihood(wins, s, k: k)
        var iterations = 0
        while iterations < 200 {
            iterations += 1
            var gradient = [Double](repeating: 0, count: k)
            var information = [Double](repeating: 0, count: k * k)
            for i in 0..<k {
                for j in (i + 1)..<k {
                    let wij = wins[i * k + j], wji = wins[j * k + i]
                    let total = wij + wji
                    if total == 0 { continue }
                    let p = winProbability(s[i], against: s[j])
                    let q = winProbability(s[j], against: s[i])
                    let residual = wij * q - wji * p  // = wij - total * p, without cancellation
                    gradient[i] += residual
                    gradient[j] -= residual
                    let h = total * p * q
                    information[i * k + i] += h
                    information[j * k + j] += h
                    information[i * k + j] -= h
                    information[j * k + i] -= h
                }
            }
            var a = [Double](repeating: 0, count: m * m)
            var b = [Double](repeating: 0, count: m)
            for (r, i) in free.enumerated() {
                b[r] = gradient[i]
                for (c, j) in free.enumerated() { a[r * m + c] = information[i * k + j] }
            }
            guard let step = choleskySolve(a, b, m) else { break }
            var t = 1.0
            var next = s
            var value = current
            while true {
                for (r, i) in free.enumerated() { next[i] = s[i] + t * step[r] }
                value = logLikelihood(wins, next, k: k)
                if value >= current - 1e-14 * abs(current) || t < 1e-6 { break }
                t *= 0.5
            }
            let largest = step.reduce(0) { max($0, abs($1)) } * t
            let scale = 1 + next.reduce(0) { max($0, abs($1)) }
            s = next
            current = value
            // Newton converges quadratically: one more step after this would move less than 1e-24.
            if largest <= 1e-12 * scale { break }
        }
        return (s, iterations)
    }

    /// Solves A x = b for a symmetric positive definite m x m matrix (row-major); nil if it is not.
    static func choleskySolve(_ a: [Double], _ b: [Double], _ m: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: m * m)
        for i in 0..<m {
            for j in 0...i {
                var sum = a[i * m + j]
                for p in 0..<j { sum -= l[i * m + p] * l[j * m + p] }
                if i == j {
                    if !(sum > 0) { return nil }
                    l[i * m + i] = sum.squareRoot()
                } else {
                    l[i * m + j] = sum / l[j * m + j]
                }
            }
        }
        var y = [Double](repeating: 0, count: m)
        for i in 0..<m {
            var sum = b[i]
            for p in 0..<i { sum -= l[i * m + p] * y[p] }
            y[i] = sum / l[i * m + i]
        }
        var x = [Double](repeating: 0, count: m)
        for i in stride(from: m - 1, through: 0, by: -1) {
            var sum = y[i]
            for p in (i + 1)..<m { sum -= l[p * m + i] * x[p] }
            x[i] = sum / l[i * m + i]
        }
        return x
    }

    /// numpy's default ('linear') percentile of sorted values, q in [0, 1].
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let h = q * Double(sorted.count - 1)
        let lower = min(Int(h.rounded(.down)), sorted.count - 1)
        let upper = min(lower + 1, sorted.count - 1)
        let t = h - Double(lower)
        let a = sorted[lower], b = sorted[upper]
        let difference = b - a
        return t >= 0.5 ? b - difference * (1 - t) : a + difference * t
    }
}
