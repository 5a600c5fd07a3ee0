import Foundation
import Testing
import BakeoffStatistics

private struct NormalFixture: Decodable {
    struct Point: Decodable { let x, cdf, sf: Double }
    struct Quantile: Decodable { let p, x: Double }
    let distribution: [Point]
    let quantile: [Quantile]
}

private struct StudentTFixture: Decodable {
    struct Point: Decodable { let t, df, cdf, sf: Double; let source: String }
    struct Quantile: Decodable { let p, df, t: Double }
    let distribution: [Point]
    let quantile: [Quantile]
}

private struct ChiSquaredFixture: Decodable {
    struct Point: Decodable { let x, df, cdf, sf: Double }
    let distribution: [Point]
}

private struct NoncentralTFixture: Decodable {
    struct Point: Decodable { let t, df, nc, cdf, sf: Double }
    let distribution: [Point]
}

private let normalFixture: NormalFixture = Fixture.load("normal")
private let studentFixture: StudentTFixture = Fixture.load("student_t")
private let chiSquaredFixture: ChiSquaredFixture = Fixture.load("chi_squared")
private let noncentralFixture: NoncentralTFixture = Fixture.load("noncentral_t")

@Suite("Normal distribution")
struct NormalTests {
    @Test("cdf and sf match scipy.stats.norm for x in [-37, 37]")
    func cdfAndSf() {
        var tally = ErrorTally("Normal cdf/sf")
        for point in normalFixture.distribution {
            tally.check(Normal.cdf(point.x), point.cdf, "cdf(\(point.x))")
            tally.check(Normal.sf(point.x), point.sf, "sf(\(point.x))")
        }
        tally.report()
    }

    @Test("quantile matches scipy.stats.norm.ppf for p down to 1e-300")
    func quantile() {
        var tally = ErrorTally("Normal quantile")
        for point in normalFixture.quantile {
            tally.check(Normal.quantile(point.p), point.x, "quantile(\(point.p))")
        }
        tally.report()
    }

    @Test("edge values")
    func edges() {
        #expect(Normal.quantile(0) == -.infinity)
        #expect(Normal.quantile(1) == .infinity)
        #expect(Normal.quantile(0.5) == 0)
        #expect(Normal.quantile(-0.1).isNaN)
        #expect(Normal.quantile(.nan).isNaN)
        #expect(Normal.cdf(.infinity) == 1)
        #expect(Normal.sf(.infinity) == 0)
        #expect(Normal.cdf(-.infinity) == 0)
    }

    @Test("quantile inverts cdf", arguments: [1e-300, 1e-20, 1e-5, 0.01, 0.3, 0.5, 0.7, 0.99])
    func roundTrip(p: Double) {
        // At p = 1e-300 (x = -37) rounding x / sqrt(2) alone costs 2 x^2 ulp in erfc.
        #expect(Accuracy.agrees(Normal.cdf(Normal.quantile(p)), p, relative: 2e-13, absolute: 0))
    }
}

@Suite("Student t distribution")
struct StudentTTests {
    static let dfs: [Double] = [1, 1.5, 2, 3, 5, 10, 30, 100, 1000, 1e4, 1e5, 1e6]

    @Test("cdf and sf match scipy.stats.t", arguments: dfs)
    func cdfAndSf(df: Double) {
        var tally = ErrorTally("StudentT cdf/sf df=\(df)")
        for point in studentFixture.distribution where point.df == df {
            tally.check(StudentT.cdf(point.t, df: df), point.cdf, "cdf(\(point.t), df: \(df)) [\(point.source)]")
            tally.check(StudentT.sf(point.t, df: df), point.sf, "sf(\(point.t), df: \(df)) [\(point.source)]")
        }
        #expect(tally.count > 100)
        tally.report()
    }

    @Test("quantile matches scipy.stats.t.ppf for p in [1e-12, 1 - 1e-12]", arguments: dfs)
    func quantile(df: Double) {
        var tally = ErrorTally("StudentT quantile df=\(df)")
        for point in studentFixture.quantile where point.df == df {
            tally.check(StudentT.quantile(point.p, df: df), point.t, "quantile(\(point.p), df: \(df))")
        }
        #expect(tally.count > 30)
        tally.report()
    }

