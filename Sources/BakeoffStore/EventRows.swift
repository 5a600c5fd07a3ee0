import BakeoffCore
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The compact layout of an SQLite store's events (schema version 5 on): one narrow row per event in
/// `event_rows`, its strings interned in `strings`, and no JSON line unless the line cannot be rebuilt.
///
/// Why: the line (about 280 bytes) and text columns that repeated it made a request event cost about 514 bytes
/// on disk. Here a request the gateway logged takes about a fifth of that: integers for times and numbers, one
/// small integer per experiment, variant, user, status and feedback name, the gateway's request ids
/// (`req_` + 24 lowercase hex digits) as 12-byte blobs, no conversation id when it is the request id. Every
/// reader still gets the line `EventRecord.jsonLine()` wrote, byte for byte: `EventRowReader` rebuilds it from the
/// columns. A line that the columns cannot give back (an imported one with fields of its own, or formatted
/// otherwise) is kept whole in `line`, which is NULL for everything else.
///
/// The columns of `event_rows`:
/// - `ts`: microseconds since 1970, as the event had them (the line keeps milliseconds).
/// - `flags`: 1 feedback (else a request), 2 QA, 4 `usage_missing`.
/// - `experiment`, `variant`, `user`, `status`, `name`: ids in `strings`; `user` NULL when it is the request
///   id (the gateway's requests without a user), `status` NULL for feedback, `name` NULL for requests.
/// - `conversation`, `request_id`: a request id's 12 bytes (`RequestIDCode`) or the text; `request_id` NULL
///   when empty, `conversation` NULL when it is the (non-empty) request id, '' when the line has none.
/// - `latency_ms`, `ttft_ms`, `value`: no affinity, so what is bound stays: an INTEGER is millionths (the
///   gateway measures nanoseconds: 4 bytes rather than 8), a REAL the value itself, the TEXT 'null' a number
///   the line writes as null; NULL when the line has no such field.
/// - `input_tokens`, `output_tokens`: integers; `prompt`, `messages`, `response`: content logging's text.
///
/// The view `events` shows the rows with the columns, and lines, of versions 1 to 4, for SQL written against
/// the store (scripts/sql/summary.sql, the sqlite3 shell). Its lines are JSON with the same fields and
/// values, made by SQLite (not byte for byte what `EventRowReader` gives).
enum EventRows {
    /// Flags of `event_rows.flags`.
    static let feedbackFlag: Int64 = 1, qaFlag: Int64 = 2, usageMissingFlag: Int64 = 4

    /// The tables, indexes and view of the compact layout (migration 5 makes them; `convert` fills them).
    ///
    /// The indexes are what the look-ups read: a request by id and feedback per request (`event_rows_request`,
    /// the few rows of one request id checked for kind and name), the latest request of a named conversation
    /// and feedback per conversation (`event_rows_conversation`, only rows whose conversation is not their
    /// request's id), an experiment's events in commit order (`event_rows_experiment`: an index holds the
    /// rowid, so `(experiment)` is ordered by id within an experiment).
    static let tables = """
        CREATE TABLE strings (
            id INTEGER PRIMARY KEY,
            value TEXT NOT NULL UNIQUE);
        CREATE TABLE event_rows (
            id INTEGER PRIMARY KEY,
            ts INTEGER NOT NULL,
            flags INTEGER NOT NULL,
            experiment INTEGER NOT NULL,
            variant INTEGER,
            user INTEGER,
            conversation,
            request_id,
            status INTEGER,
            name INTEGER,
            latency_ms,
            ttft_ms,
            input_tokens INTEGER,
            output_tokens INTEGER,
            value,
            prompt TEXT,
            messages TEXT,
            response TEXT,
            line TEXT);
        """

    static let indexes = """
        CREATE INDEX event_rows_experiment ON event_rows(experiment);
        CREATE INDEX event_rows_request ON event_rows(request_id) WHERE request_id IS NOT NULL;
        CREATE INDEX event_rows_conversation ON event_rows(conversation) WHERE conversation <> '';
        """

