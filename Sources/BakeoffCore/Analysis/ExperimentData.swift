import BakeoffStatistics

/// A name with how often it was seen.
public struct NamedCount: Sendable, Equatable, Codable {
    public var name: String
    public var count: Int
    public init(name: String, count: Int) {
        self.name = name
        self.count = count
    }
}

/// One variant as seen in the data.
public struct VariantData: Sendable, Equatable {
    public var name: String
    /// Users whose first request was in this variant.
    public var users: Int
    /// Requests of those users.
    public var requests: Int

    package init(name: String, users: Int, requests: Int) {
        self.name = name
        self.users = users
        self.requests = requests
    }
}

/// The sufficient statistics of one metric, per variant (indexed like `ExperimentData.variants`).
public struct MetricData: Sendable {
    public var metric: Metric
    /// Per-user sums: users with at least one unit, Σ values, Σ units, and cross sums.
    public var perVariant: [RatioMoments]
    /// Unit-level moments (the naive analysis that treats every unit as independent).
    public var unitMoments: [SampleMoments]
    /// For quantile metrics: the quantile per variant (nil where a variant has no values).
    public var quantiles: [Double?]?
    public var quantileCounts: [Int]?
    /// The values behind `quantiles`, kept so that data read in pieces can be merged.
    var sketches: [QuantileSketch]?
    /// The values behind `quantileEstimates` with their users' steps, kept so that data read in pieces can
    /// be merged (the estimates are computed once all pieces are in).
    var clusteredSketches: [ClusteredQuantileSketch]?
    /// For quantile metrics: the order-statistic summary per variant (Deng et al., clustered by user),
    /// what the quantile test needs. Nil when not computed.
    public var quantileEstimates: [QuantileEstimate?]?
    /// For metrics with variance reduction: per variant, the post-exposure and pre-experiment per-user
    /// sums (CUPED). Nil when the metric has no covariate.
    public var covariates: [RatioCUPEDMoments]?
    /// With `covariates`: per variant, the metric's users who have pre-experiment data (units before the
    /// experiment start, or a row of the covariate file with units > 0); the others enter with 0 / 0.
    public var usersWithCovariate: [Int]?
    /// For ordinal metrics tested with Mann-Whitney: the distinct unit values, ascending, and per variant
    /// how many units have each value. Nil unless the metric asks for Mann-Whitney.
    public var ordinal: OrdinalCounts?
}

extension MetricData {
    public init(metric: Metric, perVariant: [RatioMoments], unitMoments: [SampleMoments], quantiles: [Double?]? = nil,
                quantileCounts: [Int]? = nil, quantileEstimates: [QuantileEstimate?]? = nil,
                covariates: [RatioCUPEDMoments]? = nil, ordinal: OrdinalCounts? = nil) {
        self.metric = metric
        self.perVariant = perVariant
        self.unitMoments = unitMoments
        self.quantiles = quantiles
        self.quantileCounts = quantileCounts
        self.quantileEstimates = quantileEstimates
        self.covariates = covariates
        self.ordinal = ordinal
    }

    /// A quantile metric's data from each variant's values (`sketches`) and values with their users' steps
    /// (`clustered`), for variants of `users` users: the quantile and the clustered summary at its level.
    package init(quantileMetric metric: Metric, sketches: [QuantileSketch], clustered: [ClusteredQuantileSketch], users: [Int]) {
        let level = metric.quantile ?? 0.5
        self.init(metric: metric, perVariant: users.map { _ in RatioMoments() },
                  unitMoments: users.map { _ in SampleMoments(n: 0, sum: 0, sumOfSquares: 0) },
                  quantiles: sketches.map { $0.quantile(level) }, quantileCounts: sketches.map(\.count),
                  quantileEstimates: clustered.indices.map { clustered[$0].estimate(level: level, users: users[$0]) })
        self.sketches = sketches
        self.clusteredSketches = clustered
    }
}


/// Units per distinct value, per variant: the sufficient statistics of a rank test on an ordinal score.
public struct OrdinalCounts: Sendable, Equatable {
    /// Distinct values, ascending (for CSAT: 1, 2, 3, 4, 5).
    public var levels: [Double]
    /// Per variant (indexed like `ExperimentData.variants`), units at each level.
    public var counts: [[Int]]
    public init(levels: [Double], counts: [[Int]]) {
        self.levels = levels
        self.counts = counts
    }
}

/// Feedback events the plan cannot use, of one name and for one reason: left out of the analysis.
public struct UnusableFeedback: Sendable, Equatable {
    public var name: String
    /// Why, in words: "value not a whole number from 1 to 5", "per request, but names no request_id".
    public var reason: String
    public var count: Int
    /// The first such event, e.g. `csat = 99 for conversation c-17`.
    public var example: String

