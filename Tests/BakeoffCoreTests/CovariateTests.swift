import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The metric definitions applied the plain way to a list of events, split at the experiment start, for
/// checking the covariates (CUPED) the aggregator computes.
struct CovariateBruteForce {
    enum Period: Hashable { case pre, post }

    struct Request {
        var user: String, conversation: String, period: Period, ok: Bool, outputTokens: Double?, day: Int64
    }

    /// Per period, per metric name, per user: (Σ unit values, units).
    var totals: [Period: [String: [String: (m: Double, d: Double)]]] = [:]
    /// Users by their first request at or after the start, with its variant.
    var variantOf: [String: String] = [:]
    /// Users in the order the aggregator adds them: by their first request at or after the start in the file.
    var order: [String] = []

    init(_ events: [EventRecord], start: Int64?, metrics: [Metric] = Metric.builtIn) {
        func period(_ t: Int64) -> Period { start.map { t < $0 ? .pre : .post } ?? .post }
        var requests: [String: Request] = [:]
        var conversationUser: [Period: [String: String]] = [:]   // first request's user, per period
        var turns: [Period: [String: Int]] = [:]
        var firstTs: [String: Int64] = [:]
        // Last feedback per (period, unit key, name): value, ts, line.
        var last: [Period: [String: (value: Double, ts: Int64, line: Int)]] = [:]
        for (line, e) in events.enumerated() where !e.qa {
            if e.kind == .request {
                guard requests[e.requestID] == nil else { continue }
                let conversation = e.conversationID.isEmpty ? e.requestID : e.conversationID
                let p = period(e.timestamp)
                requests[e.requestID] = Request(user: e.userID, conversation: conversation, period: p, ok: e.status == "ok",
                                                outputTokens: e.outputTokens.map(Double.init), day: e.timestamp / 86_400_000_000)
                if conversationUser[p]?[conversation] == nil { conversationUser[p, default: [:]][conversation] = e.userID }
                turns[p, default: [:]][conversation, default: 0] += 1
                if p == .post {
                    if firstTs[e.userID] == nil { order.append(e.userID) }
                    if e.timestamp < firstTs[e.userID] ?? .max {
                        firstTs[e.userID] = e.timestamp
                        variantOf[e.userID] = e.variant
                    }
                }
            } else {
                func knows(_ p: Period) -> Bool {
                    if !e.requestID.isEmpty { return requests[e.requestID]?.period == p }
                    return conversationUser[p]?[e.conversationID] != nil
                }
                var p = period(e.timestamp)
                if p == .pre && !knows(.pre) && knows(.post) { p = .post }
                if p == .post && !knows(.post) && knows(.pre) { p = .pre }
                guard let metric = metrics.first(where: { $0.source == .feedback(e.name) }) else { continue }
                let unit: String
                if metric.level == .request {
                    unit = "r:" + e.requestID
                } else if !e.requestID.isEmpty {
                    guard let r = requests[e.requestID], r.period == p else { continue }
                    unit = "c:" + r.conversation
                } else {
                    unit = "c:" + e.conversationID
                }
                let key = unit + "|" + e.name
                if let old = last[p]?[key], (old.ts, old.line) > (e.timestamp, line) { continue }
                last[p, default: [:]][key] = (e.value, e.timestamp, line)
            }
        }
        for p in [Period.pre, .post] {
            var out: [String: [String: (m: Double, d: Double)]] = [:]
            func add(_ metric: String, _ user: String, _ x: Double) {
                let old = out[metric]?[user] ?? (0, 0)
                out[metric, default: [:]][user] = (old.m + x, old.d + 1)
            }
            let periodRequests = requests.values.filter { $0.period == p }
            for metric in metrics where metric.kind != .quantile {
                switch metric.source {
                case .feedback(let name):
                    for (key, v) in last[p] ?? [:] where key.hasSuffix("|" + name) {
                        let unit = String(key.dropLast(name.count + 1))
                        let user: String?
                        if unit.hasPrefix("r:") {
                            guard let r = requests[String(unit.dropFirst(2))], r.period == p else { continue }
                            user = conversationUser[p]?[r.conversation]
                        } else {
                            user = conversationUser[p]?[String(unit.dropFirst(2))]
                        }
                        if let user { add(metric.name, user, v.value) }
                    }
                case .turns:
                    for (c, n) in turns[p] ?? [:] { add(metric.name, conversationUser[p]![c]!, Double(n)) }
                case .repeatUsage:
                    var days: [String: Set<Int64>] = [:]
                    for r in periodRequests { days[r.user, default: []].insert(r.day) }
                    for (u, set) in days { add(metric.name, u, set.count > 1 ? 1 : 0) }
                case .errors:
                    for r in periodRequests { add(metric.name, r.user, r.ok ? 0 : 1) }
                case .field(.outputTokens):
                    for r in periodRequests { if let x = r.outputTokens { add(metric.name, r.user, x) } }
                case .field:
                    Issue.record("no brute force for \(metric.name)")
                }
            }
            totals[p] = out
        }
    }

