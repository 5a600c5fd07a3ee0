import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// Writes summary rows as CSV (the columns used, in SummaryColumn order; fields quoted when needed).
private func summaryCSV(_ rows: [[SummaryColumn: String]]) -> String {
    let columns = SummaryColumn.allCases.filter { c in rows.contains { $0[c] != nil } }
    func field(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    var out = columns.map(\.rawValue).joined(separator: ",") + "\n"
    for row in rows { out += columns.map { field(row[$0] ?? "") }.joined(separator: ",") + "\n" }
    return out
}

/// Writes summary rows as JSON rows (numbers as JSON numbers).
private func summaryJSON(_ rows: [[SummaryColumn: String]], experiment: String) -> String {
    let names: Set<SummaryColumn> = [.experiment, .variant, .metric]
    let objects = rows.map { row in
        "{" + SummaryColumn.allCases.compactMap { c in row[c].map { JSONWriter.quote(c.rawValue) + ": " + (names.contains(c) ? JSONWriter.quote($0) : $0) } }.joined(separator: ", ") + "}"
    }
    return "{\"experiment\": \(JSONWriter.quote(experiment)), \"rows\": [\n  " + objects.joined(separator: ",\n  ") + "\n]}\n"
}

/// The summary rows of every non-quantile metric of `data` (per-variant RatioMoments and, when present, covariates).
private func summaryRows(_ data: ExperimentData) -> [[SummaryColumn: String]] {
    var rows: [[SummaryColumn: String]] = []
    for metric in data.metrics where metric.metric.kind != .quantile {
        for (v, variant) in data.variants.enumerated() {
            let m = metric.perVariant[v]
            var row: [SummaryColumn: String] = [
                .variant: variant.name, .metric: metric.metric.name, .assignedUsers: String(variant.users),
                .users: String(Int(m.n)), .sum: "\(m.numerator.sum)", .sumSquares: "\(m.numerator.sumOfSquares)",
                .units: "\(m.denominator.sum)", .unitsSquares: "\(m.denominator.sumOfSquares)", .sumUnitsProducts: "\(m.sumOfProducts)",
            ]
            if let c = metric.covariates?[v] {
                row[.preSum] = "\(c.preNumerator.sum)"
                row[.preSumSquares] = "\(c.preNumerator.sumOfSquares)"
                row[.preUnits] = "\(c.preDenominator.sum)"
                row[.preUnitsSquares] = "\(c.preDenominator.sumOfSquares)"
                row[.preSumPreUnitsProducts] = "\(c.preNumeratorPreDenominator)"
                row[.sumPreSumProducts] = "\(c.numeratorPreNumerator)"
                row[.unitsPreUnitsProducts] = "\(c.denominatorPreDenominator)"
                row[.sumPreUnitsProducts] = "\(c.numeratorPreDenominator)"
                row[.unitsPreSumProducts] = "\(c.denominatorPreNumerator)"
            }
            rows.append(row)
        }
    }
    return rows
}

private func parse(_ text: String, source: String = "summary.csv", metrics: [Metric] = Metric.builtIn,
                   experiment: String? = nil, variants: [String]? = nil) throws(SummaryInputError) -> ExperimentData {
    try SummaryInput.parse(Array(text.utf8), source: source, metrics: metrics, experiment: experiment, variants: variants)
}

/// A valid two-variant file: task_completion as a ratio (conversations per user).
private let validHeader = "variant,metric,assigned_users,users,sum,sum_squares,units,units_squares,sum_units_products"
private let validControl = "control,task_completion,100,90,150,330,200,500,380"
private let validTreatment = "treatment,task_completion,110,95,170,380,210,520,420"
private let valid = [validHeader, validControl, validTreatment].joined(separator: "\n") + "\n"

@Suite("bakeoff analyze --summary: reading sufficient statistics")
struct SummaryInputTests {
    static let spec: SimulationSpec = {
        var spec = try! SimulationSpec.preset("seed-case-study")
        spec.users = 1500
        spec.seed = 11
        return spec
    }()

    @Test("round trip: a simulated log's per-variant sums, written as CSV and JSON, read back exactly")
    func roundTrip() throws {
        var aggregator = EventAggregator()
        try Simulator.run(Self.spec) { e in try e.withView { try aggregator.add($0) } }
        let data = aggregator.finish()
        let rows = summaryRows(data)
        #expect(rows.count == 2 * data.metrics.filter { $0.metric.kind != .quantile }.count)
        for (text, source) in [(summaryCSV(rows), "summary.csv"), (summaryJSON(rows, experiment: data.experiment), "summary.json")] {
            let parsed = try parse(text, source: source, experiment: source.hasSuffix(".json") ? data.experiment : nil)
            #expect(parsed.variants.map(\.users) == data.variants.map(\.users))
            #expect(parsed.variants.allSatisfy { $0.requests == 0 })
            #expect(parsed.variants.map(\.name) == data.variants.map(\.name))
            #expect(parsed.requestEvents == data.variants.reduce(0) { $0 + $1.users })
            #expect(parsed.firstTimestamp == nil && parsed.feedbackEvents == 0)
            let expected = data.metrics.filter { $0.metric.kind != .quantile }
            #expect(parsed.metrics.map(\.metric.name) == expected.map(\.metric.name))
            for (a, b) in zip(parsed.metrics, expected) {
                #expect(a.perVariant == b.perVariant, "\(source) \(a.metric.name)")
                #expect(a.covariates == nil && a.quantileEstimates == nil)
                // Unit counts and sums come through (the report's means); squares only where sums determine them.
                #expect(a.unitMoments.map(\.n) == b.unitMoments.map(\.n) && a.unitMoments.map(\.sum) == b.unitMoments.map(\.sum))
                if a.metric.kind == .proportion || a.metric.level == .user {
                    #expect(a.unitMoments == b.unitMoments, "\(a.metric.name)")
                }
            }
            #expect(source == "summary.csv" ? parsed.experiment == "" : parsed.experiment == data.experiment)
        }
    }

    @Test("CUPED columns become RatioCUPEDMoments; a per-user metric fills d = dp = 1")
    func cupedRoundTrip() throws {
        var rng = SplitMix(seed: 5)
        var ratio = [RatioCUPEDMoments(), RatioCUPEDMoments()], perUser = [RatioCUPEDMoments(), RatioCUPEDMoments()]
        for v in 0..<2 {
            for _ in 0..<(300 + 20 * v) {
                let d = Double(1 + rng.next() % 4), dp = Double(rng.next() % 4)  // some users without pre data
                let m = Double(rng.next() % (UInt64(d) + 1)), mp = dp == 0 ? 0 : Double(rng.next() % (UInt64(dp) + 1))
                ratio[v].add(numerator: m, denominator: d, preNumerator: mp, preDenominator: dp)
                let y = Double(rng.next() % 1000) / 8, x = rng.next() % 5 == 0 ? 0 : Double(rng.next() % 1000) / 8
                perUser[v].add(numerator: y, denominator: 1, preNumerator: x, preDenominator: 1)
            }
        }
        var rows: [[SummaryColumn: String]] = []
        for (v, name) in ["control", "treatment"].enumerated() {
            let c = ratio[v]
            rows.append([.variant: name, .metric: "task_completion", .assignedUsers: "400", .users: "\(Int(c.n))",
                         .sum: "\(c.numerator.sum)", .sumSquares: "\(c.numerator.sumOfSquares)", .units: "\(c.denominator.sum)",
                         .unitsSquares: "\(c.denominator.sumOfSquares)", .sumUnitsProducts: "\(c.numeratorDenominator)",
                         .preSum: "\(c.preNumerator.sum)", .preSumSquares: "\(c.preNumerator.sumOfSquares)",
                         .preUnits: "\(c.preDenominator.sum)", .preUnitsSquares: "\(c.preDenominator.sumOfSquares)",
                         .preSumPreUnitsProducts: "\(c.preNumeratorPreDenominator)", .sumPreSumProducts: "\(c.numeratorPreNumerator)",
                         .unitsPreUnitsProducts: "\(c.denominatorPreDenominator)", .sumPreUnitsProducts: "\(c.numeratorPreDenominator)",
                         .unitsPreSumProducts: "\(c.denominatorPreNumerator)"])
            let p = perUser[v]
            rows.append([.variant: name, .metric: "csat", .users: "\(Int(p.n))", .sum: "\(p.numerator.sum)",
                         .sumSquares: "\(p.numerator.sumOfSquares)", .preSum: "\(p.preNumerator.sum)",
                         .preSumSquares: "\(p.preNumerator.sumOfSquares)", .sumPreSumProducts: "\(p.numeratorPreNumerator)"])
        }
        let data = try parse(summaryCSV(rows))
        #expect(data.metrics.map(\.metric.name) == ["task_completion", "csat"])  // Metric.builtIn order
        #expect(data.metrics[0].covariates == ratio)
        #expect(data.metrics[0].perVariant == ratio.map(\.post))
        #expect(data.metrics[1].covariates == perUser)
        #expect(data.metrics[1].perVariant == perUser.map(\.post))
        // And the adjusted test runs on them.
        let adjusted = RatioCUPED.adjust(control: data.metrics[0].covariates![0], treatment: data.metrics[0].covariates![1])
        #expect(adjusted.control.variance.isFinite && adjusted.theta.isFinite)
    }

    @Test("quantile rows become QuantileEstimates; a variant without events has none")
    func quantiles() throws {
        var rng = SplitMix(seed: 9)
        let users = (0..<200).map { _ in (0..<Int(rng.next() % 4)).map { _ in Double(100 + rng.next() % 3000) } }
        let control = QuantileEstimate(users: Array(users[..<100]), level: 0.95)
        let treatment = QuantileEstimate(users: Array(users[100...]), level: 0.95)
        func row(_ name: String, _ q: QuantileEstimate) -> [SummaryColumn: String] {
            [.variant: name, .metric: "latency_p95", .assignedUsers: "100", .users: "\(Int(q.users))", .quantileLevel: "0.95",
             .events: "\(Int(q.n))", .quantile: "\(q.quantile)", .quantileLower: "\(q.lower)", .quantileUpper: "\(q.upper)",
             .belowSum: "\(q.belowSum)", .belowSquares: "\(q.belowSumSquares)", .countSum: "\(q.countSum)",
             .countSquares: "\(q.countSumSquares)", .belowCountProducts: "\(q.belowCountSumProduct)"]
        }
        let data = try parse(summaryCSV([row("control", control), row("treatment", treatment)]))
        let m = data.metrics[0]
        #expect(m.quantileEstimates! == [control, treatment])
        #expect(m.quantiles! == [control.quantile, treatment.quantile])
        #expect(m.quantileCounts! == [Int(control.n), Int(treatment.n)])
        #expect(m.perVariant == [RatioMoments(), RatioMoments()])
        let empty = try parse("variant,metric,assigned_users,users,events\ncontrol,latency_p95,5,5,0\ntreatment,latency_p95,5,5,0\n")
        #expect(empty.metrics[0].quantileEstimates! == [nil, nil])
        #expect(empty.metrics[0].quantiles! == [nil, nil])
    }

    @Test("the README's example reads")
    func readmeExample() throws {
        let readme = try String(contentsOf: Self.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## Sufficient statistics from your warehouse"))
        let block = try #require(readme[section.upperBound...].range(of: "```csv\n"))
        let end = try #require(readme[block.upperBound...].range(of: "```"))
        let data = try parse(String(readme[block.upperBound..<end.lowerBound]), source: "README.md")
        #expect(data.metrics.map(\.metric.name) == ["task_completion", "repeat_usage"])
        #expect(data.metrics[0].perVariant[0].mean == 2942.0 / 4177)
        #expect(data.metrics[1].perVariant[1].denominator.sum == 505)
    }

    @Test("CSV: quotes, CRLF, comments, blank lines, byte order mark, spaces, experiment selection")
    func csvDetails() throws {
        let text = "\u{FEFF}# exported 2026-11-24 from the warehouse\r\n"
            + "experiment,variant,metric,assigned_users,users,sum,sum_squares\r\n"
            + "\r\n"
            + "exp-a,\"v1, \"\"new\"\"\",csat, 10 ,10,38,150\r\n"
            + "exp-a,v0,csat,12,11,40.5,152.25\r\n"
            + "# the other experiment\n"
            + "exp-b,x,csat,3,3,9,27\n"
            + "exp-b,y,csat,3,3,9,27"
        let data = try parse(text, experiment: "exp-a")
        #expect(data.experiment == "exp-a")
        #expect(data.variants.map(\.name) == ["v1, \"new\"", "v0"])
        #expect(data.variants.map(\.users) == [10, 12])
        #expect(data.metrics[0].perVariant[1].numerator == SampleMoments(n: 11, sum: 40.5, sumOfSquares: 152.25))
        #expect(data.metrics[0].perVariant[1].denominator == SampleMoments(n: 11, sum: 11, sumOfSquares: 11))
        #expect(data.metrics[0].perVariant[1].sumOfProducts == 40.5)
        let b = try parse(text, experiment: "exp-b")
        #expect(b.variants.map(\.name) == ["x", "y"])
        // JSON: numbers as strings are accepted (BigQuery writes INT64 that way), null is empty.
        let json = #"[{"variant": "a", "metric": "csat", "assigned_users": "4", "users": 4, "sum": 12, "sum_squares": 40, "units": null},"#
            + "\n" + #" {"variant": "b", "metric": "csat", "assigned_users": 5, "users": 5, "sum": 15.5, "sum_squares": 50}]"#
        let j = try parse(json, source: "s.json")
        #expect(j.variants.map(\.users) == [4, 5])
        #expect(j.metrics[0].perVariant[1].numerator.sum == 15.5)
    }

    // MARK: hostile input

    /// Parses `text` expecting an error whose message contains every fragment.
    private func expectFailure(_ text: String, _ fragments: [String], source: String = "summary.csv", experiment: String? = nil,
                               variants: [String]? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parse(text, source: source, experiment: experiment, variants: variants)
            Issue.record("accepted: \(text)", sourceLocation: sourceLocation)
        } catch {
            let message = error.description
            for f in fragments {
                #expect(message.contains(f), "\"\(message)\" lacks \"\(f)\"", sourceLocation: sourceLocation)
            }
        }
    }

    private func replacing(_ old: String, _ new: String, in text: String = valid) -> String {
        precondition(text.contains(old))
        return text.replacingOccurrences(of: old, with: new)
    }

    @Test func validBaseFileParses() throws {
        let data = try parse(valid)
        #expect(data.metrics.count == 1 && data.variants.map(\.users) == [100, 110])
        // A metric no user has a unit of: zero users with zero sums.
        let none = try parse(replacing("100,90,150,330,200,500,380", "100,0,0,0,0,0,0"))
        #expect(none.metrics[0].perVariant[0] == RatioMoments())
    }

    @Test func emptyFilesAndMissingRows() {
        expectFailure("", ["summary.csv: the file is empty"])
        expectFailure(" \n\t\n", ["summary.csv: the file is empty"])
        expectFailure("# only a comment\n\n", ["summary.csv: no header row"])
        expectFailure(validHeader + "\n", ["summary.csv:1: a header row but no data rows"])
        expectFailure("[]", ["summary.csv: no rows"])
    }

    @Test func headerProblems() {
        expectFailure(replacing("units_squares", "untis_squares"), ["summary.csv:1:", "column \"untis_squares\"", "unknown column (header field 8)", "units_squares"])
        expectFailure(replacing("users,sum", "users,users"), ["summary.csv:1:", "column \"users\"", "appears twice in the header (fields 4 and 5)"])
        expectFailure(replacing(validTreatment, "treatment,task_completion,110,95,170,380,210,520"), ["summary.csv:3:", "8 fields, but the header (line 1) has 9"])
    }

    @Test func unknownNames() {
        expectFailure(replacing("treatment,task_completion", "treatment,task_completed"),
                      ["summary.csv:3:", "column \"metric\"", "unknown metric \"task_completed\"", "task_completion, escalation_rate"])
        expectFailure(valid, ["summary.csv:3:", "column \"variant\"", "unknown variant \"treatment\"", "\"control\", \"v2\""], variants: ["control", "v2"])
        expectFailure(replacing("control,task_completion", ",task_completion"), ["summary.csv:2:", "column \"variant\"", "missing"])
    }

    @Test func badNumbers() {
        expectFailure(replacing("100,90,150", "100,12.5,150"), ["summary.csv:2:", "column \"users\"", "whole number ≥ 0, got \"12.5\""])
        expectFailure(replacing("100,90,150", "100,-3,150"), ["summary.csv:2:", "column \"users\"", "whole number ≥ 0, got \"-3\""])
        expectFailure(replacing("100,90,150", "100,90,inf"), ["summary.csv:2:", "column \"sum\"", "must be a finite number, got \"inf\""])
        expectFailure(replacing("100,90,150", "100,90,NaN"), ["summary.csv:2:", "column \"sum\"", "must be a finite number"])
        expectFailure(replacing("100,90,150", "100,90,1e999"), ["summary.csv:2:", "column \"sum\"", "out of range"])
        expectFailure(replacing("100,90,150", "100,90,1 50"), ["summary.csv:2:", "column \"sum\"", "must be a number, got \"1 50\""])
        expectFailure(replacing("100,90,150", "100,90,0x96"), ["summary.csv:2:", "column \"sum\"", "must be a number, got \"0x96\""])
        expectFailure(replacing("100,90,150,330", "100,90,150,"), ["summary.csv:2:", "column \"sum_squares\"", "missing"])
    }

    @Test func impossibleSums() {
        // Σm² below (Σm)²/n: not sums over the same users.
        expectFailure(replacing("150,330", "150,240"), ["summary.csv:2:", "column \"sum_squares\"", "240 is less than sum²/users = 250"])
        expectFailure(replacing("200,500,380", "80,500,380"), ["summary.csv:2:", "column \"units\"", "80 is less than users (90)"])
        expectFailure(replacing("200,500,380", "200,500,410"), ["summary.csv:2:", "column \"sum_units_products\"", "cannot be sums over the same users"])
        expectFailure(replacing("150,330,200", "250,700,200"), ["summary.csv:2:", "column \"sum\"", "outside 0...200", "proportion"])
        expectFailure(replacing(validControl, "control,task_completion,100,0,1,1,1,1,1"), ["summary.csv:2:", "must be 0 when users is 0"])
        expectFailure(replacing("110,95", "90,95"), ["summary.csv:3:", "column \"users\"", "95 users with data, more than the 90 assigned_users"])
    }

    @Test func unitsAndCUPEDGroups() {
        expectFailure(replacing("200,500,380", "200,,380"), ["summary.csv:2:", "column \"units_squares\"", "go together"])
        let cuped = validHeader + ",pre_sum,pre_sum_squares,sum_pre_sum_products\n"
            + validControl + ",50,60,70\n" + validTreatment + ",50,60,70\n"
        expectFailure(cuped, ["summary.csv:2:", "column \"pre_units\"", "a ratio metric (one with units) with a pre-period needs all of"])
        let oneSided = "variant,metric,assigned_users,users,sum,sum_squares,pre_sum,pre_sum_squares,sum_pre_sum_products\n"
            + "control,csat,10,10,38,150,30,100,110\ntreatment,csat,10,10,39,160,,,\n"
        expectFailure(oneSided, ["summary.csv:3:", "column \"pre_sum\"", "empty here but given on line 2", "csat"])
        let mixed = "variant,metric,assigned_users,users,sum,sum_squares,units,units_squares,sum_units_products\n"
            + "control,csat,10,10,38,150,,,\ntreatment,csat,10,10,39,160,20,40,78\n"
        expectFailure(mixed, ["summary.csv:3:", "column \"units\"", "given here but empty on line 2"])
        let preUnitsOnly = "variant,metric,assigned_users,users,sum,sum_squares,pre_sum,pre_sum_squares,sum_pre_sum_products,pre_units\n"
            + "control,csat,10,10,38,150,30,100,110,10\ntreatment,csat,10,10,39,160,30,100,110,10\n"
        expectFailure(preUnitsOnly, ["summary.csv:2:", "column \"pre_units\"", "only for ratio metrics"])
    }

    @Test func rowsThatDoNotFitTogether() {
        expectFailure(valid + validControl.replacingOccurrences(of: "100,90", with: "100,91") + "\n",
                      ["summary.csv:4:", "column \"metric\"", "second row for variant \"control\" and metric \"task_completion\"", "the first is line 2"])
        let onlyOne = valid + "control,csat,100,80,300,1200,,,\n"
        expectFailure(onlyOne, ["summary.csv:4:", "metric \"csat\" has no row for variant \"treatment\""])
        expectFailure(replacing("treatment,task_completion,110", "treatment,task_completion,111", in: valid + "treatment,csat,110,80,300,1200,,,\n"),
                      ["summary.csv:4:", "column \"assigned_users\"", "110 differs from 111 on line 3"])
        expectFailure(replacing("control,task_completion,100", "control,task_completion,"), ["summary.csv:2:", "column \"assigned_users\"", "missing for variant \"control\""])
        expectFailure(replacing("100,90,150,330,200,500,380", "0,0,0,0,0,0,0", in: replacing("110,95,170,380,210,520,420", "0,0,0,0,0,0,0")),
                      ["summary.csv: column \"assigned_users\": no users assigned to any variant"])
        let two = "experiment,variant,metric,assigned_users,users,sum,sum_squares\na,x,csat,3,3,9,27\nb,x,csat,3,3,9,27\n"
        expectFailure(two, ["summary.csv: column \"experiment\": the file has several experiments (\"a\", \"b\"); choose one experiment"])
        // A typed problem, so that a command-line tool can say how it chooses one (the library names no flag).
        #expect(throws: SummaryInputError(source: "summary.csv", column: "experiment",
                                          message: "the file has several experiments (\"a\", \"b\"); choose one experiment",
                                          problem: .severalExperiments(["a", "b"]))) {
            try parse(two)
        }
        expectFailure(two, ["no rows of experiment \"c\"; the file has \"a\", \"b\""], experiment: "c")
        expectFailure(two + ",x,csat,3,3,9,27\n", ["summary.csv:4:", "column \"experiment\"", "missing, while other rows name their experiment"])
    }

    @Test func quoting() {
        expectFailure(valid + "\"treatment,csat,1,1,1,1,1,1,1\n", ["summary.csv:4:", "a quoted field is not closed"])
        expectFailure(valid + "tr\"eat,csat,1,1,1,1,1,1,1\n", ["summary.csv:4:", "a quote inside unquoted field 1"])
        expectFailure(valid + "\"treat\"x,csat,1,1,1,1,1,1,1\n", ["summary.csv:4:", "text after the closing quote of field 1"])
        do {
            var bytes = Array(valid.utf8)
            bytes[bytes.firstIndex(of: UInt8(ascii: "\n"))! + 2] = 0xFF  // "control" on line 2
            _ = try SummaryInput.parse(bytes, source: "summary.csv", metrics: Metric.builtIn)
            Issue.record("invalid UTF-8 accepted")
        } catch {
            #expect(error.description == "summary.csv:2: not valid UTF-8 text")
        }
    }

    @Test func quantileRows() {
        let header = "variant,metric,assigned_users,users,events,quantile,quantile_lower,quantile_upper,below_sum,below_squares,count_sum,count_squares,below_count_products"
        let good = "control,latency_p95,10,10,40,900,800,1000,38,150,40,170,158"
        expectFailure([header, good, "treatment,latency_p95,10,10,40,900,800,1000,38,150,41,170,158"].joined(separator: "\n"),
                      ["summary.csv:3:", "column \"count_sum\"", "differs from events (40)"])
        expectFailure([header, good, "treatment,latency_p95,10,10,40,900,950,1000,38,150,40,170,158"].joined(separator: "\n"),
                      ["summary.csv:3:", "column \"quantile_lower\"", "950 is above the quantile 900"])
        expectFailure([header + ",sum", good + ",5", good.replacingOccurrences(of: "control", with: "treatment") + ","].joined(separator: "\n"),
                      ["summary.csv:2:", "column \"sum\"", "not for quantile metrics"])
        expectFailure([header + ",quantile_level", good + ",0.5", good.replacingOccurrences(of: "control", with: "treatment") + ","].joined(separator: "\n"),
                      ["summary.csv:2:", "column \"quantile_level\"", "is the 0.95 quantile"])
        expectFailure(valid + "control,csat,100,80,300,1200,,,\ntreatment,csat,100,80,300,1200,,,\n".replacingOccurrences(of: "csat", with: "latency_p95"),
                      ["summary.csv:4:", "column \"sum\"", "not for quantile metrics"])
        expectFailure([header, good, "treatment,latency_p95,10,10,40,,,,,,,,"].joined(separator: "\n"),
                      ["summary.csv:3:", "column \"quantile\"", "missing (a quantile row with events needs all of"])
    }

    @Test func jsonProblems() {
        expectFailure("[{\"variant\": \"a\"", ["s.json: not valid JSON"], source: "s.json")
        expectFailure("{\"experiment\": \"e\", \"row\": []}", ["s.json: unknown key \"row\" at the top level"], source: "s.json")
        let rows = "{\"experiment\": \"e\",\n \"rows\": [\n  {\"variant\": \"a\", \"metric\": \"csat\", \"assigned_users\": 3, \"users\": 3, \"sum\": 9, \"sum_squares\": 27},\n"
            + "  {\"variant\": \"b\", \"metric\": \"csat\", \"assigned_users\": 3, \"users\": true, \"sum\": 9, \"sum_squares\": 27}\n]}"
        expectFailure(rows, ["s.json:4: rows[1]: column \"users\": must be a string or a number, got true"], source: "s.json")
        expectFailure(rows.replacingOccurrences(of: "\"users\": true", with: "\"user\": 3"),
                      ["s.json:4: rows[1]: column \"user\": unknown column (a key of the row)"], source: "s.json")
        expectFailure("[\n{\"variant\": 7, \"metric\": \"csat\", \"users\": 1, \"sum\": 1, \"sum_squares\": 1}]",
                      ["s.json:2: [0]: column \"variant\": must be a string, got the number 7"], source: "s.json")
        expectFailure("[1, 2]", ["s.json: [0]: a row must be an object, got 1"], source: "s.json")
    }
}

