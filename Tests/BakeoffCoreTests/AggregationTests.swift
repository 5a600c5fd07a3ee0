import BakeoffCore
import BakeoffStatistics
import Testing
import BakeoffTestSupport
import BakeoffReport
import BakeoffSimulation

@Suite("Aggregation of events into per-user sums")
struct AggregationTests {
    @Test func userBelongsToTheVariantOfTheirFirstRequestByTime() throws {
        let data = try Make.aggregate([
            Make.request("u1", "treatment", "r2", at: Make.t0 + 10),
            Make.request("u1", "control", "r1", at: Make.t0),  // earlier by time, later in the file
            Make.request("u2", "treatment", "r3", at: Make.t0),
        ])
        #expect(data.variants.first { $0.name == "control" }?.users == 1)
        #expect(data.variants.first { $0.name == "treatment" }?.users == 1)
        #expect(data.dataQuality.usersInSeveralVariants == 1)
        // Both of u1's requests count in control.
        #expect(data.moments("error_rate", "control").denominator.sum == 2)
    }

    @Test func lastFeedbackWinsByTimeThenByFileOrder() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "c1", at: Make.t0),
            Make.feedback("task_completed", 1, conversation: "c1", at: Make.t0 + 100),
            Make.feedback("task_completed", 0, conversation: "c1", at: Make.t0 + 50),   // older: loses
            Make.request("u2", "control", "r2", conversation: "c2", at: Make.t0),
            Make.feedback("task_completed", 0, conversation: "c2", at: Make.t0 + 100),
            Make.feedback("task_completed", 1, conversation: "c2", at: Make.t0 + 100),  // same time, later line: wins
        ])
        let m = data.moments("task_completion", "control")
        #expect(m.n == 2)
        #expect(m.numerator.sum == 2)
        #expect(m.denominator.sum == 2)
    }

    @Test func feedbackOnARequestCountsForItsConversationEvenBeforeTheRequestIsRead() throws {
        let data = try Make.aggregate([
            Make.feedback("task_completed", 1, request: "r2", at: Make.t0 + 100),
            Make.request("u1", "control", "r1", conversation: "c1", at: Make.t0),
            Make.request("u1", "control", "r2", conversation: "c1", at: Make.t0 + 10),
            Make.feedback("task_completed", 0, conversation: "c1", at: Make.t0 + 90),  // older than the pending one
        ])
        let m = data.moments("task_completion", "control")
        #expect(m.denominator.sum == 1)
        #expect(m.numerator.sum == 1)
        #expect(data.moments("avg_turns", "control").numerator.sum == 2)
        #expect(data.dataQuality.feedbackWithMissingTarget == 0)
    }

    @Test func duplicatesAndMissingTargetsAreCountedNotAnalysed() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", at: Make.t0, status: "upstream_error"),
            Make.request("u1", "control", "r1", at: Make.t0 + 5),
            Make.feedback("thumbs_up", 1, request: "r-missing", at: Make.t0),
            Make.feedback("csat", 4, conversation: "c-missing", at: Make.t0),
            Make.feedback("typo_name", 1, conversation: "r1", at: Make.t0),
        ])
        #expect(data.dataQuality.duplicateRequestIDs == 1)
        #expect(data.dataQuality.feedbackWithMissingTarget == 2)
        #expect(data.dataQuality.unusedFeedbackNames == [NamedCount(name: "typo_name", count: 1)])
        let errors = data.moments("error_rate", "control")
        #expect(errors.denominator.sum == 1)
        #expect(errors.numerator.sum == 1)
        #expect(data.requestEvents == 1)
    }

    @Test func repeatUsageNeedsTwoUTCDays() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", at: Make.t0 + Make.day - 1),
            Make.request("u1", "control", "r2", at: Make.t0 + Make.day),      // next UTC day
            Make.request("u2", "control", "r3", at: Make.t0),
            Make.request("u2", "control", "r4", at: Make.t0 + Make.day - 1),  // same day
        ])
        let m = data.moments("repeat_usage", "control")
        #expect(m.n == 2)
        #expect(m.numerator.sum == 1)
    }

    @Test func perUserSumsFeedTheRatioStatistic() throws {
        // u1: two conversations (completed 1 and 0), u2: one (completed 1).
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "a", at: Make.t0),
            Make.request("u1", "control", "r2", conversation: "b", at: Make.t0),
            Make.request("u2", "control", "r3", conversation: "c", at: Make.t0),
            Make.feedback("task_completed", 1, conversation: "a", at: Make.t0),
            Make.feedback("task_completed", 0, conversation: "b", at: Make.t0),
            Make.feedback("task_completed", 1, conversation: "c", at: Make.t0),
        ])
        let m = data.moments("task_completion", "control")
        #expect(m.n == 2)
        #expect(m.numerator.sum == 2 && m.numerator.sumOfSquares == 2)
        #expect(m.denominator.sum == 3 && m.denominator.sumOfSquares == 5)
        #expect(m.sumOfProducts == 1 * 2 + 1 * 1)
        let units = data.metric("task_completion").unitMoments[data.index("control")]
        #expect(units.n == 3 && units.sum == 2 && units.sumOfSquares == 2)
    }

    @Test func aRejectedLineLeavesNoTrace() throws {
        var a = EventAggregator()
        for i in 0..<64 { try Make.request("u\(i)", "v\(i)", "r\(i)", at: Make.t0).withView { try a.add($0) } }
        for attempt in 0..<2 {
            #expect(throws: EventRejection.self) {
                try Make.request("x\(attempt)", "v64", "rx\(attempt)", at: Make.t0).withView { try a.add($0) }
            }
        }
        // A duplicate request id carrying a new variant name must not create that variant.
        try Make.request("u0", "ghost", "r0", at: Make.t0).withView { try a.add($0) }
        let data = a.finish()
        #expect(data.variants.count == 64)
        #expect(!data.variants.contains { $0.name == "ghost" || $0.name == "v64" })
        #expect(data.dataQuality.duplicateRequestIDs == 1)
    }

    @Test func conversationIdsSharedByUsersAreReported() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "c-1", at: Make.t0),
            Make.request("u2", "treatment", "r2", conversation: "c-1", at: Make.t0),
            Make.request("u3", "treatment", "r3", conversation: "c-1", at: Make.t0),
        ])
        #expect(data.dataQuality.conversationsOfSeveralUsers == 1)
        let report = try Analysis.run(data, plan: AnalysisPlan())
        #expect(report.warnings.contains { $0.contains("conversation ids are used by more than one user") })
    }

    /// Issue 9, finding 1: a stored value the plan cannot use is left out and counted with an example; it
    /// never stops the analysis (it used to throw, which broke the live report for good).
    @Test func feedbackThePlanCannotUseIsCountedNotFatal() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", conversation: "c", at: Make.t0),
            Make.request("u2", "treatment", "r2", conversation: "d", at: Make.t0),
            Make.feedback("task_completed", 3, conversation: "c", at: Make.t0 + 1),
            Make.feedback("task_completed", 1, conversation: "d", at: Make.t0 + 1),
            Make.feedback("thumbs_up", 1, conversation: "c", at: Make.t0 + 2),
            Make.feedback("thumbs_up", 1, conversation: "d", at: Make.t0 + 2),
            Make.feedback("csat", 1e12, conversation: "c", at: Make.t0 + 3),
            Make.feedback("csat", 4.5, conversation: "d", at: Make.t0 + 3),
            Make.feedback("csat", 4, conversation: "d", at: Make.t0 + 4),
        ])
        let unusable = data.dataQuality.unusableFeedback
        #expect(unusable.count == 3)
        #expect(unusable.contains { $0.name == "task_completed" && $0.count == 1 && $0.reason == "value not true, false, 0 or 1" && $0.example == "task_completed = 3 for conversation c" })
        #expect(unusable.contains { $0.name == "thumbs_up" && $0.count == 2 && $0.reason.contains("per request") })
        #expect(unusable.contains { $0.name == "csat" && $0.count == 2 && $0.reason == "value not a whole number from 1 to 5" })
        let completion = try #require(data.metrics.first { $0.metric.name == "task_completion" })
        #expect(completion.perVariant.map(\.n) == [0, 1])
        let csat = try #require(data.metrics.first { $0.metric.name == "csat" })
        #expect(csat.unitMoments.map(\.sum) == [0, 4])

        // The report shows them in its data-quality section, in every format.
        let report = try Analysis.run(data, plan: AnalysisPlan())
        let table = report.render(.table)
        #expect(table.contains("feedback left out, csat value not a whole number from 1 to 5: 2, e.g. csat ="))
        #expect(report.render(.json).contains("\"unusable_feedback\""))
    }

    @Test func implausibleRequestValuesAreLeftOutAndCounted() throws {
        var absurd = Make.request("u1", "control", "r1", at: Make.t0)
        absurd.outputTokens = 9_000_000_000_000_000_000
        var negative = Make.request("u2", "control", "r2", at: Make.t0)
        negative.outputTokens = -5
        let slow = Make.request("u4", "control", "r4", at: Make.t0, latency: -5)
        let data = try Make.aggregate([absurd, negative, Make.request("u3", "control", "r3", at: Make.t0), slow])
        #expect(data.dataQuality.implausibleRequestValues == 3)
        let p50 = try #require(data.metrics.first { $0.metric.name == "latency_p50" })
        #expect(p50.quantileCounts == [3])
        let tokens = try #require(data.metrics.first { $0.metric.name == "output_tokens" })
        #expect(tokens.unitMoments[0].sum == 20)
    }

    @Test func otherExperimentsAreSkippedAndCounted() throws {
        let data = try Make.aggregate([
            Make.request("u1", "control", "r1", at: Make.t0),
            Make.request("u2", "control", "r2", at: Make.t0, experiment: "other"),
        ], experiment: "e")
        #expect(data.requestEvents == 1)
        #expect(data.dataQuality.otherExperiments == [NamedCount(name: "other", count: 1)])
    }

    @Test func quantilesMatchNumpyLinearInterpolation() throws {
        var events: [EventRecord] = []
        for (i, latency) in [100.0, 250, 300, 900, 2000].enumerated() {
            events.append(Make.request("u\(i)", "control", "r\(i)", at: Make.t0, latency: latency))
        }
        let data = try Make.aggregate(events)
        // numpy.quantile([100, 250, 300, 900, 2000], [0.5, 0.95, 0.99]) = 300, 1780, 1956
        #expect(data.metric("latency_p50").quantiles?[0] == 300)
        #expect(abs((data.metric("latency_p95").quantiles?[0] ?? 0) - 1780) < 1e-9)
        #expect(abs((data.metric("latency_p99").quantiles?[0] ?? 0) - 1956) < 1e-9)
    }

    @Test func quantileSketchStaysWithinItsStatedErrorAfterSpilling() {
        var sketch = QuantileSketch()
        var values: [Double] = []
        var rng = SplitMix(seed: 7)
        for _ in 0..<(QuantileSketch.exactLimit + 5000) {
            let v = 50 + Double(rng.next() % 1_000_000) / 100
            values.append(v)
            sketch.add(v)
        }
        #expect(!sketch.isExact)
        values.sort()
        for q in [0.5, 0.95, 0.99] {
            let h = Double(values.count - 1) * q
            let exact = values[Int(h)] + (values[min(Int(h) + 1, values.count - 1)] - values[Int(h)]) * (h - h.rounded(.down))
            let approx = sketch.quantile(q)!
            #expect(abs(approx / exact - 1) < 5e-5, "q=\(q): \(approx) vs \(exact)")
        }
    }
}