    /// SQL for a request id column as text ('' for NULL).
    private static func idText(_ column: String) -> String {
        "CASE typeof(\(column)) WHEN 'blob' THEN 'req_' || lower(hex(\(column))) WHEN 'null' THEN '' ELSE \(column) END"
    }

    /// SQL for a number column as the number it stands for (NULL for none and for non-finite numbers).
    private static func number(_ column: String) -> String {
        "CASE typeof(\(column)) WHEN 'integer' THEN \(column) / 1e6 WHEN 'real' THEN \(column) END"
    }

    /// SQL for a number column as JSON: 15 significant digits, or 17 where 15 do not give the same number.
    private static func jsonNumber(_ column: String) -> String {
        let n = number(column)
        return "CASE WHEN \(n) IS NOT NULL THEN json(CASE WHEN CAST(printf('%.15g', \(n)) AS REAL) = \(n) THEN printf('%.15g', \(n)) ELSE printf('%.17g', \(n)) END) END"
    }

    /// The view `events`: the columns of versions 1 to 4 (a request's conversation id is its request id when it
    /// has none, status and name '' where they do not apply), the line as JSON. Rows inserted into it (SQL
    /// written for versions 1 to 4: another system's events) go into `event_rows` with their line kept whole and
    /// their ids as text (SQLite 3.40 has no `unhex`: the gateway's look-ups, which seek its request ids as
    /// 12 bytes, do not find them; readers do); rows deleted from it are deleted.
    static let view: String = {
        let request = idText("r.request_id")
        let conversation = "CASE WHEN r.conversation IS NULL OR (r.conversation = '' AND r.flags & 1 = 0) THEN \(request) ELSE \(idText("r.conversation")) END"
        let lineConversation = "CASE WHEN r.conversation IS NULL THEN \(request) ELSE \(idText("r.conversation")) END"
        let user = "coalesce(u.value, \(request))"
        // Milliseconds, floored as formatTimestamp does (also before 1970).
        let millis = "((r.ts - ((r.ts % 1000) + 1000) % 1000) / 1000)"
        let seconds = "((\(millis) - ((\(millis) % 1000) + 1000) % 1000) / 1000)"
        let time = "strftime('%Y-%m-%dT%H:%M:%S', \(seconds), 'unixepoch') || printf('.%03dZ', ((\(millis) % 1000) + 1000) % 1000)"
        let isRequest = "r.flags & 1 = 0"
        let line = """
            json_patch('{}', json_object(
                    'event', CASE WHEN \(isRequest) THEN 'request' ELSE 'feedback' END,
                    'ts', \(time),
                    'experiment', x.value,
                    'variant', CASE WHEN \(isRequest) THEN v.value END,
                    'user_id', nullif(\(user), ''),
                    'conversation_id', nullif(\(lineConversation), ''),
                    'request_id', nullif(\(request), ''),
                    'latency_ms', \(jsonNumber("r.latency_ms")),
                    'ttft_ms', \(jsonNumber("r.ttft_ms")),
                    'input_tokens', r.input_tokens,
                    'output_tokens', r.output_tokens,
                    'status', CASE WHEN \(isRequest) THEN s.value END,
                    'usage_missing', CASE WHEN r.flags & 4 <> 0 THEN json('true') END,
                    'name', CASE WHEN NOT \(isRequest) THEN n.value END,
                    'value', CASE WHEN NOT \(isRequest) THEN \(jsonNumber("r.value")) END,
                    'qa', CASE WHEN r.flags & 2 <> 0 THEN json('true') END,
                    'prompt', r.prompt,
                    'messages', CASE WHEN json_valid(r.messages) THEN json(r.messages) END,
                    'response', r.response))
            """
        return """
            CREATE VIEW events (id, ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, line, name) AS
            SELECT r.id, r.ts, x.value, CASE WHEN \(isRequest) THEN 'request' ELSE 'feedback' END, coalesce(v.value, ''),
                   \(user), \(conversation), \(request), coalesce(s.value, ''), (r.flags >> 1) & 1,
                   coalesce(r.line, \(line)), coalesce(n.value, '')
            FROM event_rows r
            JOIN strings x ON x.id = r.experiment
            LEFT JOIN strings v ON v.id = r.variant
            LEFT JOIN strings u ON u.id = r.user
            LEFT JOIN strings s ON s.id = r.status
            LEFT JOIN strings n ON n.id = r.name;
            CREATE TRIGGER events_insert INSTEAD OF INSERT ON events
            BEGIN
                INSERT OR IGNORE INTO strings (value) VALUES (NEW.experiment), (coalesce(NEW.variant, '')), (coalesce(NEW.user_id, '')),
                    (coalesce(NEW.status, '')), (coalesce(NEW.name, ''));
                INSERT INTO event_rows (id, ts, flags, experiment, variant, user, conversation, request_id, status, name, line)
                VALUES (NEW.id, NEW.ts, (CASE NEW.kind WHEN 'feedback' THEN 1 ELSE 0 END) | (CASE WHEN coalesce(NEW.qa, 0) <> 0 THEN 2 ELSE 0 END),
                    (SELECT id FROM strings WHERE value = NEW.experiment),
                    (SELECT id FROM strings WHERE value = coalesce(NEW.variant, '')),
                    CASE WHEN coalesce(NEW.request_id, '') <> '' AND NEW.user_id = NEW.request_id THEN NULL
                         ELSE (SELECT id FROM strings WHERE value = coalesce(NEW.user_id, '')) END,
                    CASE WHEN coalesce(NEW.request_id, '') <> '' AND NEW.conversation_id = NEW.request_id THEN NULL
                         ELSE coalesce(NEW.conversation_id, '') END,
                    nullif(NEW.request_id, ''),
                    CASE WHEN NEW.kind = 'feedback' THEN NULL ELSE (SELECT id FROM strings WHERE value = coalesce(NEW.status, '')) END,
                    CASE WHEN NEW.kind = 'feedback' THEN (SELECT id FROM strings WHERE value = coalesce(NEW.name, '')) END,
                    NEW.line);
            END;
            CREATE TRIGGER events_delete INSTEAD OF DELETE ON events
            BEGIN
                DELETE FROM event_rows WHERE id = OLD.id;
            END;
            """
    }()

