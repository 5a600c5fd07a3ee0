import BakeoffCore

/// A request event whose content was logged (`log_content`): who sent it, which arm served it, and what was sent.
public struct LoggedRequest: Sendable, Equatable {
    /// The store's row, to read the request again with `LoggedRequests.request(row:)`.
    public var row: Int64
    public var requestID: String
    public var userID: String
    public var conversationID: String
    public var variant: String
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var timestamp: Int64
    public var status: String
    public var qa: Bool
    /// The client's `messages` array as compact JSON text (chat requests logged since events carry it).
    public var messagesJSON: String?
    /// The prompt text (completions; for chat, the messages' text flattened, without roles).
    public var prompt: String?
    /// The live answer's text, as the variant gave it.
    public var response: String?

    public init(row: Int64, requestID: String, userID: String, conversationID: String = "", variant: String, timestamp: Int64,
                status: String = "ok", qa: Bool = false, messagesJSON: String? = nil, prompt: String? = nil, response: String? = nil) {
        self.row = row
        self.requestID = requestID
        self.userID = userID
        self.conversationID = conversationID.isEmpty ? requestID : conversationID
        self.variant = variant
        self.timestamp = timestamp
        self.status = status
        self.qa = qa
        self.messagesJSON = messagesJSON
        self.prompt = prompt
        self.response = response
    }
}

/// What `LoggedRequests.forEach` read: the experiment's request events and why some were not handed over.
public struct LoggedRequestCounts: Sendable, Equatable {
    /// Request events of the experiment (QA and failed ones included).
    public var requests = 0
    /// QA requests (forced into a variant by an admin) left out.
    public var qaSkipped = 0
    /// Failed requests (status other than `ok`) left out.
    public var failedSkipped = 0
    /// Requests that passed the filters but have no logged content (no `messages`, empty or no `prompt`).
    public var withoutContent = 0
    /// Requests handed to the caller.
    public var withContent = 0
    /// Of those, requests with `messages` (the rest have only the prompt text).
    public var withMessages = 0

    public init() {}
}

/// Reads an experiment's request events that have logged content, through one read-only connection in one read
/// transaction: `forEach` and `request(row:)` see the same events, whatever a gateway commits or retention
/// deletes meanwhile (WAL; PostgreSQL's repeatable read). Not `Sendable`: use it on one thread.
///
/// `forEach` streams rows (from SQLite one at a time, from PostgreSQL through a cursor), so memory does not grow
/// with the store; the transaction is held until the reader is released, which keeps an SQLite gateway's WAL from
/// being checkpointed past it meanwhile.
public final class LoggedRequests {
    public let path: String
    public let experiment: String
    private enum Source {
        case sqlite(EventRowReader, byRow: Statement)
        case postgres(PostgresConnection)
    }
    private let source: Source
    private var parser = EventParser()

    private static let columns = "id, ts, variant, user_id, conversation_id, request_id, status, qa, line"

    /// `path`: an SQLite file or a `postgresql://` URL.
    public init(path: String, experiment: String) throws(StoreError) {
        self.path = path
        self.experiment = experiment
        if PostgresLocation.isURL(path) {
            let db = try PostgresStoreReading.open(path)
            try db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            source = .postgres(db)
            return
        }
        let events = try EventRowReader(Connection(path: path, readOnly: true))
        try events.connection.execute("BEGIN")
        source = .sqlite(events, byRow: try events.select(["id = ?1", "experiment = ?2", events.layout.isRequest]))
    }

