import BakeoffCore
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Testing

/// Where a test's store is: an SQLite file, or a PostgreSQL server of the test's own.
enum StoreKind: String, CaseIterable, Sendable {
    case sqlite, postgres

    /// A new empty store's path (a file, or a URL) and what keeps it alive.
    func make() throws -> (path: String, open: (StoreOptions) throws -> EventStore, server: ThrowawayPostgres?) {
        switch self {
        case .sqlite:
            let path = try temporaryStorePath()
            return (path, { try EventStore(path: path, options: $0) }, nil)
        case .postgres:
            let server = try ThrowawayPostgres()
            let url = server.url
            return (url, { try EventStore(postgres: PostgresLocation(url: url), options: $0) }, server)
        }
    }
}

@Suite("Logged requests: an experiment's request events with content, streamed from the store", .serialized)
struct LoggedRequestsTests {
    static func withContent(_ n: Int, experiment: String = "e", user: String, variant: String = "control", messages: String? = nil,
                            prompt: String? = nil, status: String = "ok", qa: Bool = false) -> EventRecord {
        var e = request(n, experiment: experiment, user: user, variant: variant)
        e.messages = messages
        e.prompt = prompt
        e.response = prompt.map { "answer to " + $0 }
        e.status = status
        e.qa = qa
        return e
    }

    @Test(arguments: StoreKind.allCases)
    func listsRequestsWithContentAndLeavesOutQAAndFailedOnes(_ kind: StoreKind) throws {
        let (path, open, server) = try kind.make()
        defer { server?.stop() }
        let store = try open(StoreOptions(flushIntervalMs: 5))
        let chat = #"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#
        var feedback = EventRecord(kind: .feedback, timestamp: 1_793_491_200_000_000, experiment: "e")
        feedback.requestID = "r1"
        feedback.name = "thumbs_up"
        feedback.value = 1
        let events = [
            Self.withContent(1, user: "alice", messages: chat, prompt: "Be brief.\nHi"),
            Self.withContent(2, user: "bob", variant: "treatment", prompt: "Once upon"),
            request(3, user: "carol"),                                               // no content
            Self.withContent(4, user: "dave", prompt: "x", status: "upstream_error"),  // failed
            Self.withContent(5, user: "admin", messages: chat, qa: true),             // QA
            Self.withContent(6, experiment: "f", user: "erin", prompt: "other experiment"),
            Self.withContent(7, user: "alice", prompt: ""),                          // an empty prompt is no content
            feedback,
        ]
        for e in events { #expect(store.append(e)) }
        store.flush()
        store.close()

        let reader = try LoggedRequests(path: path, experiment: "e")
        var seen: [LoggedRequest] = []
        let counts = try reader.forEach { seen.append($0) }
        #expect(seen.map(\.requestID) == ["r1", "r2"])
        let first = try #require(seen.first)
        #expect(first.userID == "alice" && first.variant == "control" && first.timestamp == events[0].timestamp && first.status == "ok" && !first.qa)
        #expect(first.messagesJSON == chat && first.prompt == "Be brief.\nHi" && first.response == "answer to Be brief.\nHi")
        #expect(first.conversationID == "r1")
        #expect(seen[1].messagesJSON == nil && seen[1].prompt == "Once upon" && seen[1].variant == "treatment")
        var expected = LoggedRequestCounts()
        expected.requests = 6
        expected.qaSkipped = 1
        expected.failedSkipped = 1
        expected.withoutContent = 2
        expected.withContent = 2
        expected.withMessages = 1
        #expect(counts == expected)

        var all: [String] = []
        let everything = try reader.forEach(includeQA: true, includeFailed: true) { all.append($0.requestID) }
        #expect(all == ["r1", "r2", "r4", "r5"])
        #expect(everything.withContent == 4 && everything.withMessages == 2 && everything.qaSkipped == 0 && everything.failedSkipped == 0)

        // Read again by row; rows of other experiments, feedback and requests without content are not.
        #expect(try reader.request(row: first.row) == first)
        #expect(try reader.request(row: 3) == nil)
        #expect(try reader.request(row: 6) == nil)
        #expect(try reader.request(row: 8) == nil)
        #expect(try reader.request(row: 999) == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func theReaderSeesOneSnapshotWhileTheGatewayWrites(_ kind: StoreKind) throws {
        let (path, open, server) = try kind.make()
        defer { server?.stop() }
        let store = try open(StoreOptions(flushIntervalMs: 5))
        defer { store.close() }
        #expect(store.append(Self.withContent(1, user: "alice", prompt: "one")))
        store.flush()
        let reader = try LoggedRequests(path: path, experiment: "e")
        var before = 0
        try reader.forEach { _ in before += 1 }
        #expect(store.append(Self.withContent(2, user: "bob", prompt: "two")))
        store.flush()
        var after = 0
        try reader.forEach { _ in after += 1 }
        #expect(before == 1 && after == 1)
        var fresh = 0
        try LoggedRequests(path: path, experiment: "e").forEach { _ in fresh += 1 }
        #expect(fresh == 2)
    }

    @Test func aMissingStoreIsAnError() {
        #expect(throws: StoreError.self) { try LoggedRequests(path: "/nonexistent/events.db", experiment: "e") }
    }
}