    public init(name: String, reason: String, count: Int, example: String) {
        self.name = name
        self.reason = reason
        self.count = count
        self.example = example
    }

    /// Adds up entries of the same name and reason (the first example stays), most frequent first.
    package static func combine(_ entries: [UnusableFeedback]) -> [UnusableFeedback] {
        var out: [UnusableFeedback] = []
        for e in entries {
            if let i = out.firstIndex(where: { $0.name == e.name && $0.reason == e.reason }) { out[i].count += e.count } else { out.append(e) }
        }
        return out.sorted { ($0.count, $1.name, $1.reason) > ($1.count, $0.name, $0.reason) }
    }
}

/// What looked wrong in the data, for the report's data-quality section.
public struct DataQuality: Sendable, Equatable {
    public var usersInSeveralVariants: Int
    public var feedbackWithMissingTarget: Int
    public var duplicateRequestIDs: Int
    /// Conversation ids that requests of more than one user carry (ids must be unique across users).
    public var conversationsOfSeveralUsers: Int = 0
    /// QA requests (forced into a variant by an admin, `"qa": true`) and their feedback, left out of the analysis.
    public var qaRequestsExcluded: Int = 0
    public var qaFeedbackExcluded: Int = 0
    /// Events at or after the cut (`EventLog.Options.until`), left out: the analysis as of that time.
    public var eventsAfterCut: Int = 0
    public var otherExperiments: [NamedCount]
    public var unusedFeedbackNames: [NamedCount]
    /// Feedback whose value or target the plan cannot use (left out, counted).
    public var unusableFeedback: [UnusableFeedback] = []
    /// Request events with a negative time or an implausible token count (those values left out).
    public var implausibleRequestValues: Int = 0
    public var linesSkipped: Int = 0
    public var skippedExamples: [String] = []
    public var blankLines: Int = 0
    /// Requests and feedback of the pre-experiment period (before `EventLog.Options.experimentStart`):
    /// left out of the analysis, read only for the covariates.
    public var preExperimentRequests: Int = 0
    public var preExperimentFeedback: Int = 0
    /// Users of the pre-period by the variant of their first pre-period request: CUPED needs them untreated.
    public var preExperimentVariants: [NamedCount] = []
    /// Users listed in the covariate file who are not among the experiment's users (their rows are unused).
    public var covariateUsersNotInExperiment: Int = 0
    /// Metrics asking for a rank test whose unit values have more distinct levels than the counts keep
    /// (`EventAggregator.ordinalLevelLimit`): their `ordinal` is nil.
    public var ordinalMetricsOverLevelLimit: [String] = []
}

extension DataQuality {
    /// Nothing wrong yet: every count 0, every list empty.
    package init() {
        self.init(usersInSeveralVariants: 0, feedbackWithMissingTarget: 0, duplicateRequestIDs: 0, otherExperiments: [], unusedFeedbackNames: [])
    }
}

/// Everything the statistics need from an experiment's events: per-variant sums, not the events.
public struct ExperimentData: Sendable {
    public var experiment: String
    public var variants: [VariantData]
    public var metrics: [MetricData]
    public var requestEvents: Int
    public var feedbackEvents: Int
    public var firstTimestamp: Int64?
    public var lastTimestamp: Int64?
    public var dataQuality: DataQuality
    /// False for data read from per-variant sums (`--summary`): there are no event counts to show.
    public var hasEvents = true
    /// Users by the hour (UTC) of their first request, oldest first: how many users each past look of a
    /// group-sequential test had. Empty without timestamps.
    public var newUsersByHour: [HourCount] = []
    /// Users in the covariate file, and those of them among the experiment's users: kept so that pieces
    /// of a log (disjoint users) add up to `dataQuality.covariateUsersNotInExperiment`.
    var covariateFileUsers = 0
    var covariateFileUsersSeen = 0

    package init(experiment: String, variants: [VariantData], metrics: [MetricData], requestEvents: Int, feedbackEvents: Int,
                 firstTimestamp: Int64?, lastTimestamp: Int64?, dataQuality: DataQuality) {
        self.experiment = experiment
        self.variants = variants
        self.metrics = metrics
        self.requestEvents = requestEvents
        self.feedbackEvents = feedbackEvents
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.dataQuality = dataQuality
    }

    /// The users whose first request came before `time` (microseconds since the epoch), counting the hour that
    /// holds `time` in proportion to how much of it has passed. Nil without arrival times.
    public func users(before time: Int64) -> Double? {
        guard !newUsersByHour.isEmpty else { return nil }
        var total = 0.0
        for h in newUsersByHour {
            if h.hour + HourCount.hour <= time {
                total += Double(h.users)
            } else if h.hour < time {
                total += Double(h.users) * Double(time - h.hour) / Double(HourCount.hour)
            } else {
                break
            }
        }
        return total
    }

