import BakeoffCore
import BakeoffStore
import BakeoffTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

/// The gateway's event store on PostgreSQL: the same guarantees as on SQLite (nothing waits on the database, a
/// durable append is answered after its commit, plain events are held while the server is away and written when
/// it is back), and what sharing one database among gateways needs (look-ups of another's events, ids committed
/// in order for the incremental readers, whole days dropped by retention, the plans each gateway runs).
@Suite("PostgreSQL event store", .serialized)
final class PostgresEventStoreTests {
    let server: ThrowawayPostgres

    init() throws { server = try ThrowawayPostgres() }
    deinit { server.stop() }

    func open(_ options: StoreOptions = StoreOptions(flushIntervalMs: 10)) throws -> EventStore {
        try EventStore(postgres: PostgresLocation(url: server.url), options: options)
    }

    func scalar(_ sql: String) throws -> Int64 {
        try PostgresConnection(PostgresLocation(url: server.url)).query(sql).int(0, 0) ?? -1
    }

    func feedback(_ n: Int, on request: EventRecord, name: String = "thumbs") -> EventRecord {
        var e = EventRecord(kind: .feedback, timestamp: request.timestamp + 1_000_000, experiment: request.experiment)
        e.variant = request.variant
        e.userID = request.userID
        e.conversationID = request.conversationID
        e.requestID = request.requestID
        e.name = name
        e.value = Double(n % 2)
        return e
    }

