import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

/// The clustered quantile summaries computed the plain way, from per-user value lists.
enum QuantileBruteForce {
    /// Per variant: each user of the variant (by their first request by time; ties to the earlier line)
    /// with their values of `field` (users without values included).
    static func perUserValues(_ events: [EventRecord], field: RequestField) -> [String: [[Double]]] {
        var firstTs: [String: Int64] = [:], variantOf: [String: String] = [:]
        var values: [String: [Double]] = [:]
        var order: [String] = []
        var seenRequests = Set<String>()
        for e in events where e.kind == .request && !e.qa {
            guard seenRequests.insert(e.requestID).inserted else { continue }
            if firstTs[e.userID] == nil { order.append(e.userID) }
            if e.timestamp < firstTs[e.userID] ?? .max {
                firstTs[e.userID] = e.timestamp
                variantOf[e.userID] = e.variant
            }
            let x: Double?
            switch field {
            case .latencyMs: x = e.latencyMs
            case .ttftMs: x = e.ttftMs
            case .inputTokens: x = e.inputTokens.map(Double.init)
            case .outputTokens: x = e.outputTokens.map(Double.init)
            }
            values[e.userID, default: []] += x.map { [$0] } ?? []
        }
        var out: [String: [[Double]]] = [:]
        for u in order { out[variantOf[u]!, default: []].append(values[u] ?? []) }
        return out
    }

    /// Per variant, `QuantileEstimate(users:level:)` of every quantile metric, by metric name.
    static func estimates(_ events: [EventRecord], metrics: [Metric] = Metric.builtIn) -> [String: [String: QuantileEstimate]] {
        var out: [String: [String: QuantileEstimate]] = [:]
        for m in metrics where m.kind == .quantile {
            guard case .field(let f) = m.source else { continue }
            for (variant, users) in perUserValues(events, field: f) {
                out[m.name, default: [:]][variant] = QuantileEstimate(users: users, level: m.quantile!)
            }
        }
        return out
    }

    /// Checks every quantile metric's estimates against the brute force, exactly.
    static func check(_ data: ExperimentData, _ expected: [String: [String: QuantileEstimate]],
                      sourceLocation: SourceLocation = #_sourceLocation) {
        for m in data.metrics where m.metric.kind == .quantile {
            let estimates = m.quantileEstimates
            #expect(estimates?.count == data.variants.count, sourceLocation: sourceLocation)
            for (i, v) in data.variants.enumerated() {
                let want = expected[m.metric.name]?[v.name]
                let got = estimates?[i] ?? nil
                if let want, want.n > 0 {
                    #expect(got == want, "\(m.metric.name) \(v.name)", sourceLocation: sourceLocation)
                } else {
                    #expect(got == nil, "\(m.metric.name) \(v.name): no values", sourceLocation: sourceLocation)
                }
            }
        }
    }

