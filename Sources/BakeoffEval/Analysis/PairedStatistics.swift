import BakeoffStatistics
import Foundation

/// The statistics an eval's analysis uses, in one place: each is BakeoffStatistics' checked implementation.
enum PairedStatistics {
    struct TResult {
        var mean: Double
        var sd: Double
        var ciLow: Double
        var ciHigh: Double
        var p: Double
    }

    /// Paired t on per-request differences (scipy `ttest_1samp` on the differences).
    static func pairedT(_ d: [Double], alpha: Double) -> TResult {
        let n = Double(d.count)
        let mean = d.reduce(0, +) / max(n, 1)
        guard d.count >= 2 else { return TResult(mean: mean, sd: 0, ciLow: -.infinity, ciHigh: .infinity, p: 1) }
        let sd = sqrt(d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1))
        guard sd > 0 else { return TResult(mean: mean, sd: 0, ciLow: mean, ciHigh: mean, p: mean == 0 ? 1 : 0) }
        let se = sd / sqrt(n)
        let t = mean / se
        let p = min(1, 2 * StudentT.sf(abs(t), df: n - 1))
        let q = StudentT.quantile(1 - alpha / 2, df: n - 1)
        return TResult(mean: mean, sd: sd, ciLow: mean - q * se, ciHigh: mean + q * se, p: p)
    }

    /// Wilcoxon signed-rank p (zeros dropped, normal approximation with tie correction).
    static func wilcoxon(_ d: [Double]) -> Double? {
        let nonzero = d.filter { $0 != 0 }
        let n = nonzero.count
        guard n >= 1 else { return nil }
        let sorted = nonzero.enumerated().sorted { abs($0.element) < abs($1.element) }
        var ranks = [Double](repeating: 0, count: n)
        var tie = 0.0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n, abs(sorted[j + 1].element) == abs(sorted[i].element) { j += 1 }
            let r = Double(i + j + 2) / 2
            for k in i...j { ranks[sorted[k].offset] = r }
            let t = Double(j - i + 1)
            tie += t * t * t - t
            i = j + 1
        }
        let rPlus = zip(nonzero, ranks).filter { $0.0 > 0 }.reduce(0) { $0 + $1.1 }
        let nn = Double(n)
        let mean = nn * (nn + 1) / 4
        let variance = nn * (nn + 1) * (2 * nn + 1) / 24 - tie / 48
        guard variance > 0 else { return 1 }
        let z = (rPlus - mean) / sqrt(variance)
        return min(1, 2 * Normal.sf(abs(z)))
    }

    /// The sign test: wins against losses, ties left out (scipy `binomtest`).
    static func signTest(wins: Int, losses: Int) -> Double {
        BinomialTest.pValue(successes: wins, trials: wins + losses)
    }

    /// Requests needed for the sign test to detect `winRate` among non-tied requests, with a share
    /// `tieRate` tied.
    static func requestsForWinRate(_ winRate: Double, tieRate: Double, alpha: Double, power: Double) -> Int? {
        guard winRate != 0.5, winRate > 0, winRate < 1, tieRate < 1 else { return nil }
        let za = Normal.quantile(1 - alpha / 2), zb = Normal.quantile(power)
        let m = pow((za * 0.5 + zb * sqrt(winRate * (1 - winRate))) / abs(winRate - 0.5), 2)
        return Int((m.rounded(.up)) / (1 - tieRate)) + 1
    }

    /// Requests needed for the paired t test to detect a mean difference `delta` with per-request
    /// differences of standard deviation `sd`.
    static func requestsForMeanDifference(_ delta: Double, sd: Double, alpha: Double, power: Double) -> Int? {
        guard delta != 0, sd > 0 else { return nil }
        let za = Normal.quantile(1 - alpha / 2), zb = Normal.quantile(power)
        return Int((pow((za + zb) * sd / abs(delta), 2)).rounded(.up)) + 2
    }

    /// Bradley-Terry strengths (log-odds against `reference`), ties half a win each; nil when not identifiable.
    static func bradleyTerry(count: Int, wins: [[Double]], reference: Int) -> [Double]? {
        // MM algorithm (Hunter 2004) on the win matrix; wins[i][j]: times i beat j.
        var p = [Double](repeating: 1, count: count)
        for i in 0..<count {
            let w = wins[i].reduce(0, +)
            let l = (0..<count).reduce(0) { $0 + wins[$1][i] }
            if w == 0 || l == 0 { return nil }
        }
        for _ in 0..<10_000 {
            var next = p
            for i in 0..<count {
                let w = wins[i].reduce(0, +)
                var denominator = 0.0
                for j in 0..<count where j != i {
                    let n = wins[i][j] + wins[j][i]
                    if n > 0 { denominator += n / (p[i] + p[j]) }
                }
                next[i] = w / denominator
            }
            let scale = next[reference]
            next = next.map { $0 / scale }
            let change = zip(next, p).map { abs(log($0.0) - log($0.1)) }.max() ?? 0
            p = next
            if change < 1e-12 { break }
        }
        return p.map { log($0) }
    }
}