    /// Days between the first and last request (at least a fraction of a day when there is data).
    public var observedDays: Double? {
        guard let a = firstTimestamp, let b = lastTimestamp else { return nil }
        return max(Double(b - a) / 86_400_000_000, 1.0 / 24)
    }
}

/// The users that arrived in one hour.
public struct HourCount: Sendable, Equatable {
    /// The hour's start (microseconds since the epoch, a multiple of an hour).
    public var hour: Int64
    public var users: Int
    public init(hour: Int64, users: Int) {
        self.hour = hour
        self.users = users
    }
    /// An hour in microseconds.
    public static let hour: Int64 = 3_600_000_000

    /// The start of the hour holding `time` (also before 1970).
    public static func start(of time: Int64) -> Int64 {
        time >= 0 ? time / hour * hour : -((-time + hour - 1) / hour) * hour
    }

    /// Counts by hour from the hours of single users.
    static func histogram(_ hours: some Sequence<Int64>) -> [HourCount] {
        var counts: [Int64: Int] = [:]
        for h in hours { counts[h, default: 0] += 1 }
        return counts.map { HourCount(hour: $0.key, users: $0.value) }.sorted { $0.hour < $1.hour }
    }

    /// The sum of several histograms.
    static func merge(_ lists: [[HourCount]]) -> [HourCount] {
        var counts: [Int64: Int] = [:]
        for list in lists { for h in list { counts[h.hour, default: 0] += h.users } }
        return counts.map { HourCount(hour: $0.key, users: $0.value) }.sorted { $0.hour < $1.hour }
    }
}