    /// Calls `body` with each request event of the experiment that has logged content (`messages`, or a non-empty
    /// `prompt`), in the order they were committed. QA requests and failed ones (status other than `ok`) are left
    /// out unless `includeQA` / `includeFailed`. Returns the counts of what was read and left out.
    @discardableResult
    public func forEach(includeQA: Bool = false, includeFailed: Bool = false,
                        _ body: (LoggedRequest) throws -> Void) throws -> LoggedRequestCounts {
        var counts = LoggedRequestCounts()
        func found(_ request: LoggedRequest?) throws {
            guard let request else {
                counts.withoutContent += 1
                return
            }
            counts.withContent += 1
            if request.messagesJSON != nil { counts.withMessages += 1 }
            try body(request)
        }
        func take(_ row: some StoreRow) throws {
            counts.requests += 1
            if !includeQA && row.int(7) != 0 {
                counts.qaSkipped += 1
                return
            }
            if !includeFailed && !Self.isOK(row.bytes(6)) {
                counts.failedSkipped += 1
                return
            }
            try found(try read(row))
        }
        switch source {
        case .sqlite(let events, _):
            let s = try events.select(["experiment = ?1", events.layout.isRequest])
            guard try events.bindString(s, 1, experiment) else { break }
            while try s.step() {
                counts.requests += 1
                if !includeQA && events.isQA(s) {
                    counts.qaSkipped += 1
                    continue
                }
                if try !includeFailed && events.text(s, EventRowReader.Column.status) != "ok" {
                    counts.failedSkipped += 1
                    continue
                }
                try found(try read(events, s))
            }
        case .postgres(let db):
            try db.forEachRowInTransaction("SELECT \(Self.columns) FROM events WHERE experiment = $1 AND kind = 'request' ORDER BY id",
                                           [experiment]) { try take($0) }
        }
        return counts
    }

    /// The request event in `row`, when it is one of the experiment's and has logged content.
    public func request(row: Int64) throws(StoreError) -> LoggedRequest? {
        switch source {
        case .sqlite(let events, let byRow):
            byRow.reset()
            byRow.bind(1, row)
            guard try events.bindString(byRow, 2, experiment), try byRow.step() else { return nil }
            do {
                return try read(events, byRow)
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError(.other, path: path, "\(path): \(error)")
            }
        case .postgres(let db):
            var found: LoggedRequest?
            do {
                try db.withRows("SELECT \(Self.columns) FROM events WHERE id = $1 AND experiment = $2 AND kind = 'request'",
                                [String(row), experiment]) { found = try read($0) }
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError(.other, path: path, "\(path): \(error)")
            }
            return found
        }
    }

    private static func isOK(_ status: UnsafeRawBufferPointer) -> Bool {
        status.count == 2 && status[0] == 0x6F && status[1] == 0x6B
    }

    /// The row at `s` (selected with `columns`), or nil when its line has no content.
    private func read(_ s: some StoreRow) throws(StoreError) -> LoggedRequest? {
        let row = s.int(0)
        guard let content = try content(row: row, line: s.bytes(8)) else { return nil }
        return LoggedRequest(row: row, requestID: s.string(5), userID: s.string(3), conversationID: s.string(4), variant: s.string(2),
                             timestamp: s.int(1), status: s.string(6), qa: s.int(7) != 0, messagesJSON: content.messages,
                             prompt: content.prompt, response: content.response)
    }

    /// An SQLite store's row at `s` (selected by `events`), or nil when its line has no content.
    private func read(_ events: EventRowReader, _ s: Statement) throws -> LoggedRequest? {
        let row = s.int(EventRowReader.Column.id)
        guard let content = try events.withLine(s, { try self.content(row: row, line: $0) }) else { return nil }
        return LoggedRequest(row: row, requestID: events.requestID(s), userID: try events.userID(s), conversationID: events.conversationID(s),
                             variant: try events.text(s, EventRowReader.Column.variant), timestamp: s.int(EventRowReader.Column.ts),
                             status: try events.text(s, EventRowReader.Column.status), qa: events.isQA(s),
                             messagesJSON: content.messages, prompt: content.prompt, response: content.response)
    }

    /// The logged content of a request's line, nil when it has none.
    private func content(row: Int64, line: UnsafeRawBufferPointer) throws(StoreError) -> (messages: String?, prompt: String?, response: String?)? {
        let view: EventView
        do throws(EventParseError) { view = try parser.parse(line) } catch {
            throw StoreError(.other, path: path, "\(path): the event in row \(row) cannot be read: column \(error.column): \(error.message)")
        }
        guard view.messages.count > 0 || view.prompt.count > 0 else { return nil }
        func text(_ b: UnsafeRawBufferPointer) -> String? { b.count > 0 ? String(decoding: b, as: UTF8.self) : nil }
        return (text(view.messages), text(view.prompt), text(view.response))
    }
}

/// A row of a query's result, read in place: SQLite's statement on its row, or a PostgreSQL result's row.
protocol StoreRow {
    func int(_ column: Int) -> Int64
    func bytes(_ column: Int) -> UnsafeRawBufferPointer
    func string(_ column: Int) -> String
}

extension PostgresRow: StoreRow {}

