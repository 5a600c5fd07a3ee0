import BakeoffCore
import BakeoffStatistics
import BakeoffTestSupport
import Foundation
import Testing

/// `until`: the analysis as it stood at a time, the basis of every point of a time series.
@Suite("Analysis as of a time (until)")
struct UntilTests {
    /// Five days of requests and feedback, some feedback arriving a day after its request.
    static var events: [EventRecord] {
        var out: [EventRecord] = []
        for d in 0..<5 {
            for u in 0..<40 {
                let user = "u\(u)"
                let variant = u % 2 == 0 ? "control" : "treatment"
                let id = "r\(d)-\(u)"
                let t = Make.t0 + Int64(d) * Make.day + Int64(u) * 1_000_000
                out.append(Make.request(user, variant, id, conversation: "c\(d)-\(u)", at: t, latency: Double(100 + (u * 7 + d * 13) % 50)))
                if (u + d) % 3 != 0 { out.append(Make.feedback("thumbs_up", (u + d) % 2 == 0 ? 1 : 0, request: id, at: t + 1_000_000)) }
                if (u + d) % 4 == 0 { out.append(Make.feedback("task_completed", 1, conversation: "c\(d)-\(u)", at: t + Make.day)) }
            }
        }
        return out
    }

    @Test(arguments: [1, 2, 3, 4])
    func untilEqualsTheLogCutAtThatTime(days: Int) throws {
        let cut = Make.t0 + Int64(days) * Make.day + Make.day / 2
        var all = EventAggregator(until: cut)
        for e in Self.events { try e.withView { v in try all.add(v) } }
        let asOf = all.finish()
        let earlier = try Make.aggregate(Self.events.filter { $0.timestamp < cut })
        #expect(asOf.dataQuality.eventsAfterCut == Self.events.filter { $0.timestamp >= cut }.count)
        let plan = AnalysisPlan()
        let a = try Analysis.run(asOf, plan: plan), b = try Analysis.run(earlier, plan: plan)
        #expect(a.results.count == b.results.count && !a.results.isEmpty)
        for (x, y) in zip(a.results, b.results) {
            #expect(x.metric.name == y.metric.name && x.treatment == y.treatment)
            #expect(x.absoluteDifference == y.absoluteDifference && x.pValue == y.pValue && x.absoluteInterval == y.absoluteInterval)
        }
        #expect(a.variants.map(\.users) == b.variants.map(\.users))
        #expect(a.lastTimestamp == b.lastTimestamp)
    }
}
