import BakeoffCore
import BakeoffTestSupport
import Foundation
import Testing

/// `TimeSeries.Builder`: the daily series in one read, kept up to date by reading only new events, equals
/// `TimeSeries.build` (each point the log cut at that time) however the events were written.
@Suite("Daily series built in one read")
struct TimeSeriesBuilderTests {
    /// Six days of requests, feedback (some a day later) and QA traffic; `written` orders them as a gateway would
    /// write them: a request when its answer ends (up to 40 minutes after it began, so streams begun before
    /// midnight are written after it), and `lateEvery` events held back to the very end (a second gateway whose
    /// batch arrived days later).
    static func log(lateEvery: Int? = nil) -> [EventRecord] {
        var events: [(written: Int64, event: EventRecord)] = []
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for d in 0..<6 {
            for u in 0..<(30 + d * 8) {
                let user = "u\(u)"
                let variant = u % 3 == 0 ? "treatment" : "control"
                let id = "r\(d)-\(u)"
                // Requests crowd around midnight so that many are written on the next day.
                let t = Make.t0 + Int64(d) * Make.day + Make.day - Int64(next() % 7_200_000_000)
                var request = Make.request(user, variant, id, conversation: "c\(d)-\(u)", at: t,
                                           latency: Double(200 + next() % 900), status: next() % 17 == 0 ? "error" : "ok")
                request.ttftMs = Double(50 + next() % 200)
                let delay = Int64(next() % 2_400_000_000)
                events.append((t + delay, request))
                if next() % 3 != 0 {
                    events.append((t + delay + 1_000_000, Make.feedback("thumbs_up", Double(next() % 2), request: id, at: t + delay + 1_000_000)))
                }
                if next() % 4 == 0 {
                    events.append((t + Make.day / 2, Make.feedback("task_completed", 1, conversation: "c\(d)-\(u)", at: t + Make.day / 2)))
                }
                if u % 11 == 0 {
                    var qa = Make.request("qa\(u)", variant, "qa\(d)-\(u)", at: t)
                    qa.qa = true
                    events.append((t + 5, qa))
                }
            }
        }
        var written = events.sorted { $0.written < $1.written }.map(\.event)
        if let lateEvery {
            var held: [EventRecord] = []
            var kept: [EventRecord] = []
            for (i, e) in written.enumerated() { if i % lateEvery == 7 && i < written.count / 2 { held.append(e) } else { kept.append(e) } }
            written = kept + held
        }
        return written
    }

    static func aggregate(_ lines: [String], options: EventLog.Options) throws -> ExperimentData {
        var a = EventLog.LineAggregator(source: "log", options: options)
        for (i, line) in lines.enumerated() {
            var l = line
            try l.withUTF8 { try a.add(UnsafeRawBufferPointer($0), number: i + 1) }
        }
        return try a.finish()
    }

    static var plan: AnalysisPlan {
        var plan = AnalysisPlan()
        plan.method = .sequential
        return plan
    }

    /// What must agree between two series: every point's cut, users, decision and every metric's numbers.
    static func fingerprint(_ s: TimeSeries) -> [String] {
        var out: [String] = []
        for p in s.points {
            out.append("cut \(p.cut) users \(p.report.variants.map { "\($0.name)=\($0.users)/\($0.requests)" }) decision \(p.report.decision.action.rawValue) srm \(String(describing: p.report.sampleRatio.pValue))")
            for r in p.report.results {
                out.append("  \(r.metric.name) \(r.treatment) c=\(String(describing: r.control.mean)) t=\(String(describing: r.treatmentGroup.mean)) d=\(String(describing: r.absoluteDifference)) ci=\(String(describing: r.absoluteInterval)) p=\(String(describing: r.pValue)) adj=\(String(describing: r.adjustedPValue))")
            }
            for q in p.report.quantiles {
                out.append("  \(q.metric.name) \(q.treatment) c=\(String(describing: q.control)) t=\(String(describing: q.treatmentValue)) p=\(String(describing: q.pValue))")
            }
        }
        for s in s.skipped { out.append("skipped \(s.cut): \(s.reason)") }
        return out
    }