    @Test func eventsWrittenByOneGatewayAreFoundByAnother() throws {
        let a = try open(), b = try open()
        #expect(a.isShared && b.isShared)
        let requests = (0..<500).map { request($0, conversation: "c\($0 % 50)", variant: $0 % 2 == 0 ? "control" : "treatment") }
        for e in requests { #expect(a.append(e)) }
        a.flush()
        #expect(a.eventsWritten == 500)
        #expect(b.request(id: "r123") == RequestInfo(experiment: "e", variant: "treatment", userID: "u\(123 % 97)", conversationID: "c23", requestID: "r123"))
        #expect(b.latestRequest(conversation: "c7")?.requestID == "r457")
        #expect(b.request(id: "r-none") == nil)

        // Feedback through b for a's request, acknowledged after its commit, counted from either.
        let done = Completions()
        let finished = DispatchSemaphore(value: 0)
        b.appendDurably(feedback(1, on: requests[123])) { error in
            done.record(error)
            finished.signal()
        }
        finished.wait()
        #expect(done.state.withLock { $0.ok } == 1)
        #expect(a.feedbackCount(requestID: "r123", name: "thumbs") == 1)
        #expect(a.feedbackCount(requestID: "r123", name: "") == 1)
        #expect(a.feedbackCount(requestID: "r123", name: "csat") == 0)

        // The lines read back are the lines written, in the order written.
        var lines: [String] = []
        let last = try StoreReader.forEachEvent(path: server.url, experiment: "e") { _, _, line in
            lines.append(String(decoding: line, as: UTF8.self))
        }
        #expect(lines.count == 501)
        #expect(Array(lines.prefix(500)) == requests.map { $0.jsonLine() })
        #expect(try StoreReader.forEachEvent(path: server.url, experiment: "e", after: last) { _, _, _ in } == last)
        a.close()
        b.close()
    }

    @Test func aServerThatGoesAwayHoldsPlainEventsRefusesFeedbackAndIsWrittenToAgainWhenBack() throws {
        let reports = Mutex<[String]>([])
        var options = StoreOptions(flushIntervalMs: 10)
        options.report = { line in reports.withLock { $0.append(line) } }
        let store = try open(options)
        for n in 0..<100 { store.append(request(n)) }
        store.flush()
        #expect(store.eventsWritten == 100)

        server.kill()
        for n in 100..<150 { store.append(request(n)) }
        #expect(eventually { if case .failing = store.health { return true } else { return false } })
        let refused = Completions()
        let answered = DispatchSemaphore(value: 0)
        store.appendDurably(feedback(1, on: request(5))) { error in
            refused.record(error)
            answered.signal()
        }
        answered.wait()
        #expect(refused.state.withLock { $0.failed.count } == 1)
        #expect(store.queueDepth == 50)
        // Look-ups answer "not found" at once rather than wait for a server that is away.
        let started = Date()
        #expect(store.request(id: "r5") == nil)
        #expect(Date().timeIntervalSince(started) < 10)

        try server.start()
        #expect(eventually { store.health == .ok && store.eventsWritten == 150 })
        #expect(try scalar("SELECT count(*) FROM events") == 150)
        #expect(try scalar("SELECT count(DISTINCT request_id) FROM events") == 150)
        #expect(eventually { store.request(id: "r149") != nil })
        let said = reports.withLock { $0 }
        #expect(said.contains { $0.contains("the event store cannot write") })
        #expect(said.contains { $0.contains("the event store writes again") })
        store.close()
    }

    @Test func closingWhileTheServerIsAwaySaysWhatItDrops() throws {
        let reports = Mutex<[String]>([])
        var options = StoreOptions(flushIntervalMs: 10)
        options.report = { line in reports.withLock { $0.append(line) } }
        let store = try open(options)
        server.kill()
        for n in 0..<20 { store.append(request(n)) }
        #expect(eventually { if case .failing = store.health { return true } else { return false } })
        store.close()
        #expect(store.eventsDropped == 20)
        #expect(reports.withLock { $0 }.contains { $0.contains("closing: 20 events that could not be written are dropped") })
    }

    /// A server that stops answering without closing its connections (hung, or cut off by a network that drops
    /// packets): the writer's statements and the look-ups give up after their time limits, the store says it is
    /// failing, and when the server answers again everything held is written, once.
    @Test func aServerThatStopsAnsweringMakesTheStoreFailInsteadOfHangingIt() throws {
        var options = StoreOptions(flushIntervalMs: 10)
        options.answerTimeoutSeconds = 1
        let store = try open(options)
        for n in 0..<10 { store.append(request(n)) }
        store.flush()
        #expect(store.request(id: "r3") != nil)

        server.pause()
        for n in 10..<30 { store.append(request(n)) }
        #expect(eventually(20) { if case .failing = store.health { return true } else { return false } })
        let started = Date()
        #expect(store.request(id: "r3") == nil)  // no answer in time: not found, at once or after the limit
        #expect(store.feedbackCount(requestID: "r3", name: "") == 0)
        #expect(Date().timeIntervalSince(started) < 8)
        let refused = Completions()
        let answered = DispatchSemaphore(value: 0)
        store.appendDurably(feedback(1, on: request(3))) { error in
            refused.record(error)
            answered.signal()
        }
        #expect(answered.wait(timeout: .now() + 10) == .success)
        #expect(refused.state.withLock { $0.failed.count } == 1)

        server.resume()
        #expect(eventually(30) { store.health == .ok && store.eventsWritten == 30 })
        #expect(try scalar("SELECT count(*) FROM events") == 30)
        #expect(try scalar("SELECT count(DISTINCT request_id) FROM events") == 30)
        #expect(eventually { store.request(id: "r29") != nil })
        store.close()
    }

    @Test func aStatementWithoutAnAnswerInTimeFailsAndBreaksTheConnection() throws {
        let db = try PostgresConnection(PostgresLocation(url: server.url), answerTimeout: 0.5)
        #expect(try db.query("SELECT 1").int(0, 0) == 1)
        server.pause()
        defer { server.resume() }
        let started = Date()
        #expect {
            try db.query("SELECT 2")
        } throws: { error in
            (error as? StoreError)?.message.contains("no answer from the server within 0.5 s") == true
        }
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(db.isBroken)
        server.resume()
        let again = try PostgresConnection(PostgresLocation(url: server.url), answerTimeout: 0.5)
        #expect(try again.query("SELECT 3").int(0, 0) == 3)
        // A non-blocking connection (the time limit) copies as a blocking one does.
        try again.execute("CREATE TEMP TABLE copied (n int, s text)")
        let rows: [[String?]] = (0..<20_000).map { [String($0), $0 % 7 == 0 ? nil : "row\t\($0)\n\\"] }
        #expect(try again.copy(into: "copied", columns: ["n", "s"], rows: rows) == 20_000)
        #expect(try again.query("SELECT count(*), count(s), sum(n) FROM copied").rows[0] == ["20000", "17142", "199990000"])
        #expect(try again.query("SELECT s FROM copied WHERE n = 1").rows[0][0] == "row\t1\n\\")
    }

    /// Two gateways writing at once while a reader takes up where it left off, as the dashboard does: every event
    /// is read once. Without the write lock a reader past id N could miss a smaller id committed later.
    @Test func aReaderTakingUpWhereItLeftOffSeesEveryEventOfTwoGatewaysWritingAtOnce() throws {
        let a = try open(StoreOptions(flushIntervalMs: 1)), b = try open(StoreOptions(flushIntervalMs: 1))
        let perGateway = 20_000
        let writing = Atomic<Int>(2)
        let url = server.url
        let seen = Mutex<(ids: Set<Int64>, duplicates: Int, reads: Int)>(([], 0, 0))
        let reader = Thread {
            var after: Int64 = 0
            while true {
                let last = writing.load(ordering: .acquiring) == 0
                after = (try? StoreReader.forEachEvent(path: url, experiment: "e", after: after) { id, _, _ in
                    seen.withLock { if !$0.ids.insert(id).inserted { $0.duplicates += 1 } }
                }) ?? after
                seen.withLock { $0.reads += 1 }
                if last { break }
            }
            writing.store(-1, ordering: .releasing)
        }
        reader.start()
        DispatchQueue.concurrentPerform(iterations: 2) { g in
            let store = g == 0 ? a : b
            for n in 0..<perGateway {
                while !store.append(request(g * perGateway + n)) { usleep(100) }
                if n % 500 == 0 { usleep(1000) }
            }
            store.flush()
            writing.subtract(1, ordering: .releasing)
        }
        #expect(eventually(60) { writing.load(ordering: .acquiring) == -1 })
        let result = seen.withLock { $0 }
        #expect(result.reads > 3)
        #expect(result.duplicates == 0)
        #expect(result.ids.count == 2 * perGateway)
        a.close()
        b.close()
    }