// MARK: - The documented SQL, run on an event store

/// The few SQLite C functions the SQL test needs, from the system library (the store links the same one;
/// this test target does not depend on BakeoffStore).
private struct SQLite {
    typealias Statement = OpaquePointer
    let db: OpaquePointer
    private let close: @convention(c) (OpaquePointer?) -> Int32
    private let exec: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, UnsafeRawPointer?, UnsafeMutableRawPointer?,
                                      UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32
    private let prepare: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int32, UnsafeMutablePointer<OpaquePointer?>?,
                                         UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32
    private let bindText: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, Int32, Int) -> Int32
    private let bindInt64: @convention(c) (OpaquePointer?, Int32, Int64) -> Int32
    private let parameterIndex: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32
    private let step: @convention(c) (OpaquePointer?) -> Int32
    private let reset: @convention(c) (OpaquePointer?) -> Int32
    private let finalize: @convention(c) (OpaquePointer?) -> Int32
    private let columnCount: @convention(c) (OpaquePointer?) -> Int32
    private let columnName: @convention(c) (OpaquePointer?, Int32) -> UnsafePointer<CChar>?
    private let columnText: @convention(c) (OpaquePointer?, Int32) -> UnsafePointer<CChar>?
    private let errmsg: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(path: String) throws {
        guard let library = dlopen("libsqlite3.so.0", RTLD_NOW) else { throw Failure(description: "cannot load libsqlite3.so.0") }
        func symbol<T>(_ name: String) throws -> T {
            guard let p = dlsym(library, name) else { throw Failure(description: "libsqlite3 lacks \(name)") }
            return unsafeBitCast(p, to: T.self)
        }
        let open: @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32 = try symbol("sqlite3_open")
        close = try symbol("sqlite3_close_v2")
        exec = try symbol("sqlite3_exec")
        prepare = try symbol("sqlite3_prepare_v2")
        bindText = try symbol("sqlite3_bind_text")
        bindInt64 = try symbol("sqlite3_bind_int64")
        parameterIndex = try symbol("sqlite3_bind_parameter_index")
        step = try symbol("sqlite3_step")
        reset = try symbol("sqlite3_reset")
        finalize = try symbol("sqlite3_finalize")
        columnCount = try symbol("sqlite3_column_count")
        columnName = try symbol("sqlite3_column_name")
        columnText = try symbol("sqlite3_column_text")
        errmsg = try symbol("sqlite3_errmsg")
        var handle: OpaquePointer?
        guard open(path, &handle) == 0, let handle else { throw Failure(description: "cannot open \(path)") }
        db = handle
    }

    func shutdown() { _ = close(db) }

    private func error(_ what: String) -> Failure { Failure(description: "\(what): \(String(cString: errmsg(db)!))") }

    func execute(_ sql: String) throws {
        guard exec(db, sql, nil, nil, nil) == 0 else { throw error("exec") }
    }

    /// Runs one statement with text or integer parameters (nil = NULL) and returns its column names and rows as text.
    @discardableResult
    func query(_ sql: String, _ parameters: [String: Any] = [:]) throws -> (columns: [String], rows: [[String?]]) {
        var stmt: OpaquePointer?
        guard prepare(db, sql, -1, &stmt, nil) == 0, let stmt else { throw error("prepare") }
        defer { _ = finalize(stmt) }
        for (name, value) in parameters {
            let index = parameterIndex(stmt, name)
            guard index > 0 else { throw Failure(description: "no parameter \(name)") }
            if let s = value as? String { _ = bindText(stmt, index, s, -1, -1) } else { _ = bindInt64(stmt, index, Int64(value as! Int)) }
        }
        let columns = (0..<columnCount(stmt)).map { String(cString: columnName(stmt, $0)!) }
        var rows: [[String?]] = []
        while true {
            let rc = step(stmt)
            if rc == 101 { break }  // SQLITE_DONE
            guard rc == 100 else { throw error("step") }  // SQLITE_ROW
            rows.append((0..<Int32(columns.count)).map { columnText(stmt, $0).map { String(cString: $0) } })
        }
        return (columns, rows)
    }

    /// Inserts rows with one prepared statement (values: String, Int or Int64).
    func insert(_ sql: String, _ rows: [[Any]]) throws {
        var stmt: OpaquePointer?
        guard prepare(db, sql, -1, &stmt, nil) == 0, let stmt else { throw error("prepare") }
        defer { _ = finalize(stmt) }
        for row in rows {
            for (k, value) in row.enumerated() {
                switch value {
                case let s as String: _ = bindText(stmt, Int32(k + 1), s, -1, -1)
                case let i as Int: _ = bindInt64(stmt, Int32(k + 1), Int64(i))
                default: _ = bindInt64(stmt, Int32(k + 1), value as! Int64)
                }
            }
            guard step(stmt) == 101 else { throw error("insert") }
            _ = reset(stmt)
        }
    }
}

