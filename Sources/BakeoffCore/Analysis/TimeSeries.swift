import Dispatch
import Foundation
import Synchronization
/// An experiment's analysis as it stood at the end of each day: the report at every daily cut, each equal to
/// `bakeoff analyze --until` at that time (the same aggregation, the same plan).
///
/// Sequential intervals (the live plan's method) stay valid however many of these points are looked at.
public struct TimeSeries: Sendable {
    /// One cut: the report over the events before `cut`.
    public struct Point: Sendable {
        /// Microseconds since 1970: the events before it count.
        public var cut: Int64
        public var report: Report
    }

    public var experiment: String
    public var points: [Point]
    /// Cuts with no analysis yet (no user assigned, too few for a test), with why.
    public var skipped: [(cut: Int64, reason: String)]

    public init(experiment: String, points: [Point] = [], skipped: [(cut: Int64, reason: String)] = []) {
        self.experiment = experiment
        self.points = points
        self.skipped = skipped
    }

    /// The most days a series covers: the last ones (a timestamp decades off, imported by mistake, would
    /// otherwise ask for a point per day in between).
    public static let maximumDays = 1_096

    /// Midnights (UTC) after the first event through the first one after the last: each day's end; at most
    /// `maximumDays` of them, the last ones.
    public static func dailyCuts(first: Int64, last: Int64) -> [Int64] {
        let day: Int64 = 86_400_000_000
        guard last >= first else { return [] }
        let end = Builder.floorDay(last) + day
        let start = max(Builder.floorDay(first) + day, end - Int64(maximumDays - 1) * day)
        return Array(stride(from: start, through: end, by: Int(day)))
    }

    /// The report at the end of each day of the data: `aggregate(nil)` reads every event (its first and last
    /// times give the cuts, and it is the last cut's data: no event is at or after it), `aggregate(cut)` the
    /// events before a cut.
    public static func build(plan: AnalysisPlan, aggregate: (Int64?) throws -> ExperimentData) throws -> TimeSeries {
        let whole = try aggregate(nil)
        var series = TimeSeries(experiment: whole.experiment)
        guard let first = whole.firstTimestamp, let last = whole.lastTimestamp else { return series }
        for cut in dailyCuts(first: max(first, plan.start ?? first), last: last) {
            let data = cut > last ? whole : try aggregate(cut)
            do throws(AnalysisError) {
                series.points.append(Point(cut: cut, report: try Analysis.run(data, plan: plan)))
            } catch {
                series.skipped.append((cut, error.message))
            }
        }
        return series
    }
}

extension TimeSeries {
    /// The daily series built in one read of the events in the order they were written, and kept up to date as
    /// more are written: a refresh reads only the new events (the dashboard's live experiment page).
    ///
    /// Every point equals `build` (and so `bakeoff analyze --until` at its cut). An event joins the aggregator
    /// of the whole read; at the first event of a new day the aggregator is cut (`EventAggregator.cut(at:)`,
    /// copy on write) and the cut goes on taking the events from before midnight that are written after it (a
    /// stream that began at 23:59 and ended after midnight). A cut is closed, and its report kept, once an event
    /// `settle` after it has been read or the clock is past it by as much; an event from before a closed cut
    /// that arrives later still marks that point `late`, for the caller to recompute from the whole log.
    public struct Builder: ~Copyable {
        public let plan: AnalysisPlan
        /// Microseconds after a cut during which events from before it may still be written.
        public let settle: Int64
        /// The experiment's name as bytes, to keep other experiments' requests out of the daily counts.
        private let experiment: [UInt8]?
        private let experimentStart: Int64?
        private var lines: EventLog.LineAggregator
        private var number = 0
        /// Cuts still taking late events, oldest first, with their aggregators.
        private var openCuts: [Int64] = []
        private var openAggregators: [EventAggregator] = []
        /// The last midnight reached by an event (nil before the first).
        private var reached: Int64?
        private var latest: Int64 = .min
        /// The last cut made: the midnight after the clock (`.max` without one).
        private var horizon: Int64
        /// Each closed cut's point, computed on another thread while the read goes on (two cores: the read on
        /// one, the days' analyses on the other).
        private var closed: [Int64: Pending<Closed>] = [:]
        /// Closed cuts that an event from before them reached afterwards.
        public private(set) var late: Set<Int64> = []
        private var days = DailyRequests()

