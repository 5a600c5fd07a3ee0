import BakeoffCore
import BakeoffStore
import Dispatch
import Synchronization

/// Joins the event store to the analysis: the store deals in log lines, plans as text and counts, and knows
/// nothing of the analysis; this feeds its lines to the same aggregator that reads a log (used by the gateway's
/// report and by `bakeoff analyze --db`).
public enum StoreAnalysis {
    /// The plan with its `recorded` looks replaced by the times the store recorded for `experiment` (each read of the
    /// live report or the dashboard); other plans as they are.
    public static func withRecordedLooks(_ plan: AnalysisPlan, path: String, experiment: String) throws(StoreError) -> AnalysisPlan {
        guard plan.groupSequential.looks == .recorded else { return plan }
        var plan = plan
        plan.groupSequential.looks = .times(try LookLog.times(path: path, experiment: experiment), recorded: true)
        return plan
    }

    /// Aggregates one experiment straight from the store, exactly as `EventLog.aggregate` reads the log that
    /// `bakeoff export --include-qa` writes of it (the same parser and aggregator; QA events are counted
    /// and left out). With `inDatabase`, a PostgreSQL store computes the data inside the database
    /// (`PostgresAnalysis`: the same data, little transferred, but several times the work on the server) unless
    /// covariates come from a file or the database takes no temporary tables (a hot standby, a role without
    /// the `TEMPORARY` privilege); the gateway's reads go on reading events.
    ///
    /// Every option of the log's analysis applies (`experimentStart` and `covariates` for variance
    /// reduction included) but `partitions`: the store is read in one pass.
    ///
    /// Without `options.experiment` the store must hold one experiment; otherwise a `StoreError` of kind
    /// `.severalExperiments` lists them (`.empty`, `.experimentNotFound`: see `StoreReader.selectExperiment`).
    /// A problem in an event names the store and the event's place among the experiment's events, which is
    /// its line number in that exported log.
    public static func aggregate(path: String, options: EventLog.Options, inDatabase: Bool = false) throws -> ExperimentData {
        var selected = options
        selected.experiment = try StoreReader.selectExperiment(path: path, named: options.experiment)
        if inDatabase && PostgresLocation.isURL(path) && selected.covariates == nil {
            do {
                return try PostgresAnalysis.aggregate(url: path, options: selected)
            } catch let error as StoreError where error.refusesTemporaryTables {
                // A hot standby, or a role without the TEMPORARY privilege: the events are read instead (the same data).
            }
        }
        var lines = EventLog.LineAggregator(source: path, options: selected)
        var number = 0
        var bytes: Int64 = 0, reported: Int64 = 0
        let progress = options.progress
        try StoreReader.forEachLine(path: path, experiment: selected.experiment, includeQA: true) { line in
            number += 1
            try lines.add(line, number: number)
            bytes += Int64(line.count + 1)
            if let progress, bytes - reported >= 4 << 20 {
                reported = bytes
                progress(bytes, nil)
            }
        }
        progress?(bytes, nil)
        return try lines.finish()
    }

    /// The plan changes recorded for `experiment` after its first request (or the plan's start when it has
    /// none), for the report.
    public static func planChangesAfterStart(path: String, experiment: String, data: ExperimentData, plan: AnalysisPlan) throws -> [PlanChange] {
        let history = try PlanLog.history(path: path, experiment: experiment).map { (timestamp: $0.timestamp, snapshot: PlanSnapshot(text: $0.plan)) }
        return PlanSnapshot.changesAfterStart(history, start: data.firstTimestamp ?? plan.start)
    }

    /// The experiment's report at the end of each day (`TimeSeries`), in one read of the store: each point
    /// equals `aggregate` with `until` at its cut, so it equals `bakeoff analyze --db --until` at that time.
    public static func timeSeries(path: String, options: EventLog.Options, plan: AnalysisPlan) throws -> TimeSeries {
        let experiment = try StoreReader.selectExperiment(path: path, named: options.experiment)
        var selected = options
        selected.experiment = experiment
        let live = LiveAnalysis(path: path, options: selected, plan: plan)
        return try live.refresh(now: WallClock.microseconds()).series
    }
}

/// One experiment's analysis from the store, kept between reads: the first read builds the report of every
/// day in one pass (`TimeSeries.Builder`), each later one reads only the events written since.
///
/// The gateway's report, time series and dashboard, and `bakeoff dashboard`, read through it.
public final class LiveAnalysis: Sendable {
    /// What one read gives: the series, the report now, requests per day, and what the read cost.
    public struct Snapshot: Sendable {
        public var series: TimeSeries
        /// The report over every event, as of the read (plan changes included).
        public var report: Report
        public var daily: [DayRequests]
        /// Events read so far, and by this read.
        public var events: Int
        public var newEvents: Int
        /// When this read happened (microseconds since 1970).
        public var readAt: Int64
        /// Seconds the read took.
        public var readSeconds: Double = 0
        /// True when this is the last read's result while a newer read runs (see `current`).
        public var updating = false
        /// The store's id of the last event read.
        public var lastEventID: Int64 = 0
        /// Why the newer read failed, when this is an older read's result.
        public var readError: String?
    }