    /// Migration 5: the events of versions 1 to 4 moved into the compact layout in the migration's transaction,
    /// each keeping its id (an analysis's cursor and a sampled request's row stay valid) and its line.
    static func convert(_ db: any MigrationDatabase) throws(StoreError) {
        guard let connection = db as? Connection else {
            throw StoreError(.other, path: db.name, "\(db.name): the compact layout is SQLite's")
        }
        try connection.execute(tables)
        let writer = try EventRowWriter(connection)
        let old = try connection.prepare("SELECT id, ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa, name, line FROM events ORDER BY id")
        while try old.step() {
            let columns = LegacyColumns(
                ts: old.int(1), experiment: old.string(2), isFeedback: old.string(3) == "feedback", variant: old.string(4),
                userID: old.string(5), conversationID: old.string(6), requestID: old.string(7), status: old.string(8),
                qa: old.int(9) != 0, name: old.string(10), line: old.string(11))
            try writer.insert(columns, id: old.int(0))
        }
        try connection.execute("DROP TABLE events")
        try connection.execute(indexes)
        try connection.execute(view)
        writer.committed()
    }
}

/// A row as versions 1 to 4 stored it (and as an import or a converted row whose line is kept whole is
/// indexed): the look-up columns and the line. `conversationID` is the request id for a request without one.
struct LegacyColumns {
    var ts: Int64
    var experiment: String
    var isFeedback: Bool
    var variant: String
    var userID: String
    var conversationID: String
    var requestID: String
    var status: String
    var qa: Bool
    var name: String
    var line: String

    init(ts: Int64, experiment: String, isFeedback: Bool, variant: String, userID: String, conversationID: String,
         requestID: String, status: String, qa: Bool, name: String, line: String) {
        self.ts = ts
        self.experiment = experiment
        self.isFeedback = isFeedback
        self.variant = variant
        self.userID = userID
        self.conversationID = conversationID
        self.requestID = requestID
        self.status = status
        self.qa = qa
        self.name = name
        self.line = line
    }

