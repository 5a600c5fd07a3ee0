import BakeoffCore
import BakeoffGateway
import BakeoffStore
import Foundation
import Synchronization
import Testing

/// Reads of the live report and dashboard, kept as looks.
@Suite("Looks recorded by the gateway")
struct LookRecorderTests {
    static func store() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("looks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("events.db").path
        try EventStore(path: path).close()
        return path
    }

    @Test("one look per experiment every interval, however often the page refreshes")
    func throttled() throws {
        let path = try Self.store()
        let recorder = LookRecorder(path: path, interval: 600_000_000)
        let minute: Int64 = 60_000_000
        for m in 0..<25 { recorder.record("exp", now: 1_000 * minute + Int64(m) * minute, source: "dashboard") }
        recorder.record("other", now: 1_000 * minute, source: "report")
        #expect(try LookLog.times(path: path, experiment: "exp") == [1_000, 1_010, 1_020].map { $0 * minute })
        #expect(try LookLog.times(path: path, experiment: "other") == [1_000 * minute])
    }

    @Test("a store that cannot take the look says so on standard error, once a minute")
    func failureIsLoud() throws {
        let lines = Mutex<[String]>([])
        let recorder = LookRecorder(path: "/nonexistent-dir/events.db", interval: 1, write: { line in lines.withLock { $0.append(line) } })
        recorder.record("exp", now: 10, source: "report")
        recorder.record("exp", now: 20, source: "report")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        #expect(written.first?.contains("could not record a look at exp") == true, "\(written)")
    }

    @Test("a plan with recorded looks analyses with the store's")
    func recordedPlan() throws {
        let path = try Self.store()
        try LookLog.record(path: path, experiment: "exp", timestamp: 5, source: "report")
        var plan = AnalysisPlan()
        plan.groupSequential.looks = .recorded
        let filled = try StoreAnalysis.withRecordedLooks(plan, path: path, experiment: "exp")
        #expect(filled.groupSequential.looks == .times([5], recorded: true))
        #expect(filled.groupSequential.looks.name == "1 recorded")
        plan.groupSequential.looks = .daily
        #expect(try StoreAnalysis.withRecordedLooks(plan, path: path, experiment: "exp").groupSequential.looks == .daily)
    }
}
