import BakeoffTracking
import Testing

@Suite("Log batches within MLflow's limits")
struct LogBatchTests {
    typealias Entry = TrackingRecord.Entry

    @Test func everyEntryGoesOutOnceAndNoBatchPassesALimit() {
        let metrics = (0..<2500).map { Entry("m\($0)", Double($0)) }
        let params = (0..<250).map { Entry("p\($0)", "v") }
        let tags = (0..<150).map { Entry("t\($0)", "v") }
        let batches = LogBatch.chunk(metrics: metrics, params: params, tags: tags)
        for b in batches {
            #expect(b.metrics.count <= MLflowLimits.metricsPerBatch)
            #expect(b.params.count <= MLflowLimits.paramsPerBatch)
            #expect(b.tags.count <= MLflowLimits.tagsPerBatch)
            #expect(b.metrics.count + b.params.count + b.tags.count <= MLflowLimits.entitiesPerBatch)
        }
        #expect(batches.flatMap(\.metrics).map(\.key).sorted() == metrics.map(\.key).sorted())
        #expect(batches.flatMap(\.params).map(\.key).sorted() == params.map(\.key).sorted())
        #expect(batches.flatMap(\.tags).map(\.key).sorted() == tags.map(\.key).sorted())
        // 2,900 entries need 3 calls of 1,000; 250 params need 3 of 100: the tags and metrics fill those three.
        #expect(batches.count == 3)
    }

    @Test func longValuesSplitBatchesByTheirSize() {
        // 100 params of 6000 characters and 100 tags of 8000 are 1.4 MB: more than one request may carry.
        let params = (0..<100).map { Entry("p\($0)", String(repeating: "x", count: MLflowLimits.paramValueLength)) }
        let tags = (0..<100).map { Entry("t\($0)", String(repeating: "y", count: MLflowLimits.tagValueLength)) }
        let batches = LogBatch.chunk(metrics: [], params: params, tags: tags)
        #expect(batches.count == 2)
        for b in batches {
            let size = b.params.reduce(0) { $0 + $1.value.utf8.count } + b.tags.reduce(0) { $0 + $1.value.utf8.count }
            #expect(size < MLflowLimits.batchCharacters)
        }
        #expect(batches.flatMap(\.params).count == 100 && batches.flatMap(\.tags).count == 100)
    }

    @Test func nothingToSendIsNoBatch() {
        #expect(LogBatch.chunk(metrics: [], params: [], tags: []).isEmpty)
    }
}
