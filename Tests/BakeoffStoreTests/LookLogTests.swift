import BakeoffStore
import Foundation
import Testing

/// The looks the store keeps for group-sequential tests.
@Suite("Recorded looks")
struct LookLogTests {
    @Test("looks are kept per experiment in time order; a store from before the looks table has none")
    func recordsAndReads() throws {
        let path = try temporaryStorePath()
        try EventStore(path: path).close()
        try LookLog.record(path: path, experiment: "e", timestamp: 300, source: "report")
        try LookLog.record(path: path, experiment: "e", timestamp: 100, source: "dashboard")
        try LookLog.record(path: path, experiment: "other", timestamp: 200, source: "dashboard")
        #expect(try LookLog.times(path: path, experiment: "e") == [100, 300])
        #expect(try LookLog.times(path: path, experiment: "other") == [200])
        #expect(try LookLog.times(path: path, experiment: "none") == [])
        // An older store (version 3, no looks table): a reader gets no looks, the next writer adds the table.
        let old = try temporaryStorePath()
        try sqliteShell(old, MigrationTestsSupport.version3)
        #expect(try LookLog.times(path: old, experiment: "e") == [])
        try EventStore(path: old).close()
        try LookLog.record(path: old, experiment: "e", timestamp: 5, source: "report")
        #expect(try LookLog.times(path: old, experiment: "e") == [5])
    }
}

/// A store at version 3 (events, feedback names, plans), as a gateway before recorded looks left it.
enum MigrationTestsSupport {
    static let version3 = """
        CREATE TABLE events (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, experiment TEXT NOT NULL, kind TEXT NOT NULL,
            variant TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, request_id TEXT NOT NULL,
            status TEXT NOT NULL, qa INTEGER NOT NULL, line TEXT NOT NULL, name TEXT NOT NULL DEFAULT '');
        CREATE INDEX events_experiment ON events(experiment, id);
        CREATE INDEX events_request ON events(request_id);
        CREATE INDEX events_conversation ON events(conversation_id);
        CREATE INDEX events_feedback_request ON events(request_id, name) WHERE kind = 'feedback';
        CREATE INDEX events_feedback_conversation ON events(conversation_id, name) WHERE kind = 'feedback' AND request_id = '';
        CREATE TABLE plans (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, experiment TEXT NOT NULL, plan TEXT NOT NULL);
        PRAGMA user_version = 3;
        """
}
