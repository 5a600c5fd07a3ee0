import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffReport
import BakeoffSimulation

// End-to-end check of the metric definitions and statistics against an independent reference
// (pandas + gbstats + scipy): scripts/reference/analysis_fixture.py generates the event logs in
// Fixtures/analysis/<name>.jsonl and the expected results in <name>.expected.json (the structure is
// documented at the top of that script). Only the public API is used.

// MARK: - Expected values

struct ExpectedAnalysis: Decodable, Sendable {
    struct Variant: Decodable, Sendable {
        var users: Int
        var requests: Int
    }

    struct Quality: Decodable, Sendable {
        var users_in_several_variants: Int
        var duplicate_request_ids: Int
        var feedback_missing_target: Int
    }

    struct Side: Decodable, Sendable {
        var mean: Double?
        var users: Int
        var units: Double
    }

    struct NaiveSide: Decodable, Sendable {
        var mean: Double?
        var units: Int
    }

    struct Naive: Decodable, Sendable {
        var control: NaiveSide
        var treatment: NaiveSide
        var absolute_diff: Double?
        var p_value: Double?
    }

    struct MetricCase: Decodable, Sendable {
        var name: String
        var level: String
        var variant: String
        var control: Side
        var treatment: Side
        var absolute_diff: Double?
        var absolute_ci: [Double]?
        var p_value: Double?
        var welch_df: Double?
        var relative_lift: Double?
        var relative_ci_kind: String?
        var relative_ci: [Double]?
        var naive: Naive
        var welch_scipy_p_value: Double?
    }

    struct Quantile: Decodable, Sendable {
        var name: String
        var variant: String
        var value: Double
    }

    var experiment: String
    var alpha: Double
    var control: String
    var split: [String: Double]
    var variants: [String: Variant]
    var srm_p_value: Double
    var data_quality: Quality
    var metrics: [MetricCase]
    var quantiles: [Quantile]
    // Issue 4 sections (types in ReportReferenceTests.swift); optional so older files still decode.
    var sequential: [SequentialCase]?
    var quantile_tests: [QuantileTestCase]?
    var adjusted: [AdjustedCase]?
    var bayesian: [BayesianCase]?
    var guardrail: [GuardrailCase]?
    var decisions: [DecisionCase]?
    var margins: [String: [String: MarginValue]]?
}

enum AnalysisFixture {
    static let names = ["basic", "messy", "abn", "oneunit"]

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    static func url(_ name: String, _ ext: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/analysis") else {
            throw Missing(description: "Fixtures/analysis/\(name).\(ext) is missing; run scripts/reference/analysis_fixture.py")
        }
        return url
    }

    static func expected(_ name: String) throws -> ExpectedAnalysis {
        try JSONDecoder().decode(ExpectedAnalysis.self, from: Data(contentsOf: url(name, "expected.json")))
    }

    /// The planned allocation in control-first order (JSON objects are unordered, so sort the rest by name).
    static func allocation(_ e: ExpectedAnalysis) throws -> Allocation {
        let others = e.split.keys.filter { $0 != e.control }.sorted()
        return try Allocation(arms: ([e.control] + others).map { .init(name: $0, weight: e.split[$0]!) })
    }

    static func run(_ name: String, unit: AnalysisUnit = .user, partitions: Int = 1) throws -> (ExpectedAnalysis, Report) {
        let e = try expected(name)
        var options = EventLog.Options()
        options.experiment = e.experiment
        options.partitions = partitions
        let data = try EventLog.aggregate(path: url(name, "jsonl").path, options: options)
        var plan = AnalysisPlan()
        plan.alpha = e.alpha
        plan.control = e.control
        plan.allocation = try allocation(e)
        plan.unit = unit
        plan.correction = .none  // the reference values are the unadjusted tests
        return (e, try Analysis.run(data, plan: plan))
    }
}

/// |a - b| <= max(1e-9 |b|, 1e-12), the tolerance for every reference float.
func referenceClose(_ a: Double?, _ b: Double?, relative: Double = 1e-9, absolute: Double = 1e-12) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return abs(a - b) <= max(relative * abs(b), absolute)
}

// MARK: - Tests

