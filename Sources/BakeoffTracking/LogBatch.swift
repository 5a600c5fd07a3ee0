import BakeoffCore

/// What one `runs/log-batch` call sends.
public struct LogBatch: Sendable, Equatable {
    public var metrics: [TrackingRecord.Entry<Double>] = []
    public var params: [TrackingRecord.Entry<String>] = []
    public var tags: [TrackingRecord.Entry<String>] = []

    public init() {}

    var count: Int { metrics.count + params.count + tags.count }

    /// Everything in as few batches as MLflow's limits allow (`MLflowLimits`): at most 1000 metrics, 100 params,
    /// 100 tags and 1000 entries per call, and well under the server's request size. Each entry goes into the
    /// first batch with room for it.
    public static func chunk(metrics: [TrackingRecord.Entry<Double>], params: [TrackingRecord.Entry<String>],
                             tags: [TrackingRecord.Entry<String>]) -> [LogBatch] {
        var batches: [LogBatch] = []
        var sizes: [Int] = []
        func place(_ size: Int, kindLimit: Int, kindCount: (LogBatch) -> Int, add: (inout LogBatch) -> Void) {
            let i = batches.indices.first {
                batches[$0].count < MLflowLimits.entitiesPerBatch && kindCount(batches[$0]) < kindLimit
                    && sizes[$0] + size <= MLflowLimits.batchCharacters
            } ?? {
                batches.append(LogBatch())
                sizes.append(0)
                return batches.count - 1
            }()
            add(&batches[i])
            sizes[i] += size
        }
        for p in params {
            place(p.key.utf8.count + p.value.utf8.count + 40, kindLimit: MLflowLimits.paramsPerBatch, kindCount: { $0.params.count }) { $0.params.append(p) }
        }
        for t in tags {
            place(t.key.utf8.count + t.value.utf8.count + 40, kindLimit: MLflowLimits.tagsPerBatch, kindCount: { $0.tags.count }) { $0.tags.append(t) }
        }
        for m in metrics {
            place(m.key.utf8.count + 90, kindLimit: MLflowLimits.metricsPerBatch, kindCount: { $0.metrics.count }) { $0.metrics.append(m) }
        }
        return batches
    }

    /// The call's JSON body; every metric at `timestampMs`, step 0.
    func json(runID: String, timestampMs: Int64) -> [UInt8] {
        var w = JSONWriter(pretty: false)
        w.object { w in
            w.value("run_id", runID)
            w.array("metrics") { w in
                for m in metrics {
                    w.object { w in
                        w.value("key", m.key); w.value("value", m.value); w.value("timestamp", Int(timestampMs)); w.value("step", 0)
                    }
                }
            }
            w.array("params") { w in for p in params { w.object { w in w.value("key", p.key); w.value("value", p.value) } } }
            w.array("tags") { w in for t in tags { w.object { w in w.value("key", t.key); w.value("value", t.value) } } }
        }
        return w.bytes
    }
}