extension SummaryInputTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The simulated log plus hand-made cases the SQL must get right, in storage order.
    static func storeEvents(start: Int64) -> [EventRecord] {
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        let exp = spec.experiment, h: Int64 = 3_600_000_000
        func request(_ user: String, _ variant: String, _ id: String, _ conversation: String, _ t: Int64, output: Int? = 40,
                     qa: Bool = false, experiment: String? = nil) -> EventRecord {
            var e = EventRecord(kind: .request, timestamp: t, experiment: experiment ?? exp)
            e.userID = user; e.variant = variant; e.requestID = id; e.conversationID = conversation
            e.latencyMs = 100; e.outputTokens = output; e.qa = qa
            return e
        }
        func completed(_ user: String, _ value: Double, _ t: Int64, request: String = "", conversation: String = "", qa: Bool = false) -> EventRecord {
            var e = EventRecord(kind: .feedback, timestamp: t, experiment: exp)
            e.userID = user; e.name = "task_completed"; e.value = value; e.requestID = request; e.conversationID = conversation; e.qa = qa
            return e
        }
        events += [
            // Stored first but later by time: the user is in treatment, both requests count there.
            request("x-switch", "control", "x-r1", "x-c1", start + 3 * h, output: 10),
            request("x-switch", "treatment", "x-r2", "x-c2", start + 1 * h, output: 20),
            completed("x-switch", 1, start + 4 * h, conversation: "x-c1"),
            completed("x-switch", 0, start + 4 * h, request: "x-r2"),                  // through its request
            // Its pre-period: a conversation before the start, and post feedback naming it (a missing target).
            request("x-switch", "control", "x-p1", "x-pc1", start - 48 * h, output: 100),
            completed("x-switch", 1, start - 47 * h, conversation: "x-pc1"),
            completed("x-switch", 0, start + 5 * h, request: "x-p1"),
            // Same time: the later line wins.
            request("x-tie", "control", "x-t1", "x-tc1", start + 2 * h),
            completed("x-tie", 0, start + 3 * h, conversation: "x-tc1"),
            completed("x-tie", 1, start + 3 * h, conversation: "x-tc1"),
            // QA and other experiments are left out.
            request("x-qa", "treatment", "x-q1", "x-qc1", start + 2 * h, output: 999, qa: true),
            completed("x-qa", 1, start + 3 * h, conversation: "x-qc1", qa: true),
            request("x-other", "treatment", "x-o1", "x-oc1", start + 2 * h, experiment: "other-experiment"),
            // A request stored twice counts once; feedback on an unknown request is dropped.
            request("x-dup", "control", "x-d1", "x-dc1", start + 4 * h, output: 50),
            request("x-dup", "control", "x-d1", "x-dc1", start + 4 * h, output: 70),
            completed("x-dup", 1, start + 5 * h, request: "x-missing"),
            // A request without output_tokens is not a unit of output_tokens.
            request("x-none", "treatment", "x-n1", "", start + 6 * h, output: nil),
            completed("x-none", 1, start + 7 * h, request: "x-n1"),
        ]
        return events
    }

    @Test("scripts/sql/summary.sql on an event store gives EventAggregator's sums, post and pre-period")
    func warehouseSQL() throws {
        let start = Make.t0 + 7 * Make.day  // 2026-11-08T00:00:00Z, halfway through the simulation
        let events = Self.storeEvents(start: start)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-summary-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sqlite = try SQLite(path: dir.appendingPathComponent("store.db").path)
        defer { sqlite.shutdown() }
        // The event store's schema (Sources/BakeoffStore/SQLite.swift) and its rows (Row.init(EventRecord)).
        try sqlite.execute("""
            CREATE TABLE events (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, experiment TEXT NOT NULL, kind TEXT NOT NULL,
                variant TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, request_id TEXT NOT NULL,
                status TEXT NOT NULL, qa INTEGER NOT NULL, line TEXT NOT NULL);
            CREATE INDEX events_experiment ON events(experiment, id);
            BEGIN;
            """)
        try sqlite.insert(
            "INSERT INTO events (ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line) VALUES (?,?,?,?,?,?,?,?,?,?)",
            events.map { e in
                let request = e.kind == .request
                return [e.timestamp, e.experiment, request ? "request" : "feedback", e.variant, e.userID,
                        e.conversationID.isEmpty && request ? e.requestID : e.conversationID, e.requestID,
                        request ? e.status : "", e.qa ? 1 : 0, e.jsonLine()]
            })
        try sqlite.execute("COMMIT")

        let sql = try String(contentsOf: Self.repositoryRoot.appendingPathComponent("scripts/sql/summary.sql"), encoding: .utf8)
        let result = try sqlite.query(sql, [":experiment": Self.spec.experiment, ":start": "2026-11-08T00:00:00Z"])
        // As `sqlite3 -csv -header` writes it.
        let csv = ([result.columns] + result.rows.map { $0.map { $0 ?? "" } }).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
        let data = try parse(csv, source: "summary.csv")
        #expect(data.experiment == Self.spec.experiment)
        #expect(data.metrics.map(\.metric.name) == ["task_completion", "output_tokens"])

        // The analysis of the events from the start on.
        let metrics = Metric.builtIn.filter { ["task_completion", "output_tokens"].contains($0.name) }
        func aggregate(_ events: [EventRecord]) throws -> ExperimentData {
            var a = EventAggregator(metrics: metrics, experiment: Self.spec.experiment)
            for e in events { try e.withView { try a.add($0) } }
            return a.finish()
        }
        let post = events.filter { $0.timestamp >= start }, pre = events.filter { $0.timestamp < start }
        let expected = try aggregate(post)
        #expect(Set(data.variants.map(\.name)) == Set(expected.variants.map(\.name)))
        for variant in data.variants {
            #expect(variant.users == expected.variants.first { $0.name == variant.name }!.users, "\(variant.name)")
        }
        for (k, name) in ["task_completion", "output_tokens"].enumerated() {
            for (v, variant) in data.variants.enumerated() {
                #expect(data.metrics[k].perVariant[v] == expected.moments(name, variant.name), "\(name) \(variant.name)")
            }
        }

        // Pre-period: each analysed user's value before the start, by the same aggregation one user at a time.
        func perUser(_ events: [EventRecord]) -> [String: [EventRecord]] { Dictionary(grouping: events, by: \.userID) }
        let postByUser = perUser(post), preByUser = perUser(pre)
        var covariates = Array(repeating: Array(repeating: RatioCUPEDMoments(), count: data.variants.count), count: 2)
        for user in postByUser.keys.sorted() {
            let mine = try aggregate(postByUser[user]!)
            guard let variant = mine.variants.first(where: { $0.users == 1 }), let v = data.variants.firstIndex(where: { $0.name == variant.name }) else { continue }
            let before = try aggregate(preByUser[user] ?? [])
            for (k, name) in ["task_completion", "output_tokens"].enumerated() {
                let x = mine.metric(name).perVariant[mine.index(variant.name)]
                guard x.n == 1 else { continue }
                let y = before.metric(name).perVariant.first { $0.n == 1 } ?? RatioMoments()
                covariates[k][v].add(numerator: x.numerator.sum, denominator: x.denominator.sum,
                                     preNumerator: y.numerator.sum, preDenominator: y.denominator.sum)
            }
        }
        for k in 0..<2 {
            #expect(data.metrics[k].covariates == covariates[k], "\(data.metrics[k].metric.name)")
            #expect(covariates[k].allSatisfy { $0.preDenominator.sum > 0 && $0.preDenominator.sum < $0.denominator.sum })
        }
        // The hand-made cases are in: x-switch's two conversations count in treatment.
        #expect(expected.dataQuality.usersInSeveralVariants == 1 && expected.dataQuality.duplicateRequestIDs == 1)
    }
}