        enum Closed: Sendable {
            case report(Report)
            case skipped(String)
            case failed(any Error)
        }

        public static let day: Int64 = 86_400_000_000

        /// - Parameter now: the clock (microseconds since 1970), when reading live: no cut is made after the
        ///   next midnight, so a timestamp far in the future (imported by mistake) does not ask for a point per
        ///   day up to it. `settle(now:)` moves it on.
        public init(source: String, options: EventLog.Options, plan: AnalysisPlan, settle: Int64 = 3_600_000_000, now: Int64? = nil) {
            self.plan = plan
            self.settle = settle
            horizon = now.map { Self.floorDay($0) + Self.day } ?? .max
            experiment = options.experiment.map { Array($0.utf8) }
            experimentStart = options.experimentStart
            lines = EventLog.LineAggregator(source: source, options: options)
        }

        /// Events read so far.
        public var events: Int { number }
        /// Cuts closed so far (a change means the series changed even without new events).
        public var closedCuts: Int { closed.count }

        /// Adds the next event (one line of the log, in the order written) with its timestamp.
        public mutating func add(_ line: UnsafeRawBufferPointer, timestamp: Int64) throws(EventLogError) {
            try add(.raw(line), timestamp: timestamp)
        }

        /// Adds the next event, parsed already or not (`ParsedLines`), with its timestamp.
        public mutating func add(_ line: ParsedLines.Line, timestamp: Int64) throws(EventLogError) {
            number += 1
            let midnight = min(Self.floorDay(timestamp), horizon)
            if let reached {
                if midnight > reached {
                    // Sorted now, the cuts share the sorted values and sort only the late events they take.
                    lines.prepare()
                    // Only the cuts a series can show (see `maximumDays`).
                    var cut = max(reached + Self.day, midnight - Int64(TimeSeries.maximumDays) * Self.day)
                    while cut <= midnight {
                        openCuts.append(cut)
                        openAggregators.append(lines.cut(at: cut))
                        cut += Self.day
                    }
                    self.reached = midnight
                } else if midnight < reached {
                    // An event from before cuts already made: a closed cut missed it, and a cut from before the
                    // first event read (the log does not start with its earliest day) never existed.
                    var cut = max(midnight + Self.day, reached - Int64(TimeSeries.maximumDays) * Self.day)
                    while cut <= reached {
                        if closed[cut] != nil || !openCuts.contains(cut) { late.insert(cut) }
                        cut += Self.day
                    }
                }
            } else {
                reached = midnight
            }
            if timestamp > latest { latest = min(timestamp, horizon) }
            switch line {
            case .event(let e):
                count(e)
                try lines.add(parsed: e, number: number, alsoTo: &openAggregators)
            case .raw(let bytes):
                // The daily counts are moved out while the line aggregator (another part of self) reads the line.
                var counts = DailyRequests()
                swap(&counts, &days)
                defer { swap(&counts, &days) }
                let experiment = self.experiment, start = experimentStart
                try lines.add(bytes, number: number, alsoTo: &openAggregators) { e in
                    if Self.counts(e, experiment: experiment, start: start) { counts.add(e) }
                }
            }
            close(before: latest)
        }

        /// Whether the daily counts take `e`: a request of the experiment, not QA, from its start on.
        private static func counts(_ e: EventView, experiment: [UInt8]?, start: Int64?) -> Bool {
            guard e.kind == .request, !e.qa, start.map({ e.timestamp >= $0 }) ?? true else { return false }
            return experiment.map { bytesEqual(e.experiment, $0) } ?? true
        }