    init(_ row: Row) {
        self.init(ts: row.ts, experiment: row.experiment, isFeedback: row.kind == .feedback, variant: row.variant,
                  userID: row.userID, conversationID: row.conversationID, requestID: row.requestID, status: row.status,
                  qa: row.qa, name: row.name, line: row.line)
    }

    /// Whether `record` gives these columns (as `Row(record)` did), the variant of feedback aside (not in its line).
    func match(_ record: EventRecord) -> Bool {
        let request = record.kind == .request
        let conversation = record.conversationID.isEmpty && request ? record.requestID : record.conversationID
        return isFeedback == !request && qa == record.qa && ts == record.timestamp
            && same(experiment, record.experiment) && same(userID, record.userID) && same(conversationID, conversation)
            && same(requestID, record.requestID) && same(status, request ? record.status : "")
            && same(name, request ? "" : record.name) && (!request || same(variant, record.variant))
    }
}

/// Byte equality of strings (`==` on `String` equates canonically equivalent ones: "é" composed and not).
@inline(__always)
func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

/// The gateway's request ids, `req_` and 24 lowercase hex digits, as 12 bytes.
struct RequestIDCode {
    private var code: (UInt64, UInt32) = (0, 0)

    /// The code of `id`, nil when it has another shape.
    init?(_ id: String) {
        var id = id
        var code: (UInt64, UInt32) = (0, 0)
        let ok = id.withUTF8 { u -> Bool in
            guard u.count == 28, u[0] == 0x72, u[1] == 0x65, u[2] == 0x71, u[3] == 0x5F else { return false }
            return withUnsafeMutableBytes(of: &code) { out -> Bool in
                for i in 0..<12 {
                    guard let hi = Self.nibble(u[4 + 2 * i]), let lo = Self.nibble(u[5 + 2 * i]) else { return false }
                    out[i] = hi << 4 | lo
                }
                return true
            }
        }
        guard ok else { return nil }
        self.code = code
    }

    /// Binds the 12 bytes.
    func bind(to s: Statement, _ index: Int32) {
        withUnsafeBytes(of: code) { s.bindBlob(index, UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
    }

    /// Appends the text of a 12-byte code.
    static func appendText(_ code: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(contentsOf: [0x72, 0x65, 0x71, 0x5F])
        for byte in code {
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 15))
        }
    }

    @inline(__always)
    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    @inline(__always)
    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
}

/// Interns strings for the writer: each distinct string once in `strings`, its id remembered.
///
/// Keys compare by bytes. Ids of strings added in a transaction that rolls back are forgotten (`rolledBack`);
/// the memory held is bounded (`limit` strings, then forgotten and read again as they come).
final class StringInterner {
    private struct Key: Hashable {
        var text: String
        static func == (a: Key, b: Key) -> Bool { same(a.text, b.text) }
        func hash(into hasher: inout Hasher) {
            var text = text
            text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
    }

    private let find: Statement
    private let add: Statement
    private let connection: Connection
    private var ids: [Key: Int64] = [:]
    private var added: [Key] = []
    private let limit: Int

    init(_ connection: Connection, limit: Int = 200_000) throws(StoreError) {
        self.connection = connection
        self.limit = limit
        find = try connection.prepare("SELECT id FROM strings WHERE value = ?1")
        add = try connection.prepare("INSERT INTO strings (value) VALUES (?1)")
    }

    /// The id of `text` (inside a write transaction: a new string is added).
    func id(_ text: String) throws(StoreError) -> Int64 {
        let key = Key(text: text)
        if let id = ids[key] { return id }
        find.bind(1, text)
        defer { find.reset() }
        let id: Int64
        if try find.step() {
            id = find.int(0)
        } else {
            add.bind(1, text)
            defer { add.reset() }
            _ = try add.step()
            id = sqlite3_last_insert_rowid(connection.db)
            added.append(key)
        }
        ids[key] = id
        return id
    }