    @Test func retentionDropsWholeDaysAndCountsTheirEvents() throws {
        let day: Int64 = 86_400_000_000
        let now = nowMicros()
        let today = now - now % day
        var options = StoreOptions(flushIntervalMs: 10, retentionDays: 2)
        options.retentionIntervalSeconds = 0.05
        // Written first with no retention, so that the old days are there before the store starts dropping.
        let writer = try open()
        for n in 0..<30 {
            var e = request(n)
            e.timestamp = today - Int64(5 - n / 10) * day + Int64(n) * 1_000_000  // 10 each, 5, 4 and 3 days ago
            writer.append(e)
        }
        for n in 30..<40 {
            var e = request(n)
            e.timestamp = nowMicros() - Int64(n)
            writer.append(e)
        }
        writer.flush()
        writer.close()
        #expect(try scalar("SELECT count(*) FROM events") == 40)
        let partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        let before = try scalar(partitions)
        let names = try PostgresConnection(PostgresLocation(url: server.url)).query("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass").rows.map { $0[0] ?? "" }

        let store = try open(options)
        #expect(eventually { store.eventsDeleted == 30 })
        // 3 days ago ended more than two days ago: gone too; today stays whole.
        #expect(try scalar("SELECT count(*) FROM events") == 10)
        #expect(try scalar("SELECT min(ts) FROM events") >= today - day)
        let after = try scalar(partitions)
        #expect(after == before - 3, "partitions before \(before) \(names), after \(after)")
        store.close()
    }

    @Test func gatewaysSeeAnotherRunningADifferentPlanAndSeeItGoWhenItStops() throws {
        final class Said: Sendable {
            let lists = Mutex<[[ReplicaPlans.OtherPlan]]>([])
            var last: [ReplicaPlans.OtherPlan]? { lists.withLock { $0.last } }
        }
        func replica(_ name: String, _ plan: String, _ said: Said) -> ReplicaPlans {
            ReplicaPlans(gateway: name, plans: ["support": plan, "same": "x"], heartbeatSeconds: 0.1) { others in
                said.lists.withLock { $0.append(others) }
            }
        }
        let saidA = Said(), saidB = Said(), saidC = Said()
        var options = StoreOptions(flushIntervalMs: 10)
        let planA = replica("a", "split 50/50", saidA)
        options.replica = planA
        let a = try open(options)
        options.replica = replica("c", "split 50/50", saidC)
        let c = try open(options)
        let planB = replica("b", "split 80/20", saidB)
        options.replica = planB
        let b = try open(options)

        let expectedA = [ReplicaPlans.OtherPlan(experiment: "support", gateway: "b", plan: "split 80/20")]
        #expect(eventually { planA.differing == expectedA })
        #expect(planB.differing == [ReplicaPlans.OtherPlan(experiment: "support", gateway: "a", plan: "split 50/50"),
                                    ReplicaPlans.OtherPlan(experiment: "support", gateway: "c", plan: "split 50/50")])
        #expect(saidA.last == expectedA)
        #expect(eventually { saidC.last == [ReplicaPlans.OtherPlan(experiment: "support", gateway: "b", plan: "split 80/20")] })

        b.close()
        #expect(eventually { planA.differing.isEmpty })
        #expect(saidA.last == [])
        #expect(try scalar("SELECT count(*) FROM replicas WHERE gateway = 'b'") == 0)
        #expect(try scalar("SELECT count(*) FROM replicas") == 4)
        a.close()
        c.close()
    }

    @Test func gatewaysStartingAtOnceRecordTheirPlanOnce() throws {
        _ = try open()  // the schema
        let url = server.url
        let failures = Mutex<[String]>([])
        let added = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { n in
            do {
                if try PlanLog.record(path: url, experiment: "support", plan: "plan 1", timestamp: nowMicros() + Int64(n)) {
                    added.add(1, ordering: .relaxed)
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(added.load(ordering: .relaxed) == 1)
        #expect(try PlanLog.record(path: url, experiment: "support", plan: "plan 2", timestamp: nowMicros() + 100))
        #expect(try !PlanLog.record(path: url, experiment: "support", plan: "plan 2", timestamp: nowMicros() + 200))
        #expect(try PlanLog.history(path: url, experiment: "support").map(\.plan) == ["plan 1", "plan 2"])
    }
}