    /// The expected covariate moments of `metric` per variant, with (mp, dp) from `pre(user)`.
    func covariates(_ metric: String, variants: [String], pre: (String) -> (Double, Double)) -> [RatioCUPEDMoments] {
        var out = variants.map { _ in RatioCUPEDMoments() }
        for u in order {
            guard let (m, d) = totals[.post]?[metric]?[u], d > 0 else { continue }
            let (mp, dp) = pre(u)
            out[variants.firstIndex(of: variantOf[u]!)!].add(numerator: m, denominator: d, preNumerator: mp, preDenominator: dp)
        }
        return out
    }

    func preTotals(_ metric: String, _ user: String) -> (Double, Double) {
        totals[.pre]?[metric]?[user] ?? (0, 0)
    }
}

func close(_ a: Double, _ b: Double) -> Bool { a == b || abs(a - b) <= 1e-9 * max(abs(a), abs(b)) }

func close(_ a: SampleMoments, _ b: SampleMoments) -> Bool {
    close(a.n, b.n) && close(a.sum, b.sum) && close(a.sumOfSquares, b.sumOfSquares)
}

func close(_ a: RatioCUPEDMoments, _ b: RatioCUPEDMoments) -> Bool {
    close(a.n, b.n) && close(a.numerator, b.numerator) && close(a.denominator, b.denominator)
        && close(a.preNumerator, b.preNumerator) && close(a.preDenominator, b.preDenominator)
        && close(a.numeratorDenominator, b.numeratorDenominator) && close(a.preNumeratorPreDenominator, b.preNumeratorPreDenominator)
        && close(a.numeratorPreNumerator, b.numeratorPreNumerator) && close(a.denominatorPreDenominator, b.denominatorPreDenominator)
        && close(a.numeratorPreDenominator, b.numeratorPreDenominator) && close(a.denominatorPreNumerator, b.denominatorPreNumerator)
}

@Suite("Covariates for variance reduction (CUPED)")
struct CovariateTests {
    static let day: Int64 = 86_400_000_000