    /// The transaction committed: the strings it added stay.
    func committed() {
        added.removeAll(keepingCapacity: true)
        if ids.count > limit { ids.removeAll() }
    }

    /// The transaction rolled back: the strings it added are gone.
    func rolledBack() {
        for key in added { ids[key] = nil }
        added.removeAll(keepingCapacity: true)
    }
}

/// Inserts events into `event_rows` (the writer's batches, imports, the conversion of an older store).
final class EventRowWriter {
    private let insert: Statement
    private let strings: StringInterner
    private var parser = EventParser()

    init(_ connection: Connection) throws(StoreError) {
        strings = try StringInterner(connection)
        insert = try connection.prepare("""
            INSERT INTO event_rows (ts, flags, experiment, variant, user, conversation, request_id, status, name,
                latency_ms, ttft_ms, input_tokens, output_tokens, value, prompt, messages, response, line, id)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
            """)
    }

    func committed() { strings.committed() }
    func rolledBack() { strings.rolledBack() }

    /// Inserts an event: columns only, its line rebuilt when read.
    func insert(_ e: EventRecord, id: Int64? = nil) throws(StoreError) {
        defer { insert.reset() }
        let request = e.kind == .request
        var flags: Int64 = request ? 0 : EventRows.feedbackFlag
        if e.qa { flags |= EventRows.qaFlag }
        if e.usageMissing && request { flags |= EventRows.usageMissingFlag }
        try bindCommon(ts: e.timestamp, flags: flags, experiment: e.experiment, variant: e.variant, userID: e.userID,
                       conversationID: e.conversationID, requestID: e.requestID, status: request ? e.status : nil,
                       name: request ? nil : e.name, id: id)
        if request {
            bindNumber(10, e.latencyMs)
            bindNumber(11, e.ttftMs)
            insert.bind(12, e.inputTokens)
            insert.bind(13, e.outputTokens)
        } else {
            bindNumber(14, e.value)
        }
        if let prompt = e.prompt { insert.bind(15, prompt) }
        if let messages = e.messages { insert.bind(16, messages) }
        if let response = e.response { insert.bind(17, response) }
        _ = try insert.step()
    }

    /// Inserts an imported or older row: columns only when they give its line back byte for byte, else with the
    /// line kept whole (and the look-up columns as given).
    func insert(_ row: LegacyColumns, id: Int64? = nil) throws(StoreError) {
        if let record = rebuildable(row) { return try insert(record, id: id) }
        defer { insert.reset() }
        let flags: Int64 = (row.isFeedback ? EventRows.feedbackFlag : 0) | (row.qa ? EventRows.qaFlag : 0)
        try bindCommon(ts: row.ts, flags: flags, experiment: row.experiment, variant: row.variant, userID: row.userID,
                       conversationID: row.conversationID, requestID: row.requestID, status: row.isFeedback ? nil : row.status,
                       name: row.isFeedback ? row.name : nil, id: id)
        insert.bind(18, row.line)
        _ = try insert.step()
    }

    /// The event whose `jsonLine()` is `row.line` and whose columns are `row`'s, when there is one.
    private func rebuildable(_ row: LegacyColumns) -> EventRecord? {
        var line = row.line
        return line.withUTF8 { bytes -> EventRecord? in
            let raw = UnsafeRawBufferPointer(bytes)
            guard let view = try? parser.parse(raw), var record = EventRows.record(view, timestamp: row.ts, line: raw) else { return nil }
            if record.kind == .feedback { record.variant = row.variant }
            return row.match(record) ? record : nil
        }
    }

