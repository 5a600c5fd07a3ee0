import BakeoffCore
import BakeoffStatistics

/// Builders for hand-made events.
public enum Make {
    public static let day: Int64 = 86_400_000_000
    public static let t0: Int64 = 1_793_491_200_000_000  // 2026-11-01T00:00:00Z

    public static func request(_ user: String, _ variant: String, _ id: String, conversation: String = "", at t: Int64,
                        latency: Double = 100, status: String = "ok", output: Int? = 10, experiment: String = "e") -> EventRecord {
        var e = EventRecord(kind: .request, timestamp: t, experiment: experiment)
        e.userID = user
        e.variant = variant
        e.requestID = id
        e.conversationID = conversation
        e.latencyMs = latency
        e.status = status
        e.outputTokens = output
        return e
    }

    public static func feedback(_ name: String, _ value: Double, request: String = "", conversation: String = "", at t: Int64,
                         experiment: String = "e") -> EventRecord {
        var e = EventRecord(kind: .feedback, timestamp: t, experiment: experiment)
        e.name = name
        e.value = value
        e.requestID = request
        e.conversationID = conversation
        return e
    }

    public static func aggregate(_ events: [EventRecord], metrics: [Metric] = Metric.builtIn, experiment: String? = nil) throws -> ExperimentData {
        var a = EventAggregator(metrics: metrics, experiment: experiment)
        for e in events { try e.withView { v in try a.add(v) } }
        return a.finish()
    }
}

extension ExperimentData {
    public func metric(_ name: String) -> MetricData { metrics.first { $0.metric.name == name }! }
    public func index(_ variant: String) -> Int { variants.firstIndex { $0.name == variant }! }
    public func moments(_ metric: String, _ variant: String) -> RatioMoments { self.metric(metric).perVariant[index(variant)] }
}