    /// A simulated 14-day log whose first half becomes the pre-experiment period, with awkward cases: a
    /// conversation across the start, feedback after the start on a conversation before it, a user seen
    /// only before the start, a user whose pre-period variant differs, errors before the start.
    static func events() -> (events: [EventRecord], start: Int64) {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        spec.users = 220
        spec.seed = 17
        spec.behaviours["control"] = { var b = VariantBehaviour(); b.errorRate = 0.05; return b }()
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        let start = spec.start + 7 * day
        let x = spec.experiment
        func request(_ user: String, _ variant: String, _ id: String, _ conversation: String, _ t: Int64, ok: Bool = true) -> EventRecord {
            var e = EventRecord(kind: .request, timestamp: t, experiment: x)
            e.userID = user; e.variant = variant; e.requestID = id; e.conversationID = conversation
            e.latencyMs = 500; e.ttftMs = 100; e.outputTokens = 40; e.status = ok ? "ok" : "error"
            return e
        }
        func feedback(_ user: String, _ name: String, _ value: Double, conversation: String = "", request: String = "", _ t: Int64) -> EventRecord {
            var e = EventRecord(kind: .feedback, timestamp: t, experiment: x)
            e.userID = user; e.name = name; e.value = value; e.conversationID = conversation; e.requestID = request
            return e
        }
        let s = 1_000_000 as Int64
        events += [
            // Across the start: one turn before, two after.
            request("span", "legacy", "s1", "cs", start - 30 * s, ok: false),
            request("span", "treatment", "s2", "cs", start + 30 * s),
            request("span", "treatment", "s3", "cs", start + 90 * s),
            feedback("span", "task_completed", 1, conversation: "cs", start + 120 * s),
            // A conversation before the start, rated after it: counts before.
            request("late-rater", "control", "l1", "cl", start - 3 * day),
            request("late-rater", "control", "l2", "cl", start - 2 * day, ok: false),
            feedback("late-rater", "task_completed", 0, conversation: "cl", start + 5 * s),
            feedback("late-rater", "csat", 2, conversation: "cl", start + 6 * s),
            feedback("late-rater", "thumbs_up", 1, request: "l2", start + 7 * s),
            request("late-rater", "control", "l3", "cl2", start + day),
            feedback("late-rater", "task_completed", 1, conversation: "cl2", start + day + s),
            // Only before the start: not a user of the experiment.
            request("gone", "control", "g1", "cg", start - day),
            feedback("gone", "csat", 5, conversation: "cg", start - day + s),
            // Feedback stamped before the start on a request after it (a clock skew): counts after.
            request("skew", "treatment", "k1", "ck", start + 2 * s),
            feedback("skew", "thumbs_up", 0, request: "k1", start - s),
        ]
        return (events, start)
    }