    @Test("quantile inverts cdf to full precision", arguments: [1.0, 2.5, 7, 40, 3e3, 2e6])
    func roundTrip(df: Double) {
        for p in [1e-15, 1e-9, 0.003, 0.2, 0.26, 0.4, 0.4999, 0.6, 0.9, 1 - 1e-9] {
            let t = StudentT.quantile(p, df: df)
            let back = p < 0.5 ? StudentT.cdf(t, df: df) : StudentT.sf(t, df: df)
            let target = p < 0.5 ? p : 1 - p
            #expect(Accuracy.agrees(back, target, relative: 1e-13, absolute: 0), "df \(df) p \(p): t \(t) -> \(back)")
        }
    }

    @Test("closed forms for df = 1 and 2 and large-df normal limit")
    func closedForms() {
        for t in [-1e8, -30.0, -2, -0.3, 1e-9, 0.7, 4, 1e3] {
            // df = 1: lower tail atan2(1, -t) / pi; df = 2: lower tail 1 / (r (r + |t|)), r = sqrt(2 + t^2).
            let cauchy = t < 0 ? atan2(1, -t) / Double.pi : 0.5 + atan(t) / Double.pi
            #expect(Accuracy.agrees(StudentT.cdf(t, df: 1), cauchy, relative: 1e-14, absolute: 0), "df 1 t \(t)")
            let r = (2 + t * t).squareRoot()
            let small = 1 / (r * (r + abs(t)))
            #expect(Accuracy.agrees(StudentT.cdf(t, df: 2), t < 0 ? small : 1 - small, relative: 1e-14, absolute: 0), "df 2 t \(t)")
        }
        #expect(Accuracy.agrees(StudentT.sf(1e200, df: 1), 1 / (Double.pi * 1e200), relative: 1e-12, absolute: 0))
        #expect(StudentT.cdf(1.5, df: .infinity) == Normal.cdf(1.5))
        for t in [0.1, 1.0, 3, 8] {
            // The t and normal tails differ by a factor 1 + O(t^4 / df).
            #expect(Accuracy.agrees(StudentT.sf(t, df: 1e16), Normal.sf(t), relative: 1e-12, absolute: 0), "t \(t)")
        }
    }

    @Test("edge values do not trap")
    func edges() {
        #expect(StudentT.cdf(0, df: 5) == 0.5)
        #expect(StudentT.cdf(.infinity, df: 5) == 1)
        #expect(StudentT.cdf(-.infinity, df: 5) == 0)
        #expect(StudentT.cdf(1, df: 0).isNaN)
        #expect(StudentT.cdf(1, df: -2).isNaN)
        #expect(StudentT.cdf(.nan, df: 3).isNaN)
        #expect(StudentT.quantile(0, df: 3) == -.infinity)
        #expect(StudentT.quantile(1, df: 3) == .infinity)
        #expect(StudentT.quantile(0.5, df: 3) == 0)
        #expect(StudentT.quantile(1.5, df: 3).isNaN)
        #expect(StudentT.quantile(0.3, df: .nan).isNaN)
        #expect(StudentT.quantile(0.025, df: 0.5).isFinite)
    }
}

@Suite("Chi-square distribution")
struct ChiSquaredTests {
    @Test("cdf and sf match scipy.stats.chi2 for df 1...100")
    func cdfAndSf() {
        var tally = ErrorTally("ChiSquared cdf/sf")
        for point in chiSquaredFixture.distribution {
            tally.check(ChiSquared.cdf(point.x, df: point.df), point.cdf, "cdf(\(point.x), df: \(point.df))")
            tally.check(ChiSquared.sf(point.x, df: point.df), point.sf, "sf(\(point.x), df: \(point.df))")
        }
        #expect(tally.count > 400)
        tally.report()
    }

    @Test("df = 2 is exponential")
    func exponential() {
        for x in [1e-8, 0.3, 2, 40, 1300] {
            #expect(Accuracy.agrees(ChiSquared.sf(x, df: 2), exp(-x / 2), relative: 1e-14, absolute: 0))
            #expect(Accuracy.agrees(ChiSquared.cdf(x, df: 2), -expm1(-x / 2), relative: 1e-14, absolute: 0))
        }
    }

