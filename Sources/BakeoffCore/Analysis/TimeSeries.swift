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

    /// Midnights (UTC) after the first event through the first one after the last: each day's end.
    public static func dailyCuts(first: Int64, last: Int64) -> [Int64] {
        let day: Int64 = 86_400_000_000
        guard last >= first else { return [] }
        var cut = (first / day + 1) * day
        var out: [Int64] = []
        while true {
            out.append(cut)
            if cut > last { break }
            cut += day
        }
        return out
    }

    /// The report at the end of each day of the data: `aggregate(nil)` reads every event (its first and last
    /// times give the cuts, and it is the last cut's data: no event is at or after it), `aggregate(cut)` the
    /// events before a cut.
    public static func build(plan: AnalysisPlan, aggregate: (Int64?) throws -> ExperimentData) throws -> TimeSeries {
        let whole = try aggregate(nil)
        var series = TimeSeries(experiment: whole.experiment)
        guard let first = whole.firstTimestamp, let last = whole.lastTimestamp else { return series }
        for cut in dailyCuts(first: first, last: last) {
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