    /// A simulated log with awkward cases added: a user whose first request by time comes late in the file
    /// in another variant, requests without TTFT, a user with no TTFT at all, tied values, a QA request and
    /// a duplicate request id.
    static func events(users: Int = 150, seed: UInt64 = 5) -> [EventRecord] {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.4))
        spec.users = users
        spec.seed = seed
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        let experiment = spec.experiment
        let t0 = spec.start + 3_600_000_000
        func request(_ user: String, _ variant: String, _ id: String, at t: Int64, latency: Double, ttft: Double?) -> EventRecord {
            var e = EventRecord(kind: .request, timestamp: t, experiment: experiment)
            e.userID = user
            e.variant = variant
            e.requestID = id
            e.conversationID = "conv-" + user
            e.latencyMs = latency
            e.ttftMs = ttft
            e.outputTokens = 10
            return e
        }
        // Seconds apart: the log format keeps milliseconds.
        events.append(request("late", "treatment", "x1", at: t0 + 5_000_000, latency: 900, ttft: 200))
        events.append(request("late", "treatment", "x2", at: t0 + 6_000_000, latency: 900, ttft: nil))
        events.append(request("late", "control", "x3", at: t0, latency: 1200.5, ttft: 200))  // first by time
        events.append(request("nottft", "treatment", "x4", at: t0, latency: 900, ttft: nil))
        events.append(request("nottft", "treatment", "x5", at: t0 + 1_000_000, latency: 901, ttft: nil))
        var qa = request("qa-user", "treatment", "x6", at: t0, latency: 99_999, ttft: 1)
        qa.qa = true
        events.append(qa)
        events.append(request("nottft", "control", "x4", at: t0 - 5_000_000, latency: 5, ttft: 5))  // duplicate id: ignored
        return events
    }

    static func write(_ events: [EventRecord]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-q-\(UUID().uuidString).jsonl").path
        try events.map { $0.jsonLine() + "\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite("Quantile estimates from events")
struct QuantileEstimateAggregationTests {
    @Test func estimatesEqualTheBruteForceInMemoryAndInPieces() throws {
        let events = QuantileBruteForce.events()
        let expected = QuantileBruteForce.estimates(events)
        #expect(expected["ttft_p95"]?["treatment"].map { $0.users > 0 } == true)
        let path = try QuantileBruteForce.write(events)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for partitions in [1, 4, 7] {
            var options = EventLog.Options()
            options.partitions = partitions
            let data = try EventLog.aggregate(path: path, options: options)
            QuantileBruteForce.check(data, expected)
            // The numpy-style quantiles stay as they were.
            let latency = data.metric("latency_p50")
            for (i, v) in data.variants.enumerated() {
                let all = QuantileBruteForce.perUserValues(events, field: .latencyMs)[v.name]!.flatMap { $0 }.sorted()
                #expect(latency.quantileCounts?[i] == all.count)
                let h = Double(all.count - 1) * 0.5
                let lo = Int(h), hi = min(lo + 1, all.count - 1)
                #expect(latency.quantiles?[i] == all[lo] + (all[hi] - all[lo]) * (h - Double(lo)))
            }
        }
        // Straight from the aggregator too.
        QuantileBruteForce.check(try Make.aggregate(events, experiment: "support-bot-v2"), expected)
    }

    @Test func usersWithoutValuesCountAsClustersWithNoEvents() throws {
        let data = try Make.aggregate([
            Make.request("a", "control", "r1", at: Make.t0, latency: 100),
            Make.request("a", "control", "r2", at: Make.t0 + 1, latency: 300),
            Make.request("b", "control", "r3", at: Make.t0, latency: 200),
        ])
        // No TTFT anywhere: no estimate, as there is no quantile.
        #expect(data.metric("ttft_p50").quantileEstimates == [nil])
        let e = try #require(data.metric("latency_p50").quantileEstimates?[0] ?? nil)
        #expect(e == QuantileEstimate(users: [[100, 300], [200]], level: 0.5))
        #expect(e.users == 2 && e.n == 3 && e.quantile == 200)
        #expect(e.belowSum == 2 && e.belowSumSquares == 2 && e.belowCountSumProduct == 3)
        #expect(e.countSumSquares == 5)
    }

    @Test func mergingSketchesOfDisjointUsersEqualsTheSketchOfAll() {
        var rng = SplitMix(seed: 11)
        func users(_ count: Int) -> [[Double]] {
            (0..<count).map { _ in (0..<Int(rng.next() % 6)).map { _ in Double(rng.next() % 500) / 2 } }
        }
        let a = users(300), b = users(200), c = users(1)
        var merged = ClusteredQuantileSketch(users: a)
        merged.merge(ClusteredQuantileSketch(users: b))
        merged.merge(ClusteredQuantileSketch(users: c))
        merged.merge(ClusteredQuantileSketch())
        for level in [0.01, 0.5, 0.9, 0.95, 0.99] {
            let direct = QuantileEstimate(users: a + b + c, level: level)
            #expect(merged.estimate(level: level, users: 501) == direct)
            #expect(ClusteredQuantileSketch(users: a + b + c).estimate(level: level, users: 501) == direct)
        }
        #expect(ClusteredQuantileSketch().estimate(level: 0.5, users: 3) == nil)
    }

    /// The daily cuts build their quantile sketches from values sorted already: the same sketch as adding them
    /// one by one, exact or in buckets (with repeated values, zeros and values below the buckets' minimum).
    @Test(arguments: [1_000, QuantileSketch.exactLimit + 5_000])
    func aSketchOfSortedValuesEqualsOneBuiltValueByValue(count: Int) {
        var rng = SplitMix(seed: 7)
        var values = (0..<count).map { _ in Double(rng.next() % 40_000) / 10 }
        values += [0, 0.0001, .nan, .infinity]
        var added = QuantileSketch()
        for v in values { added.add(v) }
        added.prepare()
        let sorted = QuantileSketch(sorted: values.filter(\.isFinite).sorted() + [.nan])
        #expect(sorted.count == added.count && sorted.isExact == added.isExact && sorted.isExact == (count < 10_000))
        for q in [0, 0.001, 0.25, 0.5, 0.95, 0.99, 1] {
            #expect(sorted.quantile(q) == added.quantile(q))
        }
    }

    /// A daily cut's clustered sketch, built value by value in order with bucket bounds of the whole field: the
    /// same estimates as the sketch of the same entries at once (bounds of its own values), exact or spilled.
    @Test(arguments: [2_000, ClusteredQuantileSketch.exactLimit + 3_000])
    func aClusteredSketchBuiltInOrderEqualsOneBuiltAtOnce(count: Int) {
        var rng = SplitMix(seed: 9)
        var entries = (0..<count).map { _ in
            ClusteredQuantileSketch.Entry(value: Double(rng.next() % 50_000) / 10, squareStep: UInt32(1 + 2 * (rng.next() % 4)), userCount: UInt32(1 + rng.next() % 6))
        }
        entries.append(.init(value: 0, squareStep: 1, userCount: 1))
        entries.sort { $0.value < $1.value }
        var built = ClusteredQuantileSketch.SortedBuilder(count: entries.count, lowest: 0, highest: 1e6)
        for e in entries { built.add(e) }
        let inOrder = built.sketch(countSumSquares: 12_345)
        let atOnce = ClusteredQuantileSketch(sorted: entries, countSumSquares: 12_345)
        #expect(inOrder.isExact == atOnce.isExact && inOrder.isExact == (count < 10_000))
        for level in [0.001, 0.25, 0.5, 0.95, 0.99] {
            #expect(inOrder.estimate(level: level, users: 4_000) == atOnce.estimate(level: level, users: 4_000))
        }
    }

    @Test func spilledSketchesStayCloseAndMergeExactly() {
        var rng = SplitMix(seed: 12)
        var a: [[Double]] = [], b: [[Double]] = []
        var total = 0
        while total <= ClusteredQuantileSketch.exactLimit + 10_000 {
            let values = (0..<Int(1 + rng.next() % 8)).map { _ in 20 + Double(rng.next() % 3_000_000) / 1000 }
            total += values.count
            if rng.next() % 3 == 0 { b.append(values) } else { a.append(values) }
        }
        b.append([0, 0.0001])  // values below the buckets' minimum
        let all = ClusteredQuantileSketch(users: a + b)
        #expect(!all.isExact)
        var merged = ClusteredQuantileSketch(users: a)
        merged.merge(ClusteredQuantileSketch(users: b))
        #expect(!merged.isExact)
        let users = a.count + b.count
        // Two spilled sketches merged: the same as one spilled sketch of all their users.
        var twice = all
        twice.merge(all)
        let direct = ClusteredQuantileSketch(users: a + b + a + b)
        for level in [0.001, 0.5, 0.95, 0.99] {
            #expect(twice.estimate(level: level, users: 2 * users) == direct.estimate(level: level, users: 2 * users))
        }
        for level in [0.001, 0.5, 0.95, 0.99] {
            let exact = QuantileEstimate(users: a + b, level: level)
            let approx = all.estimate(level: level, users: users)!
            #expect(merged.estimate(level: level, users: users) == approx)
            #expect(approx.n == exact.n && approx.countSum == exact.countSum && approx.countSumSquares == exact.countSumSquares)
            #expect(abs(approx.quantile / exact.quantile - 1) < 1e-4)
            #expect(abs(approx.lower / exact.lower - 1) < 1e-4)
            #expect(abs(approx.upper / exact.upper - 1) < 1e-4)
            // Values within q's 0.01% bucket count as below: a few hundredths of a percent of n at most.
            #expect(abs(approx.belowSum - exact.belowSum) <= exact.n * 3e-4)
            #expect(abs(approx.variance / exact.variance - 1) < 0.05, "level \(level)")  // the worst case: 5 buckets across the interval
        }
    }
}