        private mutating func count(_ e: EventView) {
            if Self.counts(e, experiment: experiment, start: experimentStart) { days.add(e) }
        }

        /// Closes the cuts the clock is `settle` past (`now`, microseconds since 1970), and lets cuts be made up
        /// to the midnight after it.
        public mutating func settle(now: Int64) {
            if horizon != .max { horizon = max(horizon, Self.floorDay(now) + Self.day) }
            close(before: now)
        }

        private mutating func close(before time: Int64) {
            while let cut = openCuts.first, cut + settle <= time {
                let aggregator = openAggregators.removeFirst()
                openCuts.removeFirst()
                // The day before the cut has its requests too: its quantiles are computed meanwhile.
                days.compute(day: cut - Self.day)
                let context = lines.context, plan = self.plan
                closed[cut] = Pending {
                    var a = aggregator
                    a.prepare()
                    return Self.point(context, a, plan)
                }
            }
        }

        private static func point(_ context: EventLog.LineAggregator.Context, _ aggregator: EventAggregator, _ plan: AnalysisPlan) -> Closed {
            let data: ExperimentData
            do { data = try context.data(of: aggregator) } catch { return .failed(error) }
            return analyse(data, plan)
        }

        /// Every event read so far, as `EventLog.aggregate` gives it.
        public mutating func whole() throws -> ExperimentData {
            lines.prepare()
            return try lines.snapshot()
        }

        /// The series so far, as `build` gives it; `recompute` aggregates the events before a late cut afresh.
        /// `whole` is `whole()` when the caller has it already.
        ///
        /// A late cut, or one the read never made (a log that does not start with its earliest day), is
        /// recomputed once and kept until another late event reaches it; cuts outside the series (before the
        /// experiment's start, or too far back) are left alone.
        public mutating func series(whole known: ExperimentData? = nil, recompute: (Int64) throws -> ExperimentData) throws -> TimeSeries {
            try seriesAndWhole(known, recompute: recompute).series
        }

        /// The series and every event read so far (`whole()`); the cuts still open are computed on other
        /// threads meanwhile.
        public mutating func seriesAndWhole(_ known: ExperimentData? = nil,
                                            recompute: (Int64) throws -> ExperimentData) throws -> (whole: ExperimentData, series: TimeSeries) {
            let context = lines.context, plan = self.plan
            var open: [Int64: Pending<Closed>] = [:]
            for (i, cut) in openCuts.enumerated() where !late.contains(cut) {
                let aggregator = openAggregators[i]
                open[cut] = Pending {
                    var a = aggregator
                    a.prepare()
                    return Self.point(context, a, plan)
                }
            }
            let whole = try known ?? self.whole()
            var series = TimeSeries(experiment: whole.experiment)
            guard let first = whole.firstTimestamp, let last = whole.lastTimestamp else { return (whole, series) }
            // With a clock, no point after the midnight after it (see `init`).
            let shown = horizon == .max ? last : min(last, horizon - 1)
            for cut in dailyCuts(first: max(first, experimentStart ?? first), last: shown) {
                let result: Closed
                if cut > last {
                    result = Self.analyse(whole, plan)
                } else if let done = closed[cut], !late.contains(cut) {
                    result = done.value
                } else if !late.contains(cut), let pending = open[cut] {
                    result = pending.value
                } else {
                    result = Self.analyse(try recompute(cut), plan)
                    closed[cut] = Pending(result)
                    late.remove(cut)
                }
                switch result {
                case .report(let report): series.points.append(Point(cut: cut, report: report))
                case .skipped(let reason): series.skipped.append((cut, reason))
                case .failed(let error): throw error
                }
            }
            return (whole, series)
        }

        /// Requests per day and variant with their latency and time-to-first-token quantiles (not cumulative).
        public mutating func daily() -> [DayRequests] {
            days.update()
            return days.rows()
        }

        private static func analyse(_ data: ExperimentData, _ plan: AnalysisPlan) -> Closed {
            do throws(AnalysisError) { return .report(try Analysis.run(data, plan: plan)) } catch { return .skipped(error.message) }
        }

