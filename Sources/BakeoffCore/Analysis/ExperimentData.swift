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
}

/// What looked wrong in the data, for the report's data-quality section.
public struct DataQuality: Sendable, Equatable {
    public var usersInSeveralVariants: Int
    public var feedbackWithMissingTarget: Int
    public var duplicateRequestIDs: Int
    /// Conversation ids that requests of more than one user carry (ids must be unique across users).
    public var conversationsOfSeveralUsers: Int = 0
    public var otherExperiments: [NamedCount]
    public var unusedFeedbackNames: [NamedCount]
    public var linesSkipped: Int = 0
    public var skippedExamples: [String] = []
    public var blankLines: Int = 0
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
    /// Bytes the aggregation held at the end (an estimate).
    public var memoryBytes: Int

    /// Days between the first and last request (at least a fraction of a day when there is data).
    public var observedDays: Double? {
        guard let a = firstTimestamp, let b = lastTimestamp else { return nil }
        return max(Double(b - a) / 86_400_000_000, 1.0 / 24)
    }
}