    @Test("edge values")
    func edges() {
        #expect(ChiSquared.cdf(0, df: 3) == 0)
        #expect(ChiSquared.sf(0, df: 3) == 1)
        #expect(ChiSquared.sf(-1, df: 3) == 1)
        #expect(ChiSquared.sf(.infinity, df: 3) == 0)
        #expect(ChiSquared.sf(1, df: 0).isNaN)
    }
}

@Suite("Noncentral t distribution")
struct NoncentralTTests {
    static let dfs: [Double] = [2, 3, 5, 10, 20, 50, 100, 1000, 1e4, 1e5]

    @Test("cdf and sf match scipy.stats.nct", arguments: dfs)
    func cdfAndSf(df: Double) {
        var tally = ErrorTally("NoncentralT cdf/sf df=\(df)")
        for point in noncentralFixture.distribution where point.df == df {
            let context = "(\(point.t), df: \(df), nc: \(point.nc))"
            tally.check(NoncentralT.cdf(point.t, df: df, noncentrality: point.nc), point.cdf, "cdf\(context)")
            tally.check(NoncentralT.sf(point.t, df: df, noncentrality: point.nc), point.sf, "sf\(context)")
        }
        #expect(tally.count > 300)
        tally.report()
    }

    @Test("zero noncentrality is the central t; infinite df is a shifted normal")
    func limits() {
        for t in [-3.0, -0.2, 0, 1.1, 6] {
            #expect(NoncentralT.cdf(t, df: 7, noncentrality: 0) == StudentT.cdf(t, df: 7))
            #expect(NoncentralT.sf(t, df: .infinity, noncentrality: 1.5) == Normal.sf(t - 1.5))
            // Continuity in the noncentrality at zero.
            let near = NoncentralT.cdf(t, df: 7, noncentrality: 1e-9)
            #expect(abs(near - StudentT.cdf(t, df: 7)) < 1e-9)
        }
    }

    @Test("cdf + sf = 1 and monotone in t", arguments: [2.0, 9, 250, 4e4])
    func consistency(df: Double) {
        for nc in [-6.0, -0.7, 0.4, 3, 9.5] {
            var previous = -1.0
            for t in stride(from: -12.0, through: 12.0, by: 0.25) {
                let cdf = NoncentralT.cdf(t, df: df, noncentrality: nc)
                let sf = NoncentralT.sf(t, df: df, noncentrality: nc)
                #expect(abs(cdf + sf - 1) < 5e-13, "df \(df) nc \(nc) t \(t)")
                #expect(cdf >= previous - 5e-13, "df \(df) nc \(nc) t \(t)")
                previous = cdf
            }
        }
    }

    @Test("edge values do not trap")
    func edges() {
        #expect(NoncentralT.cdf(.infinity, df: 4, noncentrality: 2) == 1)
        #expect(NoncentralT.sf(.infinity, df: 4, noncentrality: 2) == 0)
        #expect(NoncentralT.cdf(-.infinity, df: 4, noncentrality: 2) == 0)
        #expect(NoncentralT.cdf(1, df: 0, noncentrality: 2).isNaN)
        #expect(NoncentralT.cdf(1, df: 4, noncentrality: .nan).isNaN)
        #expect(NoncentralT.cdf(0, df: 4, noncentrality: 2) == Normal.cdf(-2))
        #expect(NoncentralT.sf(1, df: 3, noncentrality: 40) > 0.999)
        // Beyond |nc| = 1e4 an approximation takes over; it joins the series smoothly.
        let below = NoncentralT.cdf(20000, df: 5, noncentrality: 9999.9)
        let above = NoncentralT.cdf(20000, df: 5, noncentrality: 10000.1)
        #expect(abs(below - above) < 1e-4)
        #expect(NoncentralT.cdf(1e200, df: 5, noncentrality: 1e300) == 0)
        #expect(NoncentralT.sf(-1e200, df: 5, noncentrality: -1e300) == 0)
    }
}