    static func write(_ events: [EventRecord]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-cov-\(UUID().uuidString).jsonl").path
        try events.map { $0.jsonLine() + "\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func options(start: Int64? = nil, partitions: Int = 1, covariates: CovariateTable? = nil) -> EventLog.Options {
        var o = EventLog.Options()
        o.experimentStart = start
        o.partitions = partitions
        o.covariates = covariates
        return o
    }

    @Test func preExperimentEventsLeaveTheExperimentAsWithoutThem() throws {
        let (events, start) = Self.events()
        let full = try Self.write(events)
        // The experiment's events: those at or after the start, and the skewed feedback on a request after it.
        let after = try Self.write(events.filter { $0.timestamp >= start || $0.requestID == "k1" })
        defer { for p in [full, after] { try? FileManager.default.removeItem(atPath: p) } }
        let plain = try EventLog.aggregate(path: after, options: Self.options())
        #expect(plain.metrics.allSatisfy { $0.covariates == nil && $0.usersWithCovariate == nil })
        for partitions in [1, 4] {
            let data = try EventLog.aggregate(path: full, options: Self.options(start: start, partitions: partitions))
            #expect(data.variants == plain.variants)
            #expect(!data.variants.contains { $0.name == "legacy" })
            #expect(data.requestEvents == plain.requestEvents)
            #expect(data.firstTimestamp == plain.firstTimestamp && data.lastTimestamp == plain.lastTimestamp)
            #expect(data.dataQuality.usersInSeveralVariants == plain.dataQuality.usersInSeveralVariants)
            #expect(data.dataQuality.preExperimentRequests == events.filter { $0.kind == .request && $0.timestamp < start }.count)
            #expect(data.dataQuality.preExperimentFeedback > 0)
            // The post-start feedback on pre-start targets is no longer "missing its target".
            #expect(data.dataQuality.feedbackWithMissingTarget < plain.dataQuality.feedbackWithMissingTarget)
            for (a, b) in zip(data.metrics, plain.metrics) {
                #expect(a.perVariant == b.perVariant, "\(a.metric.name)")
                #expect(a.unitMoments == b.unitMoments, "\(a.metric.name)")
                #expect(a.quantileEstimates == b.quantileEstimates, "\(a.metric.name)")
                #expect(a.quantiles == b.quantiles, "\(a.metric.name)")
                // Covariates for every metric with variance reduction, over the same users.
                #expect((a.covariates != nil) == (a.metric.kind != .quantile), "\(a.metric.name)")
                if let c = a.covariates {
                    for v in c.indices {
                        #expect(close(c[v].post.numerator, b.perVariant[v].numerator) && close(c[v].post.denominator, b.perVariant[v].denominator))
                        #expect(c[v].n == b.perVariant[v].n)
                    }
                }
            }
            _ = try Analysis.run(data, plan: AnalysisPlan()).render(.json)
        }
    }

    @Test func preExperimentCovariatesEqualTheBruteForce() throws {
        let (events, start) = Self.events()
        let brute = CovariateBruteForce(events, start: start)
        // The awkward cases landed where the rules say.
        #expect(brute.preTotals("task_completion", "late-rater") == (0, 1))
        #expect(brute.preTotals("csat", "late-rater") == (2, 1))
        #expect(brute.preTotals("error_rate", "span") == (1, 1))
        #expect(brute.preTotals("avg_turns", "span") == (1, 1))
        #expect(brute.preTotals("thumbs_up_rate", "skew") == (0, 0))
        #expect(brute.variantOf["span"] == "treatment" && brute.variantOf["gone"] == nil)
        let path = try Self.write(events)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var results: [ExperimentData] = [try Make.aggregate(events, experiment: "support-bot-v2", start: start)]
        for partitions in [1, 4] {
            results.append(try EventLog.aggregate(path: path, options: Self.options(start: start, partitions: partitions)))
        }
        for data in results {
            let names = data.variants.map(\.name)
            for m in data.metrics where m.metric.kind != .quantile {
                let want = brute.covariates(m.metric.name, variants: names) { brute.preTotals(m.metric.name, $0) }
                let got = try #require(m.covariates)
                #expect(zip(got, want).allSatisfy { close($0, $1) }, "\(m.metric.name): \(got) vs \(want)")
                let withData = names.map { v in
                    brute.order.filter { brute.variantOf[$0] == v && (brute.totals[.post]?[m.metric.name]?[$0]?.d ?? 0) > 0
                        && brute.preTotals(m.metric.name, $0).1 > 0 }.count
                }
                #expect(m.usersWithCovariate == withData, "\(m.metric.name)")
                #expect(withData.reduce(0, +) > 20, "\(m.metric.name)")
            }
        }
    }

    @Test func metricsWithoutVarianceReductionGetNoCovariate() throws {
        var metrics = Metric.builtIn
        metrics[2].varianceReduction = false  // csat
        let (events, start) = Self.events()
        let data = try Make.aggregate(events, metrics: metrics, experiment: "support-bot-v2", start: start)
        #expect(data.metric("csat").covariates == nil)
        #expect(data.metric("task_completion").covariates != nil)
    }

    @Test func aCovariateFileGivesEachUsersPreExperimentValue() throws {
        let (all, start) = Self.events()
        let events = all.filter { $0.timestamp >= start }
        let brute = CovariateBruteForce(events, start: nil)
        // Every other user of the experiment, a user who never appears, and a quoted id with a comma.
        var csv = "\u{FEFF}user_id,metric,value,units\r\n"
        var expected: [String: (Double, Double)] = [:]
        for (i, u) in brute.order.enumerated() where i % 2 == 0 {
            let units = Double(i % 5 + 1)
            let completed = Double(i % 3) <= units ? Double(i % 3) : units
            csv += "\(u),task_completion,\(Int(completed)),\(Int(units))\r\n"
            csv += "\(u), csat ,\(3.5 * units),\(Int(units))\r\n"
            expected[u] = (completed, units)
        }
        csv += "nobody,task_completion,1,1\r\n\r\n\"odd,\"\"id\",repeat_usage,1,\r\n"
        let table = try CovariateTable.parse(csv, source: "pre.csv")
        #expect(table.metricNames == ["task_completion", "csat", "repeat_usage"])
        #expect(table.value(user: "odd,\"id", metric: "repeat_usage")! == (1, 1))
        #expect(table.value(user: "nobody", metric: "csat") == nil)
        let path = try Self.write(events + [{
            var e = EventRecord(kind: .request, timestamp: start + Self.day, experiment: "support-bot-v2")
            e.userID = "odd,\"id"; e.variant = "control"; e.requestID = "odd-1"; e.latencyMs = 1
            return e
        }()])
        defer { try? FileManager.default.removeItem(atPath: path) }
        for partitions in [1, 3] {
            let data = try EventLog.aggregate(path: path, options: Self.options(partitions: partitions, covariates: table))
            #expect(data.dataQuality.covariateUsersNotInExperiment == 1)
            let names = data.variants.map(\.name)
            let completion = data.metric("task_completion")
            let want = brute.covariates("task_completion", variants: names) { expected[$0] ?? (0, 0) }
            #expect(zip(completion.covariates!, want).allSatisfy { close($0, $1) })
            let csat = data.metric("csat")
            let wantCsat = brute.covariates("csat", variants: names) { u in expected[u].map { (3.5 * $0.1, $0.1) } ?? (0, 0) }
            #expect(zip(csat.covariates!, wantCsat).allSatisfy { close($0, $1) })
            #expect(data.metric("repeat_usage").usersWithCovariate?.reduce(0, +) == 1)
            // Metrics the file does not list have no covariate (there is no pre-experiment period).
            #expect(data.metric("avg_turns").covariates == nil)
        }
        // With a pre-experiment period too, the file wins for its metrics and the period gives the rest.
        let allPath = try Self.write(all)
        defer { try? FileManager.default.removeItem(atPath: allPath) }
        let both = try EventLog.aggregate(path: allPath, options: Self.options(start: start, covariates: table))
        let bruteAll = CovariateBruteForce(all, start: start)
        let names = both.variants.map(\.name)
        #expect(zip(both.metric("avg_turns").covariates!, bruteAll.covariates("avg_turns", variants: names) { bruteAll.preTotals("avg_turns", $0) })
            .allSatisfy { close($0, $1) })
        #expect(zip(both.metric("task_completion").covariates!, bruteAll.covariates("task_completion", variants: names) { expected[$0] ?? (0, 0) })
            .allSatisfy { close($0, $1) })
    }

    @Test func aLogWithNothingAfterTheStartIsAnError() throws {
        let (events, start) = Self.events()
        let path = try Self.write(events.filter { $0.timestamp < start })
        defer { try? FileManager.default.removeItem(atPath: path) }
        for partitions in [1, 2] {
            #expect {
                _ = try EventLog.aggregate(path: path, options: Self.options(start: start, partitions: partitions))
            } throws: { error in
                "\(error)".contains("no requests at or after the experiment start 2026-11-08T00:00:00") && "\(error)".contains(path)
            }
        }
    }

    @Test(arguments: [
        ("", "pre.csv: the file is empty"),
        ("\n  \n", "pre.csv: the file is empty"),
        ("u1,task_completion,1\n", "pre.csv:1: the header must be user_id,metric,value or user_id,metric,value,units; got \"u1,task_completion,1\""),
        ("user,metric,value\nu1,csat,3\n", "pre.csv:1: the header must be"),
        ("user_id,metric,value,units,extra\n", "pre.csv:1: the header must be"),
        ("user_id,metric,value\n", "pre.csv: no rows after the header"),
        ("user_id,metric,value\nu1,csat\n", "pre.csv:2: expected 3 fields (user_id,metric,value), got 2"),
        ("user_id,metric,value,units\nu1,csat,3,1,9\n", "pre.csv:2: expected 4 fields (user_id,metric,value,units), got 5"),
        ("user_id,metric,value\n,csat,3\n", "pre.csv:2: empty user_id"),
        ("user_id,metric,value\nu1,,3\n", "pre.csv:2: empty metric name"),
        ("user_id,metric,value\nu1,satisfaction,3\n", "pre.csv:2: unknown metric \"satisfaction\" (the metrics: task_completion, escalation_rate, csat"),
        ("user_id,metric,value\nu1,latency_p95,900\n", "pre.csv:2: metric \"latency_p95\" is a quantile: it takes no covariate"),
        ("user_id,metric,value\nu1,csat,abc\n", "pre.csv:2: value: \"abc\" is not a number"),
        ("user_id,metric,value\nu1,csat,nan\n", "pre.csv:2: value: \"nan\" is not a number"),
        ("user_id,metric,value\nu1,csat,inf\n", "pre.csv:2: value: \"inf\" is not a number"),
        ("user_id,metric,value\nu1,csat,0x10\n", "pre.csv:2: value: \"0x10\" is not a number"),
        ("user_id,metric,value\nu1,csat,1e999\n", "pre.csv:2: value: \"1e999\" is out of range"),
        ("user_id,metric,value\nu1,csat,\n", "pre.csv:2: value: missing number"),
        ("user_id,metric,value\nu1,csat,1e\n", "pre.csv:2: value: \"1e\" is not a number"),
        ("user_id,metric,value,units\nu1,csat,3,-1\n", "pre.csv:2: units must not be negative, got -1"),
        ("user_id,metric,value,units\nu1,csat,3,0\n", "pre.csv:2: value must be 0 when units is 0, got 3"),
        ("user_id,metric,value,units\nu1,task_completion,3,2\n", "pre.csv:2: metric \"task_completion\" is a proportion: value must be between 0 and units (2), got 3"),
        ("user_id,metric,value\nu1,escalation_rate,-1\n", "pre.csv:2: metric \"escalation_rate\" is a proportion: value must be between 0 and units (1), got -1"),
        ("user_id,metric,value\nu1,csat,3\nu2,csat,4\n\nu1,csat,5\n", "pre.csv:5: duplicate row for user \"u1\" and metric \"csat\" (first at line 2)"),
        ("user_id,metric,value\n\"u1,csat,3\n", "pre.csv:2: a quoted field is not closed"),
        ("user_id,metric,value\nu\"1,csat,3\n", "pre.csv:2: a quote inside an unquoted field"),
        ("user_id,metric,value\n\"u1\"x,csat,3\n", "pre.csv:2: a comma must follow a closing quote, found \"x,csat,3\""),
    ])
    func hostileFilesAreRefusedWithTheirLineAndProblem(text: String, message: String) {
        #expect {
            _ = try CovariateTable.parse(text, source: "pre.csv")
        } throws: { error in
            let description = "\(error)"
            if !description.hasPrefix(message) { Issue.record("got: \(description)") }
            return description.hasPrefix(message)
        }
    }

    @Test func fileProblemsNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-cov-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.csv").path
        #expect { _ = try CovariateTable.load(path: missing) } throws: { "\($0)" == "\(missing): no such covariate file" }
        #expect { _ = try CovariateTable.load(path: dir.path) } throws: { "\($0)" == "\(dir.path): is a directory, not a covariate file" }
        let latin1 = dir.appendingPathComponent("latin1.csv").path
        _ = FileManager.default.createFile(atPath: latin1, contents: Data("user_id,metric,value\nu1,csat,3\nJos".utf8 + [0xE9] + Data(",csat,4\n".utf8)))
        #expect { _ = try CovariateTable.load(path: latin1) } throws: { "\($0)" == "\(latin1):3: not valid UTF-8" }
        let good = dir.appendingPathComponent("good.csv").path
        try "user_id,metric,value\nu1,csat,3\n".write(toFile: good, atomically: true, encoding: .utf8)
        let table = try CovariateTable.load(path: good)
        #expect(table.userCount == 1 && table.rowCount == 1 && table.value(user: "u1", metric: "csat")! == (3, 1))
    }
}

extension Make {
    static func aggregate(_ events: [EventRecord], metrics: [Metric] = Metric.builtIn, experiment: String? = nil, start: Int64?,
                          covariates: CovariateTable? = nil) throws -> ExperimentData {
        var a = EventAggregator(metrics: metrics, experiment: experiment, experimentStart: start, covariates: covariates)
        for e in events { try e.withView { v in try a.add(v) } }
        return a.finish()
    }
}