    /// `parsed`: the lines are parsed on another thread (`ParsedLines`), as the store's reads do.
    static func built(_ events: [EventRecord], chunks: Int = 1, settle: Int64 = 3_600_000_000,
                      parsed: Bool = false) throws -> (TimeSeries, [DayRequests], Set<Int64>) {
        let lines = events.map { $0.jsonLine() }
        var options = EventLog.Options()
        options.experiment = "e"
        var builder = TimeSeries.Builder(source: "log", options: options, plan: plan, settle: settle)
        let size = (lines.count + chunks - 1) / chunks
        var last = TimeSeries(experiment: "e")
        var sawLate: Set<Int64> = []
        for start in stride(from: 0, to: lines.count, by: size) {
            let range = start..<min(lines.count, start + size)
            if parsed {
                let slice = Array(lines[range]), times = range.map { events[$0].timestamp }
                try ParsedLines.forEach(experiment: "e", depth: 2, read: { emit in
                    for (i, line) in slice.enumerated() {
                        var l = line
                        try l.withUTF8 { try emit(Int64(i), times[i], UnsafeRawBufferPointer($0)) }
                    }
                }) { _, ts, line in try builder.add(line, timestamp: ts) }
            } else {
                for i in range {
                    var l = lines[i]
                    try l.withUTF8 { try builder.add(UnsafeRawBufferPointer($0), timestamp: events[i].timestamp) }
                }
            }
            // A refresh: the clock is just past the last event written.
            builder.settle(now: events[min(lines.count, start + size) - 1].timestamp)
            sawLate.formUnion(builder.late)
            last = try builder.series { cut in
                var o = options
                o.until = cut
                return try aggregate(Array(lines[..<min(lines.count, start + size)]), options: o)
            }
        }
        return (last, builder.daily(), sawLate)
    }

    static func expected(_ events: [EventRecord]) throws -> TimeSeries {
        let lines = events.map { $0.jsonLine() }
        var options = EventLog.Options()
        options.experiment = "e"
        return try TimeSeries.build(plan: plan) { until in
            var o = options
            o.until = until
            return try aggregate(lines, options: o)
        }
    }

    @Test(arguments: [1, 3, 17], [false, true])
    func equalsACutOfTheLogAtEveryPointWhenWrittenOutOfOrder(chunks: Int, parsed: Bool) throws {
        let events = Self.log()
        // The test means something only if requests from before a midnight were written after it.
        let midnightsCrossed = zip(events, events.dropFirst()).contains { a, b in
            a.timestamp / Make.day > b.timestamp / Make.day
        }
        #expect(midnightsCrossed)
        let (series, _, _) = try Self.built(events, chunks: chunks, parsed: parsed)
        let want = try Self.expected(events)
        #expect(want.points.count == 6 || want.points.count == 7)
        #expect(Self.fingerprint(series) == Self.fingerprint(want))
    }

    @Test(arguments: [false, true])
    func eventsWrittenLongAfterTheirDayAreRecomputedExactly(parsed: Bool) throws {
        let events = Self.log(lateEvery: 29)
        let (series, _, late) = try Self.built(events, chunks: 4, parsed: parsed)
        #expect(!late.isEmpty, "the held-back events should reach days already closed")
        #expect(Self.fingerprint(series) == Self.fingerprint(try Self.expected(events)))
    }

    @Test func eventsInTimeOrderNeedNoCut() throws {
        let events = Self.log().sorted { $0.timestamp < $1.timestamp }
        let (series, _, late) = try Self.built(events)
        #expect(late.isEmpty)
        #expect(Self.fingerprint(series) == Self.fingerprint(try Self.expected(events)))
    }