        static func floorDay(_ t: Int64) -> Int64 {
            let d = t >= 0 ? t / day : (t + 1) / day - 1
            return d * day
        }
    }
}

/// One day's requests of one variant: how many, and their latency and time to first token.
public struct DayRequests: Sendable, Equatable {
    /// The day's first microsecond (midnight UTC).
    public var day: Int64
    public var variant: String
    public var requests: Int
    public var errors: Int
    public var latencyP50: Double?
    public var latencyP95: Double?
    public var ttftP50: Double?
    public var ttftP95: Double?

    public init(day: Int64, variant: String, requests: Int, errors: Int, latencyP50: Double? = nil, latencyP95: Double? = nil,
                ttftP50: Double? = nil, ttftP95: Double? = nil) {
        self.day = day
        self.variant = variant
        self.requests = requests
        self.errors = errors
        self.latencyP50 = latencyP50
        self.latencyP95 = latencyP95
        self.ttftP50 = ttftP50
        self.ttftP95 = ttftP95
    }
}

/// Per day and variant: request counts and latency sketches. Every day's values are kept (16 bytes a request),
/// so an event read late for its day (a log not in time order) counts in its day's quantiles like any other;
/// a day's quantiles are computed again only when it has new requests.
struct DailyRequests {
    struct Day {
        let day: Int64
        let variant: String
        var requests = 0
        var errors = 0
        var latency = QuantileSketch()
        var ttft = QuantileSketch()
        /// The row as last computed, while no request came since.
        var row: DayRequests?
        /// The row being computed on another thread, and of how many requests.
        var pending: (requests: Int, row: Pending<DayRequests>)?

        init(day: Int64, variant: String) {
            self.day = day
            self.variant = variant
        }

        mutating func record(_ e: EventView) {
            requests += 1
            if !e.isOK { errors += 1 }
            latency.add(e.latencyMs)
            ttft.add(e.ttftMs)
            row = nil
        }

        /// The row, from sketches sorted by the caller (or copies of them).
        static func row(day: Int64, variant: String, requests: Int, errors: Int, latency: QuantileSketch, ttft: QuantileSketch) -> DayRequests {
            DayRequests(day: day, variant: variant, requests: requests, errors: errors,
                        latencyP50: latency.quantile(0.5), latencyP95: latency.quantile(0.95),
                        ttftP50: ttft.quantile(0.5), ttftP95: ttft.quantile(0.95))
        }
    }
    private var days: [Day] = []
    private var slots: [Key: Int] = [:]
    /// Each slot's variant name as bytes.
    private var variantBytes: [[UInt8]] = []
    /// The slots of the days and variants met last (with the hash of the variant's name), to find them without
    /// making a String per request.
    private var recent: [(day: Int64, hash: UInt64, slot: Int)] = []

    private struct Key: Hashable {
        var day: Int64
        var variant: String
    }

    mutating func add(_ e: EventView) {
        let day = TimeSeries.Builder.floorDay(e.timestamp), hash = hashBytes(e.variant)
        for i in recent.indices where recent[i].day == day && recent[i].hash == hash {
            let slot = recent[i].slot
            if bytesEqual(e.variant, variantBytes[slot]) {
                days[slot].record(e)
                return
            }
        }
        let key = Key(day: day, variant: String(decoding: e.variant, as: UTF8.self))
        let slot: Int
        if let known = slots[key] {
            slot = known
        } else {
            slot = days.count
            slots[key] = slot
            days.append(Day(day: day, variant: key.variant))
            variantBytes.append(Array(e.variant))
        }
        if recent.count >= 16 { recent.removeFirst() }
        recent.append((day, hash, slot))
        days[slot].record(e)
    }