extension ExperimentData {
    /// Combines the data of disjoint sets of users (the pieces of a partitioned log) into one.
    ///
    /// Every per-variant sum adds up, because each user's events are all in one piece; variants are
    /// matched by name.
    /// `quantiles: false` leaves the quantile values stale, for merges whose result is merged again.
    static func merge(_ pieces: [ExperimentData], quantiles computeQuantiles: Bool = true) -> ExperimentData {
        guard var merged = pieces.first else { preconditionFailure("nothing to merge") }
        var names = merged.variants.map(\.name)
        for piece in pieces.dropFirst() {
            for v in piece.variants where !names.contains(v.name) { names.append(v.name) }
        }
        func reorder(_ piece: ExperimentData) -> [Int?] { names.map { n in piece.variants.firstIndex { $0.name == n } } }
        var variants = names.map { VariantData(name: $0, users: 0, requests: 0) }
        var metrics = merged.metrics.map { m in
            MetricData(metric: m.metric, perVariant: names.map { _ in RatioMoments() },
                       unitMoments: names.map { _ in SampleMoments(n: 0, sum: 0, sumOfSquares: 0) },
                       quantiles: nil, quantileCounts: nil, sketches: m.sketches == nil ? nil : names.map { _ in QuantileSketch() },
                       clusteredSketches: m.clusteredSketches == nil ? nil : names.map { _ in ClusteredQuantileSketch() },
                       covariates: m.covariates == nil ? nil : names.map { _ in RatioCUPEDMoments() },
                       usersWithCovariate: m.usersWithCovariate == nil ? nil : names.map { _ in 0 })
        }
        // The quantile metrics of one request field share its values: they are merged once, under the
        // field's first quantile metric, and shared by the others.
        let owner: [Int] = metrics.indices.map { k in
            guard metrics[k].metric.kind == .quantile else { return k }
            return metrics.firstIndex { $0.metric.kind == .quantile && $0.metric.source == metrics[k].metric.source } ?? k
        }
        // Rank-test counts by level, per metric; nil once a piece has none (too many levels).
        var levelCounts: [[Double: [Int]]?] = merged.metrics.map { $0.ordinal == nil ? nil : [:] }
        var quality = merged.dataQuality
        quality.usersInSeveralVariants = 0
        quality.feedbackWithMissingTarget = 0
        quality.duplicateRequestIDs = 0
        quality.conversationsOfSeveralUsers = 0
        quality.qaRequestsExcluded = 0
        quality.eventsAfterCut = 0
        quality.qaFeedbackExcluded = 0
        quality.preExperimentRequests = 0
        quality.preExperimentFeedback = 0
        quality.implausibleRequestValues = 0
        var covariateUsersSeen = 0
        var others: [String: Int] = [:], unused: [String: Int] = [:], preVariants: [String: Int] = [:]
        var requests = 0, feedback = 0
        var unusable: [UnusableFeedback] = []
        var first: Int64? = nil, last: Int64? = nil
        for piece in pieces {
            let map = reorder(piece)
            for (i, j) in map.enumerated() {
                guard let j else { continue }
                variants[i].users += piece.variants[j].users
                variants[i].requests += piece.variants[j].requests
                for k in metrics.indices {
                    let source = piece.metrics[k]
                    metrics[k].perVariant[i] += source.perVariant[j]
                    metrics[k].unitMoments[i] += source.unitMoments[j]
                    if let c = source.covariates?[j] { metrics[k].covariates![i] += c }
                    if let c = source.usersWithCovariate?[j] { metrics[k].usersWithCovariate![i] += c }
                    if levelCounts[k] != nil, let ordinal = source.ordinal {
                        for (l, level) in ordinal.levels.enumerated() {
                            levelCounts[k]![level, default: Array(repeating: 0, count: names.count)][i] += ordinal.counts[j][l]
                        }
                    }
                    guard owner[k] == k else { continue }
                    if let sketch = source.sketches?[j] { metrics[k].sketches![i].merge(sketch) }
                    if let sketch = source.clusteredSketches?[j] { metrics[k].clusteredSketches![i].merge(sketch) }
                }
            }
            for k in metrics.indices where piece.metrics[k].ordinal == nil { levelCounts[k] = nil }
            let q = piece.dataQuality
            quality.usersInSeveralVariants += q.usersInSeveralVariants
            quality.feedbackWithMissingTarget += q.feedbackWithMissingTarget
            quality.duplicateRequestIDs += q.duplicateRequestIDs
            quality.conversationsOfSeveralUsers += q.conversationsOfSeveralUsers
            quality.qaRequestsExcluded += q.qaRequestsExcluded
            quality.eventsAfterCut += q.eventsAfterCut
            quality.qaFeedbackExcluded += q.qaFeedbackExcluded
            quality.preExperimentRequests += q.preExperimentRequests
            quality.preExperimentFeedback += q.preExperimentFeedback
            for o in q.preExperimentVariants { preVariants[o.name, default: 0] += o.count }
            covariateUsersSeen += piece.covariateFileUsersSeen
            for o in q.otherExperiments { others[o.name, default: 0] += o.count }
            for o in q.unusedFeedbackNames { unused[o.name, default: 0] += o.count }
            unusable += q.unusableFeedback
            quality.implausibleRequestValues += q.implausibleRequestValues
            requests += piece.requestEvents
            feedback += piece.feedbackEvents
            if let a = piece.firstTimestamp { first = min(first ?? a, a) }
            if let b = piece.lastTimestamp { last = max(last ?? b, b) }
        }
        for k in metrics.indices where owner[k] == k && metrics[k].sketches != nil && computeQuantiles {
            for i in names.indices { metrics[k].sketches![i].prepare() }
        }
        for k in metrics.indices where owner[k] != k {
            metrics[k].sketches = metrics[owner[k]].sketches
            metrics[k].clusteredSketches = metrics[owner[k]].clusteredSketches
        }
        for k in metrics.indices where computeQuantiles {
            let q = metrics[k].metric.quantile ?? 0.5
            if let sketches = metrics[k].sketches {
                metrics[k].quantiles = sketches.map { $0.quantile(q) }
                metrics[k].quantileCounts = sketches.map(\.count)
            }
            if let clustered = metrics[k].clusteredSketches {
                metrics[k].quantileEstimates = names.indices.map { clustered[$0].estimate(level: q, users: variants[$0].users) }
            }
        }
        quality.preExperimentVariants = preVariants.map { NamedCount(name: $0.key, count: $0.value) }.sorted { $0.name < $1.name }
        quality.otherExperiments = others.map { NamedCount(name: $0.key, count: $0.value) }.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
        quality.unusableFeedback = UnusableFeedback.combine(unusable)
        quality.unusedFeedbackNames = unused.map { NamedCount(name: $0.key, count: $0.value) }.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
        var overLevelLimit = Set(pieces.flatMap(\.dataQuality.ordinalMetricsOverLevelLimit))
        for k in metrics.indices {
            guard let counts = levelCounts[k] else { continue }
            if counts.count > EventAggregator.ordinalLevelLimit {
                overLevelLimit.insert(metrics[k].metric.name)
                continue
            }
            let levels = counts.keys.sorted()
            metrics[k].ordinal = OrdinalCounts(levels: levels, counts: names.indices.map { i in levels.map { counts[$0]![i] } })
        }
        quality.ordinalMetricsOverLevelLimit = metrics.map(\.metric.name).filter { overLevelLimit.contains($0) }
        merged.covariateFileUsersSeen = covariateUsersSeen
        quality.covariateUsersNotInExperiment = merged.covariateFileUsers - covariateUsersSeen
        merged.variants = variants
        merged.metrics = metrics
        merged.dataQuality = quality
        merged.requestEvents = requests
        merged.feedbackEvents = feedback
        merged.firstTimestamp = first
        merged.lastTimestamp = last
        merged.newUsersByHour = HourCount.merge(pieces.map(\.newUsersByHour))
        return merged
    }
}
