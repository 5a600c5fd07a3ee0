import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

@Suite("Ordinal counts for rank tests")
struct OrdinalCountsTests {
    /// The built-in metrics, every non-quantile one asking for Mann-Whitney.
    static let metrics: [Metric] = Metric.builtIn.map { m in
        var m = m
        if m.kind != .quantile { m.rankTest = .mannWhitney }
        return m
    }

    /// Per metric, per variant: value -> units, the plain way.
    static func bruteForce(_ events: [EventRecord]) -> [String: [String: [Double: Int]]] {
        struct Request { var user: String, conversation: String, ok: Bool, tokens: Int?, day: Int64 }
        var requests: [String: Request] = [:]
        var requestOrder: [String] = []
        var firstTs: [String: Int64] = [:], variantOf: [String: String] = [:]
        var conversationUser: [String: String] = [:], turns: [String: Int] = [:]
        var last: [String: (value: Double, ts: Int64, line: Int)] = [:]  // "name|unit"
        for (line, e) in events.enumerated() {
            if e.kind == .request {
                guard requests[e.requestID] == nil else { continue }
                let conversation = e.conversationID.isEmpty ? e.requestID : e.conversationID
                requests[e.requestID] = Request(user: e.userID, conversation: conversation, ok: e.status == "ok",
                                                tokens: e.outputTokens, day: e.timestamp / 86_400_000_000)
                requestOrder.append(e.requestID)
                if conversationUser[conversation] == nil { conversationUser[conversation] = e.userID }
                turns[conversation, default: 0] += 1
                if e.timestamp < firstTs[e.userID] ?? .max {
                    firstTs[e.userID] = e.timestamp
                    variantOf[e.userID] = e.variant
                }
            } else {
                let key = e.name + "|" + (e.name == "thumbs_up" ? e.requestID : e.conversationID)
                if let old = last[key], (old.ts, old.line) > (e.timestamp, line) { continue }
                last[key] = (e.value, e.timestamp, line)
            }
        }
        var out: [String: [String: [Double: Int]]] = [:]
        func count(_ metric: String, _ user: String, _ x: Double) { out[metric, default: [:]][variantOf[user]!, default: [:]][x, default: 0] += 1 }
        for (key, v) in last {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            let metric = ["task_completed": "task_completion", "escalated": "escalation_rate", "csat": "csat", "thumbs_up": "thumbs_up_rate"][parts[0]]!
            let user = parts[0] == "thumbs_up" ? requests[parts[1]].map { conversationUser[$0.conversation]! } : conversationUser[parts[1]]
            if let user { count(metric, user, v.value) }
        }
        for (c, n) in turns { count("avg_turns", conversationUser[c]!, Double(n)) }
        var days: [String: Set<Int64>] = [:]
        for id in requestOrder {
            let r = requests[id]!
            count("error_rate", r.user, r.ok ? 0 : 1)
            if let t = r.tokens { count("output_tokens", r.user, Double(t)) }
            days[r.user, default: []].insert(r.day)
        }
        for (u, set) in days { count("repeat_usage", u, set.count > 1 ? 1 : 0) }
        return out
    }

    static func events() -> [EventRecord] {
        var spec = SimulationSpec(allocation: try! Allocation(split: 0.5))
        spec.users = 250
        spec.seed = 23
        spec.behaviours["treatment"] = { var b = VariantBehaviour(); b.errorRate = 0.1; b.csat = 4.2; return b }()
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        // A CSAT given twice: the later one counts; one on an unknown conversation does not.
        let t = spec.start + 86_400_000_000
        var req = EventRecord(kind: .request, timestamp: t, experiment: spec.experiment)
        req.userID = "rater"; req.variant = "control"; req.requestID = "rr"; req.conversationID = "rc"; req.latencyMs = 1
        events.append(req)
        for (value, dt) in [(5.0, 2_000_000), (2.0, 1_000_000), (3.0, 2_000_000)] as [(Double, Int64)] {
            var f = EventRecord(kind: .feedback, timestamp: t + dt, experiment: spec.experiment)
            f.userID = "rater"; f.conversationID = "rc"; f.name = "csat"; f.value = value
            events.append(f)
        }
        var stray = EventRecord(kind: .feedback, timestamp: t, experiment: spec.experiment)
        stray.userID = "rater"; stray.conversationID = "nowhere"; stray.name = "csat"; stray.value = 1
        events.append(stray)
        return events
    }

    static func write(_ events: [EventRecord]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-ord-\(UUID().uuidString).jsonl").path
        try events.map { $0.jsonLine() + "\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func countsMatchTheBruteForceInMemoryAndInPieces() throws {
        let events = Self.events()
        let expected = Self.bruteForce(events)
        #expect(expected["csat"]?["control"]?[3] ?? 0 > 0)
        let path = try Self.write(events)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var results = [try Make.aggregate(events, metrics: Self.metrics)]
        for partitions in [1, 4] {
            var options = EventLog.Options()
            options.metrics = Self.metrics
            options.partitions = partitions
            results.append(try EventLog.aggregate(path: path, options: options))
        }
        for data in results {
            #expect(data.dataQuality.ordinalMetricsOverLevelLimit.isEmpty)
            for m in data.metrics {
                guard m.metric.kind != .quantile else {
                    #expect(m.ordinal == nil)
                    continue
                }
                let ordinal = try #require(m.ordinal, "\(m.metric.name)")
                let want = expected[m.metric.name] ?? [:]
                let levels = Set(want.values.flatMap(\.keys)).sorted()
                #expect(ordinal.levels == levels, "\(m.metric.name)")
                #expect(ordinal.counts == data.variants.map { v in levels.map { want[v.name]?[$0] ?? 0 } }, "\(m.metric.name)")
                // The counts are the units behind the per-user sums.
                for i in data.variants.indices {
                    #expect(Double(ordinal.counts[i].reduce(0, +)) == m.unitMoments[i].n, "\(m.metric.name)")
                    #expect(zip(ordinal.levels, ordinal.counts[i]).reduce(0) { $0 + $1.0 * Double($1.1) } == m.unitMoments[i].sum)
                }
            }
        }
        // Without a rank test, nothing is counted.
        #expect(try Make.aggregate(events).metrics.allSatisfy { $0.ordinal == nil })
    }

    @Test func tooManyLevelsLeaveNoCountsAndSaySo() throws {
        // 1,500 distinct token counts: each of 4 pieces holds fewer than the limit, all of them more.
        var events: [EventRecord] = []
        for i in 0..<1500 {
            var e = EventRecord(kind: .request, timestamp: Make.t0 + Int64(i) * 1_000_000, experiment: "e")
            e.userID = "u\(i)"; e.variant = i % 2 == 0 ? "control" : "treatment"; e.requestID = "r\(i)"
            e.latencyMs = 10; e.outputTokens = i
            events.append(e)
        }
        let path = try Self.write(events)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for partitions in [1, 4] {
            var options = EventLog.Options()
            options.metrics = Self.metrics
            options.partitions = partitions
            let data = try EventLog.aggregate(path: path, options: options)
            #expect(data.metric("output_tokens").ordinal == nil)
            #expect(data.dataQuality.ordinalMetricsOverLevelLimit == ["output_tokens"])
            #expect(data.metric("error_rate").ordinal == OrdinalCounts(levels: [0], counts: [[750], [750]]))
        }
        let few = try Make.aggregate(Array(events.prefix(EventAggregator.ordinalLevelLimit)), metrics: Self.metrics)
        #expect(few.metric("output_tokens").ordinal?.levels.count == EventAggregator.ordinalLevelLimit)
    }
}