    /// Starts computing the quantiles of `day`'s variants on another thread (the day is over: they are kept
    /// unless a request of the day is read later).
    mutating func compute(day: Int64) {
        for i in days.indices where days[i].day == day && days[i].row == nil {
            let d = days[i]
            days[i].pending = (d.requests, Pending {
                var latency = d.latency, ttft = d.ttft
                latency.prepare()
                ttft.prepare()
                return Day.row(day: d.day, variant: d.variant, requests: d.requests, errors: d.errors, latency: latency, ttft: ttft)
            })
        }
    }

    /// Computes the quantiles of the days with new requests.
    mutating func update() {
        for i in days.indices where days[i].row == nil {
            if let pending = days[i].pending, pending.requests == days[i].requests {
                days[i].row = pending.row.value
            } else {
                days[i].latency.prepare()
                days[i].ttft.prepare()
                let d = days[i]
                days[i].row = Day.row(day: d.day, variant: d.variant, requests: d.requests, errors: d.errors, latency: d.latency, ttft: d.ttft)
            }
            days[i].pending = nil
        }
    }

    /// Every day and variant, oldest first (`update` first for current quantiles).
    func rows() -> [DayRequests] {
        days.map { d in d.row ?? DayRequests(day: d.day, variant: d.variant, requests: d.requests, errors: d.errors) }
            .sorted { ($0.day, $0.variant) < ($1.day, $1.variant) }
    }
}

/// A value computed on another thread, or computed already. Whoever needs it first computes it: the background
/// worker, or a caller of `value` before the worker got to it (a busy machine does not keep a page waiting for a
/// thread of lower priority).
final class Pending<Value: Sendable>: Sendable {
    private struct State {
        var job: (@Sendable () -> Value)?
        var value: Value?
    }
    private let state: Mutex<State>
    private let done = DispatchSemaphore(value: 0)

    init(_ value: Value) {
        state = Mutex(State(job: nil, value: value))
        done.signal()
    }

    /// Queued on the background worker, or computed here at once when it already has
    /// `BackgroundWorker.backlogLimit` jobs waiting (each may hold a copy of an aggregation: memory stays bounded
    /// however far behind it is).
    init(computing: @escaping @Sendable () -> Value) {
        state = Mutex(State(job: computing, value: nil))
        let queued = BackgroundWorker.shared.run(unlessBacklogOf: BackgroundWorker.backlogLimit) { [self] in runIfNotStarted() }
        if !queued { runIfNotStarted() }
    }

    private func runIfNotStarted() {
        guard let job = state.withLock({ s -> (@Sendable () -> Value)? in
            defer { s.job = nil }
            return s.job
        }) else { return }
        let value = job()
        state.withLock { $0.value = value }
        done.signal()
    }

    /// The value, computed here if nobody has started it yet.
    var value: Value {
        runIfNotStarted()
        done.wait()
        done.signal()
        return state.withLock { $0.value! }
    }
}

/// One thread of lower priority (nice 10) that computes what a read can wait for: the daily points and
/// quantiles. A read's own threads (the parsing and the aggregation that every point needs) keep the cores
/// first, and a gateway's requests are never slowed by an analysis; the worker runs when a core is free.
///
/// Its jobs never wait for one another (`Pending.value` is not called on it), so one thread cannot deadlock; a
/// job someone needed first was computed by them, and is nothing to the worker.
final class BackgroundWorker: Sendable {
    static let shared = BackgroundWorker()
    /// Jobs waiting beyond which a caller computes its own.
    static let backlogLimit = 4

    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let ready = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in
            #if canImport(Glibc)
            // On Linux the nice value is per thread: `who` 0 is this thread alone.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            #endif
            while true {
                ready.wait()
                let job = queue.withLock { $0.removeFirst() }
                job()
            }
        }
        thread.name = "bakeoff-analysis"
        thread.start()
    }

    /// Queues `job` unless `limit` jobs are waiting already; whether it was queued.
    func run(unlessBacklogOf limit: Int, _ job: @escaping @Sendable () -> Void) -> Bool {
        let queued = queue.withLock { q -> Bool in
            guard q.count < limit else { return false }
            q.append(job)
            return true
        }
        if queued { ready.signal() }
        return queued
    }
}