    /// The last read's result and what a read with new events last cost, for `current`.
    private struct Latest {
        var snapshot: Snapshot?
        var seconds: Double = 0
        var reading = false
        var error: String?
    }
    private let latest = Mutex(Latest())

    /// The analysis for a page: read now when reading is quick (a read with new events took at most `budget`
    /// seconds the last time), else at once the last read's result, marked `updating`, while a new read runs on
    /// another thread. A large store's page so answers at once, and shows when its data was read.
    public func current(now: @escaping @Sendable () -> Int64, budget: Double = 0.2) throws -> Snapshot {
        let (last, seconds, failed) = latest.withLock { ($0.snapshot, $0.seconds, $0.error) }
        guard var last, seconds > budget else { return try refresh(now: now()) }
        // Nothing written since the last read: it is current (one indexed lookup). A store that cannot be read
        // any more is read now, so that its failure shows.
        let newest: Int64
        do { newest = try StoreReader.lastEventID(path: path, experiment: experiment) } catch { return try refresh(now: now()) }
        if newest == last.lastEventID && failed == nil { return last }
        let start = latest.withLock { l -> Bool in
            if l.reading { return false }
            l.reading = true
            return true
        }
        if start {
            DispatchQueue.global().async { [self] in
                var error: String?
                do { _ = try refresh(now: now()) } catch let e { error = "\(e)" }
                latest.withLock { $0.reading = false; $0.error = error }
            }
        }
        last.updating = true
        last.readError = failed
        return last
    }

    public let path: String
    public let experiment: String
    public let plan: AnalysisPlan
    private let settle: Int64
    private let state: Mutex<State>

    private struct State {
        var options: EventLog.Options
        var pass: Pass?
    }

    /// The builder and where in the store it stopped.
    private final class Pass {
        var builder: TimeSeries.Builder
        var lastID: Int64 = 0
        /// The last read's aggregation and series, and what they were made of: reused while nothing changed.
        var cached: (events: Int, closed: Int, late: Set<Int64>, data: ExperimentData, series: TimeSeries)?
        init(builder: consuming TimeSeries.Builder) { self.builder = builder }
    }

    /// `options.experiment` names the experiment (the store may hold others).
    public init(path: String, options: EventLog.Options, plan: AnalysisPlan, settleMicroseconds: Int64 = 3_600_000_000) {
        self.path = path
        experiment = options.experiment ?? ""
        self.plan = plan
        settle = settleMicroseconds
        state = Mutex(State(options: options))
    }

    /// Reads the events written since the last read and gives the analysis as of `now`.
    ///
    /// A failure (a damaged store, an event the analysis refuses) drops what was built, so the next read starts
    /// over and meets the same failure instead of resuming from a half-read event.
    public func refresh(now: Int64) throws -> Snapshot {
        let started = MonotonicClock.now()
        var snapshot = try read(now: now)
        snapshot.readSeconds = Double(MonotonicClock.now() - started) / 1e9
        let done = snapshot
        latest.withLock { l in
            l.snapshot = done
            l.error = nil
            if done.newEvents > 0 || l.seconds == 0 { l.seconds = done.readSeconds }
        }
        return snapshot
    }

    private func read(now: Int64) throws -> Snapshot {
        return try state.withLock { (state: inout State) throws -> Snapshot in
            let options = state.options
            let current = state.pass ?? Pass(builder: TimeSeries.Builder(source: path, options: options, plan: plan, settle: settle, now: now))
            state.pass = nil
            let before = current.builder.events
            // Parsed on another thread while this one aggregates and cuts the days.
            let path = self.path, experiment = self.experiment, after = current.lastID
            try ParsedLines.forEach(experiment: experiment, read: { emit in
                _ = try StoreReader.forEachEvent(path: path, experiment: experiment, after: after) { id, ts, line in
                    try emit(id, ts, line)
                }
            }) { id, ts, line in
                try current.builder.add(line, timestamp: ts)
                current.lastID = id
            }
            current.builder.settle(now: now)
            let data: ExperimentData, series: TimeSeries
            if let cached = current.cached, cached.events == current.builder.events, cached.closed == current.builder.closedCuts,
               cached.late == current.builder.late {
                (data, series) = (cached.data, cached.series)
            } else {
                (data, series) = try current.builder.seriesAndWhole { cut in
                    var o = options
                    o.until = cut
                    return try StoreAnalysis.aggregate(path: path, options: o)
                }
                current.cached = (current.builder.events, current.builder.closedCuts, current.builder.late, data, series)
            }
            var plan = try StoreAnalysis.withRecordedLooks(self.plan, path: path, experiment: data.experiment)
            plan.asOf = now
            var report = try Analysis.run(data, plan: plan)
            report.planChanges = try StoreAnalysis.planChangesAfterStart(path: path, experiment: data.experiment, data: data, plan: plan)
            let snapshot = Snapshot(series: series, report: report, daily: current.builder.daily(), events: current.builder.events,
                                    newEvents: current.builder.events - before, readAt: now)
            state.pass = current
            var done = snapshot
            done.lastEventID = current.lastID
            return done
        }
    }
}
