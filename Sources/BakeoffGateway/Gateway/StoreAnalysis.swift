import BakeoffCore
import BakeoffStore

/// Joins the event store to the analysis: the store deals in log lines, plans as text and counts, and knows
/// nothing of the analysis; this feeds its lines to the same aggregator that reads a log (used by the gateway's
/// report and by `bakeoff analyze --db`).
public enum StoreAnalysis {
    /// Aggregates one experiment straight from the store, exactly as `EventLog.aggregate` reads the log that
    /// `bakeoff export --include-qa` writes of it (the same parser and aggregator; QA events are counted
    /// and left out).
    ///
    /// Every option of the log's analysis applies (`experimentStart` and `covariates` for variance
    /// reduction included) but `partitions`: the store is read in one pass.
    ///
    /// Without `options.experiment` the store must hold one experiment; otherwise a `StoreError` of kind
    /// `.severalExperiments` lists them (`.empty`, `.experimentNotFound`: see `StoreReader.selectExperiment`).
    /// A problem in an event names the store and the event's place among the experiment's events, which is
    /// its line number in that exported log.
    public static func aggregate(path: String, options: EventLog.Options) throws -> ExperimentData {
        var selected = options
        selected.experiment = try StoreReader.selectExperiment(path: path, named: options.experiment)
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

    /// The experiment's report at the end of each day (`TimeSeries`): each point is `aggregate` with `until` at
    /// its cut, so it equals `bakeoff analyze --db --until` at that time.
    public static func timeSeries(path: String, options: EventLog.Options, plan: AnalysisPlan) throws -> TimeSeries {
        var selected = options
        selected.experiment = try StoreReader.selectExperiment(path: path, named: options.experiment)
        return try TimeSeries.build(plan: plan) { until in
            var o = selected
            o.until = until
            return try aggregate(path: path, options: o)
        }
    }
}
