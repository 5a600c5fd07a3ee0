import BakeoffCore
import BakeoffStatistics
import BakeoffStore
import Foundation
import Testing
import BakeoffSimulation

/// `analyze --db` (StoreReader) fills the same new fields as reading the log: quantile estimates.
@Suite("Aggregating from the event store")
struct StoreAggregationTests {
    /// A simulated experiment, as events, as a log file and as a store loaded from it.
    static func simulated(users: Int = 120) throws -> (events: [EventRecord], log: String, store: String) {
        var spec = SimulationSpec(allocation: try Allocation(split: 0.3))
        spec.users = users
        spec.seed = 9
        var events: [EventRecord] = []
        Simulator.run(spec) { events.append($0) }
        let log = try temporaryStorePath("log.jsonl")
        try events.map { $0.jsonLine() + "\n" }.joined().write(toFile: log, atomically: true, encoding: .utf8)
        let path = try temporaryStorePath()
        let store = try EventStore(path: path)
        _ = try store.importLog(path: log)
        store.close()
        return (events, log, path)
    }

    @Test func quantileEstimatesFromTheStoreEqualTheBruteForce() throws {
        let (events, log, path) = try Self.simulated()
        // Per variant, each user's values (all of a simulated user's requests are in one variant).
        var variantOf: [String: String] = [:], latency: [String: [Double]] = [:], ttft: [String: [Double]] = [:]
        var order: [String] = []
        for e in events where e.kind == .request {
            if variantOf[e.userID] == nil { order.append(e.userID); variantOf[e.userID] = e.variant }
            if let x = e.latencyMs { latency[e.userID, default: []].append(x) }
            if let x = e.ttftMs { ttft[e.userID, default: []].append(x) }
        }
        let data = try aggregateStore(path: path, options: EventLog.Options())
        let fromLog = try EventLog.aggregate(path: log, options: EventLog.Options())
        for m in data.metrics where m.metric.kind == .quantile {
            let values = m.metric.source == .field(.latencyMs) ? latency : ttft
            for (i, v) in data.variants.enumerated() {
                let users = order.filter { variantOf[$0] == v.name }.map { values[$0] ?? [] }
                let want = QuantileEstimate(users: users, level: m.metric.quantile!)
                #expect(m.quantileEstimates?[i] == want, "\(m.metric.name) \(v.name)")
                #expect(fromLog.metrics.first { $0.metric.name == m.metric.name }?.quantileEstimates?[i] == want)
            }
        }
    }

    @Test func covariatesFromTheStoreEqualThoseOfTheLog() throws {
        let (_, log, path) = try Self.simulated(users: 200)
        var options = EventLog.Options()
        options.experimentStart = 1_793_491_200_000_000 + 6 * 86_400_000_000  // 2026-11-07
        options.covariates = try CovariateTable.parse("user_id,metric,value,units\nu-1,csat,9,2\nu-2,csat,4,1\nnobody,csat,1,1\n", source: "pre.csv")
        let data = try aggregateStore(path: path, options: options)
        let fromLog = try EventLog.aggregate(path: log, options: options)
        #expect(data.dataQuality.preExperimentRequests > 0)
        #expect(data.dataQuality.preExperimentRequests == fromLog.dataQuality.preExperimentRequests)
        #expect(data.dataQuality.covariateUsersNotInExperiment == fromLog.dataQuality.covariateUsersNotInExperiment)
        #expect(data.variants == fromLog.variants)
        for (a, b) in zip(data.metrics, fromLog.metrics) {
            #expect(a.covariates == b.covariates, "\(a.metric.name)")
            #expect(a.usersWithCovariate == b.usersWithCovariate, "\(a.metric.name)")
            #expect((a.covariates != nil) == (a.metric.kind != .quantile))
        }
        #expect(data.metrics.first { $0.metric.name == "task_completion" }!.usersWithCovariate!.reduce(0, +) > 10)
    }
}