    /// numpy's linear quantile.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (h - Double(lo))
    }

    /// Each day's own requests, with their exact quantiles, however late in the log a request was read.
    @Test(arguments: [nil, 29])
    func dailyRequestsCountEachDaysOwnRequests(lateEvery: Int?) throws {
        let events = Self.log(lateEvery: lateEvery)
        let (_, daily, _) = try Self.built(events, chunks: 2)
        for variant in ["control", "treatment"] {
            for d in 0..<7 {
                let day = Make.t0 + Int64(d) * Make.day
                let mine = events.filter { $0.kind == .request && !$0.qa && $0.variant == variant && $0.timestamp >= day && $0.timestamp < day + Make.day }
                let row = daily.first { $0.day == day && $0.variant == variant }
                #expect((row?.requests ?? 0) == mine.count, "day \(d) \(variant)")
                if let row, !mine.isEmpty {
                    #expect(row.errors == mine.filter { $0.status != "ok" }.count)
                    let latency = mine.compactMap(\.latencyMs).sorted(), ttft = mine.compactMap(\.ttftMs).sorted()
                    #expect(row.latencyP50 == Self.quantile(latency, 0.5) && row.latencyP95 == Self.quantile(latency, 0.95))
                    #expect(row.ttftP50 == Self.quantile(ttft, 0.5) && row.ttftP95 == Self.quantile(ttft, 0.95))
                }
            }
        }
    }

    /// An experiment with a start: the days before it are the CUPED pre-period, not points (they have no
    /// experiment requests); the series starts after the start, as `build` does.
    @Test func aStartLeavesThePrePeriodOut() throws {
        let events = Self.log()
        let lines = events.map { $0.jsonLine() }
        var options = EventLog.Options()
        options.experiment = "e"
        options.experimentStart = Make.t0 + 2 * Make.day + Make.day / 2
        var plan = Self.plan
        plan.start = options.experimentStart
        var builder = TimeSeries.Builder(source: "log", options: options, plan: plan)
        for (i, line) in lines.enumerated() {
            var l = line
            try l.withUTF8 { try builder.add(UnsafeRawBufferPointer($0), timestamp: events[i].timestamp) }
        }
        builder.settle(now: Make.t0 + 30 * Make.day)
        let aggregate: (Int64?) throws -> ExperimentData = { until in
            var o = options
            o.until = until
            return try Self.aggregate(lines, options: o)
        }
        let got = try builder.series { try aggregate($0) }
        let want = try TimeSeries.build(plan: plan, aggregate: aggregate)
        #expect(got.points.first.map { $0.cut } == Make.t0 + 3 * Make.day)
        #expect(Self.fingerprint(got) == Self.fingerprint(want))
    }

    /// A timestamp decades off (imported by mistake) neither hangs the series nor asks for a point per day.
    @Test func farOffTimestampsAreBounded() throws {
        var events = Self.log().filter { $0.timestamp < Make.t0 + 3 * Make.day }
        events.append(Make.request("stray", "control", "far-future", at: 253_402_210_800_000_000))  // 9999-12-31T23:00Z
        events.insert(Make.request("early", "control", "far-past", at: 1_000_000), at: 0)  // 1970
        let lines = events.map { $0.jsonLine() }
        var options = EventLog.Options()
        options.experiment = "e"
        let now = Make.t0 + 3 * Make.day + 3_600_000_000
        var builder = TimeSeries.Builder(source: "log", options: options, plan: Self.plan, now: now)
        for (i, line) in lines.enumerated() {
            var l = line
            try l.withUTF8 { try builder.add(UnsafeRawBufferPointer($0), timestamp: events[i].timestamp) }
        }
        builder.settle(now: now)
        let series = try builder.series { cut in
            var o = options
            o.until = cut
            return try Self.aggregate(lines, options: o)
        }
        #expect(series.points.count + series.skipped.count <= TimeSeries.maximumDays)
        let lastCut = try #require(series.points.last?.cut)
        #expect(lastCut <= now + Make.day && lastCut >= Make.t0 + 3 * Make.day)
        #expect(TimeSeries.dailyCuts(first: 1_000_000, last: Make.t0).count == TimeSeries.maximumDays)
    }

    /// Before 1970 the day still ends at midnight: the first cut after 1969-12-31T23:00Z is 1970-01-01T00:00Z.
    @Test func cutsBefore1970AreMidnights() {
        #expect(TimeSeries.dailyCuts(first: -3_600_000_000, last: 1_000_000) == [0, Make.day])
    }
}