    private func bindCommon(ts: Int64, flags: Int64, experiment: String, variant: String, userID: String, conversationID: String,
                            requestID: String, status: String?, name: String?, id: Int64?) throws(StoreError) {
        insert.bind(1, ts)
        insert.bind(2, flags)
        insert.bind(3, try strings.id(experiment))
        insert.bind(4, try strings.id(variant))
        let hasRequestID = !requestID.isEmpty
        if !(hasRequestID && same(userID, requestID)) { insert.bind(5, try strings.id(userID)) }
        if !(hasRequestID && same(conversationID, requestID)) { bindID(6, conversationID) }
        if hasRequestID { bindID(7, requestID) }
        if let status { insert.bind(8, try strings.id(status)) }
        if let name { insert.bind(9, try strings.id(name)) }
        if let id { insert.bind(19, id) }
    }

    /// A request or conversation id: 12 bytes in the gateway's shape, else the text.
    private func bindID(_ index: Int32, _ id: String) {
        if let code = RequestIDCode(id) { code.bind(to: insert, index) } else { insert.bind(index, id) }
    }

    /// A number column: millionths as an INTEGER when they give the same Double back, else the REAL; non-finite
    /// numbers (written as null) as the TEXT 'null'.
    private func bindNumber(_ index: Int32, _ value: Double?) {
        guard let value else { return }
        guard value.isFinite else { return insert.bind(index, "null") }
        let scaled = (value * 1e6).rounded()
        if abs(scaled) < 9e15, (scaled / 1e6).bitPattern == value.bitPattern {
            insert.bind(index, Int64(scaled))
        } else {
            insert.bind(index, value as Double?)
        }
    }
}

extension EventRows {
    /// The event a parsed line describes, when its `jsonLine()` is that line byte for byte (nil otherwise):
    /// the parser fills in what a line may leave out (a request's conversation id, an `ok` status), and skips
    /// `usage_missing` and fields it does not know, so the line made again is compared with the original.
    static func record(_ view: EventView, timestamp: Int64, line: UnsafeRawBufferPointer) -> EventRecord? {
        func text(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }
        /// A token count: absent (NaN), an integer, or nil when the line has a number no `Int?` writes back.
        func count(_ v: Double) -> Int?? {
            if v.isNaN { return .some(nil) }
            guard v == v.rounded(), abs(v) < 9e15 else { return nil }
            return .some(Int(v))
        }
        var e = EventRecord(kind: view.kind, timestamp: timestamp, experiment: text(view.experiment))
        e.userID = text(view.userID)
        e.conversationID = text(view.conversationID)
        e.requestID = text(view.requestID)
        e.qa = view.qa
        if view.prompt.count > 0 { e.prompt = text(view.prompt) }
        if view.messages.count > 0 { e.messages = text(view.messages) }
        if view.response.count > 0 { e.response = text(view.response) }
        switch view.kind {
        case .request:
            e.variant = text(view.variant)
            guard let input = count(view.inputTokens), let output = count(view.outputTokens) else { return nil }
            e.inputTokens = input
            e.outputTokens = output
            e.latencyMs = view.latencyMs.isNaN ? nil : view.latencyMs
            e.ttftMs = view.ttftMs.isNaN ? nil : view.ttftMs
            e.status = view.status.count == 0 ? "ok" : text(view.status)
            e.usageMissing = contains(line, #","usage_missing":true"#)
        case .feedback:
            e.name = text(view.name)
            e.value = view.value
        }
        if matches(e, line) { return e }
        // A request without a conversation id: the parser gave it the request id.
        if e.kind == .request && same(e.conversationID, e.requestID) {
            e.conversationID = ""
            if matches(e, line) { return e }
        }
        return nil
    }

    private static func matches(_ e: EventRecord, _ line: UnsafeRawBufferPointer) -> Bool {
        var made = e.jsonLine()
        return made.withUTF8 { made in
            made.count == line.count && (made.isEmpty || memcmp(made.baseAddress!, line.baseAddress!, line.count) == 0)
        }
    }

    private static func contains(_ line: UnsafeRawBufferPointer, _ text: String) -> Bool {
        let needle = Array(text.utf8)
        guard line.count >= needle.count else { return false }
        for start in 0...(line.count - needle.count) where line[start] == needle[0] {
            if (0..<needle.count).allSatisfy({ line[start + $0] == needle[$0] }) { return true }
        }
        return false
    }
}
