import BakeoffCore
import BakeoffStore
import Foundation
import Synchronization
import Testing

/// Throughput of the request path (`append` from several threads) and of the writer (group commits), printed;
/// run only with BAKEOFF_STORE_BENCH=1, in a release build:
/// `BAKEOFF_STORE_BENCH=1 swift test -c release --skip-build --disable-xctest --scratch-path .build/test --filter StoreBenchmark`
@Suite("Event store benchmark", .enabled(if: ProcessInfo.processInfo.environment["BAKEOFF_STORE_BENCH"] != nil))
struct StoreBenchmark {
    @Test func appendFromSeveralThreadsThenFlush() throws {
        let threads = 4, perThread = 250_000
        // Prepared before the clock starts: the benchmark measures the store, not the JSON of the events.
        let events = (0..<threads).map { t in (0..<perThread).map { request(t * perThread + $0, user: "t\(t)") } }
        for round in 1...3 {
            let path = try temporaryStorePath()
            let store = try EventStore(path: path, options: StoreOptions(queueCapacity: threads * perThread))
            let slowest = Atomic<UInt64>(0)
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var worst: UInt64 = 0
                for e in events[t] {
                    let before = DispatchTime.now().uptimeNanoseconds
                    _ = store.append(e)
                    worst = max(worst, DispatchTime.now().uptimeNanoseconds - before)
                }
                _ = slowest.max(worst, ordering: .relaxed)
            }
            let appended = DispatchTime.now().uptimeNanoseconds
            store.flush()
            let flushed = DispatchTime.now().uptimeNanoseconds
            let n = threads * perThread
            #expect(store.eventsWritten == n)
            print(String(format: "store bench round %d: %d appends from %d threads in %.3f s (%.0f ns each, slowest %.2f ms); all committed after %.3f s (%.0f events/s, %d commits)",
                         round, n, threads, Double(appended - start) / 1e9, Double(appended - start) / Double(n),
                         Double(slowest.load(ordering: .relaxed)) / 1e6, Double(flushed - start) / 1e9,
                         Double(n) / (Double(flushed - start) / 1e9), store.commits))
            store.close()
            try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
        }
    }
}