@Suite("Analysis against the pandas/gbstats/scipy reference")
struct AnalysisReferenceTests {
    @Test("Variants, users, requests, SRM and data quality", arguments: AnalysisFixture.names)
    func variantsAndDataQuality(_ name: String) throws {
        let (e, report) = try AnalysisFixture.run(name)
        #expect(report.control == e.control)
        for (variant, want) in e.variants {
            let got = report.variants.first { $0.name == variant }
            #expect(got?.users == want.users, "\(name): users of \(variant)")
            #expect(got?.requests == want.requests, "\(name): requests of \(variant)")
        }
        #expect(Set(report.variants.filter { $0.users > 0 }.map(\.name)) == Set(e.variants.keys), "\(name): variants")
        #expect(referenceClose(report.sampleRatio.pValue, e.srm_p_value),
                "\(name): SRM p-value \(String(describing: report.sampleRatio.pValue)) vs \(e.srm_p_value)")
        let q = report.dataQuality
        #expect(q.usersInSeveralVariants == e.data_quality.users_in_several_variants, "\(name): users in several variants")
        #expect(q.duplicateRequestIDs == e.data_quality.duplicate_request_ids, "\(name): duplicate request IDs")
        #expect(q.feedbackWithMissingTarget == e.data_quality.feedback_missing_target, "\(name): feedback with missing target")
    }

    @Test("User-level means, units, differences, intervals and p-values", arguments: AnalysisFixture.names)
    func userLevelMetrics(_ name: String) throws {
        let (e, report) = try AnalysisFixture.run(name)
        for want in e.metrics {
            let label = "\(name) \(want.name) \(want.variant)"
            guard let got = report.results.first(where: { $0.metric.name == want.name && $0.treatment == want.variant }) else {
                // A metric nobody has units for may be left out of the report.
                #expect(want.control.users == 0 && want.treatment.users == 0, "\(label): missing from the report")
                continue
            }
            for (side, w, g) in [("control", want.control, got.control), ("treatment", want.treatment, got.treatmentGroup)] {
                #expect(g.users == w.users, "\(label) \(side): users \(g.users) vs \(w.users)")
                #expect(g.units == w.units, "\(label) \(side): units \(g.units) vs \(w.units)")
                #expect(referenceClose(g.mean, w.mean), "\(label) \(side): mean \(String(describing: g.mean)) vs \(String(describing: w.mean))")
            }
            // Statistics the reference leaves undefined (a side with < 2 users or zero variance) are not compared.
            guard let p = want.p_value, let ci = want.absolute_ci else { continue }
            #expect(referenceClose(got.absoluteDifference, want.absolute_diff),
                    "\(label): difference \(String(describing: got.absoluteDifference)) vs \(String(describing: want.absolute_diff))")
            #expect(referenceClose(got.absoluteInterval?.lower, ci[0]),
                    "\(label): CI lower \(String(describing: got.absoluteInterval?.lower)) vs \(ci[0])")
            #expect(referenceClose(got.absoluteInterval?.upper, ci[1]),
                    "\(label): CI upper \(String(describing: got.absoluteInterval?.upper)) vs \(ci[1])")
            #expect(referenceClose(got.pValue, p), "\(label): p-value \(String(describing: got.pValue)) vs \(p)")
            #expect(referenceClose(got.degreesOfFreedom, want.welch_df),
                    "\(label): df \(String(describing: got.degreesOfFreedom)) vs \(String(describing: want.welch_df))")
            #expect(referenceClose(got.relativeLift, want.relative_lift),
                    "\(label): relative lift \(String(describing: got.relativeLift)) vs \(String(describing: want.relative_lift))")
            #expect(got.significant == (p < e.alpha), "\(label): significant")
            switch (want.relative_ci_kind, got.relativeInterval) {
            case ("bounded", .bounded(let lower, let upper)?), ("exclusive", .exclusive(let lower, let upper)?):
                let r = try #require(want.relative_ci)
                #expect(referenceClose(lower, r[0]), "\(label): relative CI lower \(lower) vs \(r[0])")
                #expect(referenceClose(upper, r[1]), "\(label): relative CI upper \(upper) vs \(r[1])")
            case ("unbounded", .unbounded?):
                break
            default:
                Issue.record("\(label): relative interval \(String(describing: got.relativeInterval)) vs \(String(describing: want.relative_ci_kind)) \(String(describing: want.relative_ci))")
            }
        }
    }

    @Test("Naive event-level analysis (--unit event): Student t-test on units", arguments: AnalysisFixture.names)
    func eventLevelMetrics(_ name: String) throws {
        let (e, report) = try AnalysisFixture.run(name, unit: .event)
        for want in e.metrics {
            let label = "\(name) \(want.name) \(want.variant) [event]"
            guard let got = report.results.first(where: { $0.metric.name == want.name && $0.treatment == want.variant }) else {
                #expect(want.naive.control.units == 0 && want.naive.treatment.units == 0, "\(label): missing from the report")
                continue
            }
            for (side, w, g) in [("control", want.naive.control, got.control), ("treatment", want.naive.treatment, got.treatmentGroup)] {
                #expect(g.units == Double(w.units), "\(label) \(side): units \(g.units) vs \(w.units)")
                #expect(referenceClose(g.mean, w.mean), "\(label) \(side): mean \(String(describing: g.mean)) vs \(String(describing: w.mean))")
            }
            guard let p = want.naive.p_value else { continue }
            #expect(referenceClose(got.absoluteDifference, want.naive.absolute_diff),
                    "\(label): difference \(String(describing: got.absoluteDifference)) vs \(String(describing: want.naive.absolute_diff))")
            #expect(referenceClose(got.pValue, p), "\(label): p-value \(String(describing: got.pValue)) vs \(p)")
        }
    }

    @Test("Reading the log in pieces gives the same report as reading it whole", arguments: AnalysisFixture.names)
    func partitionedReadingAgrees(_ name: String) throws {
        let whole = try AnalysisFixture.run(name).1.render(.json)
        for pieces in [2, 3, 7] {
            #expect(try AnalysisFixture.run(name, partitions: pieces).1.render(.json) == whole, "\(name) in \(pieces) pieces")
        }
    }

    @Test("One unit per user: the user-level test is Welch's t-test")
    func oneUnitPerUserIsWelch() throws {
        let (e, report) = try AnalysisFixture.run("oneunit")
        let cases = e.metrics.filter { $0.welch_scipy_p_value != nil }
        #expect(cases.count >= 3)
        for want in cases {
            let got = try #require(report.results.first { $0.metric.name == want.name && $0.treatment == want.variant })
            #expect(referenceClose(got.pValue, want.welch_scipy_p_value),
                    "\(want.name): p-value \(String(describing: got.pValue)) vs scipy Welch \(String(describing: want.welch_scipy_p_value))")
        }
    }

    @Test("Latency and TTFT quantiles per variant", arguments: AnalysisFixture.names)
    func quantiles(_ name: String) throws {
        let (e, report) = try AnalysisFixture.run(name)
        let want = Dictionary(uniqueKeysWithValues: e.quantiles.map { ("\($0.name)/\($0.variant)", $0.value) })
        let names = Set(e.quantiles.map(\.name))
        let treatments = e.variants.keys.filter { $0 != e.control }
        for metric in names {
            for treatment in treatments {
                let label = "\(name) \(metric) \(treatment)"
                guard let got = report.quantiles.first(where: { $0.metric.name == metric && $0.treatment == treatment }) else {
                    Issue.record("\(label): missing from the report")
                    continue
                }
                // With the order-statistic estimates (the quantile test has run or said why not) the report
                // shows their inverted-CDF quantile x_(ceil(n p)); without them numpy's linear one.
                var wantControl = want["\(metric)/\(e.control)"], wantTreatment = want["\(metric)/\(treatment)"]
                if got.pValue != nil || got.note != nil,
                   let t = e.quantile_tests?.first(where: { $0.name == metric && $0.variant == treatment }) {
                    wantControl = t.control?.quantile
                    wantTreatment = t.treatment?.quantile
                }
                #expect(referenceClose(got.control, wantControl),
                        "\(label): control \(String(describing: got.control)) vs \(String(describing: wantControl))")
                #expect(referenceClose(got.treatmentValue, wantTreatment),
                        "\(label): treatment \(String(describing: got.treatmentValue)) vs \(String(describing: wantTreatment))")
            }
        }
    }
}
