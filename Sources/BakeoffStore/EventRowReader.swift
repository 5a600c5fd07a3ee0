import BakeoffCore
import CSQLite

/// Where a store keeps its events: versions 1 to 4 a line per row in the table `events`, version 5 on the
/// compact rows of `event_rows` (see `EventRows`). Readers take both, so that a store is read as it is,
/// before a writer upgrades it.
enum EventLayout: Equatable {
    case lines(hasName: Bool)
    case compact

    /// The first schema version with compact rows.
    static let compactVersion = StoreSchema.migrations.firstIndex { $0.id == "compact-events" }! + 1

    init(version: Int) {
        self = version >= Self.compactVersion ? .compact : .lines(hasName: version >= 2)
    }

    var table: String { self == .compact ? "event_rows" : "events" }

    /// The columns `EventRowReader` reads, in its order (`EventRowReader.Column`).
    var columns: String {
        switch self {
        case .compact:
            return "id, ts, flags, experiment, variant, user, conversation, request_id, status, name, latency_ms, ttft_ms, input_tokens, output_tokens, value, prompt, messages, response, line"
        case .lines(let hasName):
            return "id, ts, (CASE kind WHEN 'feedback' THEN 1 ELSE 0 END) | (CASE WHEN qa <> 0 THEN 2 ELSE 0 END), experiment, variant, user_id, conversation_id, request_id, status, \(hasName ? "name" : "''"), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, line"
        }
    }

    /// SQL: the row is a request.
    var isRequest: String { self == .compact ? "flags & 1 = 0" : "kind = 'request'" }
    /// SQL: the row is not a QA event.
    var notQA: String { self == .compact ? "flags & 2 = 0" : "qa = 0" }
}

/// Reads event rows of either layout through one connection: their lines (the stored one, or rebuilt from the
/// columns byte for byte as `EventRecord.jsonLine()` wrote it) and their look-up fields. Not `Sendable`: one
/// thread, like its connection.
final class EventRowReader {
    /// The columns of `EventLayout.columns`.
    enum Column {
        static let id: Int32 = 0, ts: Int32 = 1, flags: Int32 = 2, experiment: Int32 = 3, variant: Int32 = 4, user: Int32 = 5
        static let conversation: Int32 = 6, requestID: Int32 = 7, status: Int32 = 8, name: Int32 = 9
        static let latency: Int32 = 10, ttft: Int32 = 11, inputTokens: Int32 = 12, outputTokens: Int32 = 13, value: Int32 = 14
        static let prompt: Int32 = 15, messages: Int32 = 16, response: Int32 = 17, line: Int32 = 18
    }

    let connection: Connection
    let layout: EventLayout
    // One thread uses a reader: no dynamic exclusivity checks on the buffers of every row (a tenth of a read's time).
    /// Interned strings read so far, by id (`strings` ids are small and dense).
    @exclusivity(unchecked) private var strings: [[UInt8]?] = []
    private var byID: Statement?
    private var findID: Statement?
    @exclusivity(unchecked) private var line: [UInt8] = []
    @exclusivity(unchecked) private var request: [UInt8] = []
    /// The last day formatted, and its "YYYY-MM-DDT" bytes.
    @exclusivity(unchecked) private var day = Int64.min
    @exclusivity(unchecked) private var dayText: [UInt8] = []

    init(_ connection: Connection) throws(StoreError) {
        self.connection = connection
        layout = EventLayout(version: try connection.schemaVersion())
        line.reserveCapacity(512)
    }

    /// `SELECT` of this layout's columns with `conditions` (joined by AND), in commit order (or newest first).
    func select(_ conditions: [String], newestFirst: Bool = false, limit: Int? = nil) throws(StoreError) -> Statement {
        var sql = "SELECT \(layout.columns) FROM \(layout.table)"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += newestFirst ? " ORDER BY id DESC" : " ORDER BY id"
        if let limit { sql += " LIMIT \(limit)" }
        return try connection.prepare(sql)
    }

    /// Binds the key of a string column (an experiment's name, a feedback name): its id in a compact store, the
    /// text in an older one; false when a compact store has no such string (then no row has it).
    func bindString(_ s: Statement, _ index: Int32, _ text: String) throws(StoreError) -> Bool {
        guard layout == .compact else {
            s.bind(index, text)
            return true
        }
        guard let id = try stringID(text) else { return false }
        s.bind(index, id)
        return true
    }

    /// Binds a request or conversation id as the layout stores it.
    func bindID(_ s: Statement, _ index: Int32, _ id: String) {
        if layout == .compact, let code = RequestIDCode(id) { code.bind(to: s, index) } else { s.bind(index, id) }
    }

    /// The id of an interned string, nil when the store has none such.
    func stringID(_ text: String) throws(StoreError) -> Int64? {
        if findID == nil { findID = try connection.prepare("SELECT id FROM strings WHERE value = ?1") }
        let s = findID!
        s.bind(1, text)
        defer { s.reset() }
        return try s.step() ? s.int(0) : nil
    }

    /// The text of an interned string.
    func string(id: Int64) throws(StoreError) -> String {
        String(decoding: try stringBytes(id: id), as: UTF8.self)
    }

    // MARK: - Fields of the current row

    func isFeedback(_ s: Statement) -> Bool { s.int(Column.flags) & EventRows.feedbackFlag != 0 }
    func isQA(_ s: Statement) -> Bool { s.int(Column.flags) & EventRows.qaFlag != 0 }

    /// A string column: an interned id, or (older stores, kept lines) the text; "" for NULL.
    func text(_ s: Statement, _ column: Int32) throws(StoreError) -> String {
        try withText(s, column) { String(decoding: $0, as: UTF8.self) }
    }

    func requestID(_ s: Statement) -> String {
        withRequestID(s) { String(decoding: $0, as: UTF8.self) }
    }

    /// The user: the request id where the column is NULL.
    func userID(_ s: Statement) throws(StoreError) -> String {
        s.isNull(Column.user) ? requestID(s) : try text(s, Column.user)
    }

    /// The conversation as look-ups see it: a request without one is its own.
    func conversationID(_ s: Statement) -> String {
        let type = sqlite3_column_type(s.stmt, Column.conversation)
        if type == SQLITE_NULL || (!isFeedback(s) && sqlite3_column_bytes(s.stmt, Column.conversation) == 0) { return requestID(s) }
        return idText(s, Column.conversation) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the row's line: the one kept, or the one its columns give back.
    func withLine<R>(_ s: Statement, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if !s.isNull(Column.line) { return try body(s.bytes(Column.line)) }
        try rebuild(s)
        return try line.withUnsafeBytes { try body($0) }
    }

    // MARK: - Rebuilding a line

    /// `EventRecord.jsonLine()` of the row, into `line`.
    private func rebuild(_ s: Statement) throws(StoreError) {
        line.removeAll(keepingCapacity: true)
        let flags = s.int(Column.flags)
        let request = flags & EventRows.feedbackFlag == 0
        // The request id's text, once: the user and conversation columns are NULL when they are the request id.
        let requestID = idText(s, Column.requestID, into: &self.request)
        append(request ? #"{"event":"request","ts":""# : #"{"event":"feedback","ts":""#)
        appendTimestamp(s.int(Column.ts))
        append(#"","experiment":"#)
        try appendQuoted(s, Column.experiment)
        if request {
            append(#","variant":"#)
            try appendQuoted(s, Column.variant)
        }
        if s.isNull(Column.user) {
            if requestID { appendRequestID(key: #","user_id":"#) }
        } else {
            try withText(s, Column.user) { text in
                if text.count > 0 {
                    append(#","user_id":"#)
                    appendQuoted(text)
                }
            }
        }
        switch sqlite3_column_type(s.stmt, Column.conversation) {
        case SQLITE_NULL:
            if requestID { appendRequestID(key: #","conversation_id":"#) }
        case SQLITE_BLOB:
            append(#","conversation_id":""#)
            RequestIDCode.appendText(blob(s, Column.conversation), to: &line)
            line.append(0x22)
        default:
            let text = s.bytes(Column.conversation)
            if text.count > 0 {
                append(#","conversation_id":"#)
                appendQuoted(text)
            }
        }
        if requestID { appendRequestID(key: #","request_id":"#) }
        if request {
            appendNumber(s, Column.latency, key: #","latency_ms":"#)
            appendNumber(s, Column.ttft, key: #","ttft_ms":"#)
            appendInteger(s, Column.inputTokens, key: #","input_tokens":"#)
            appendInteger(s, Column.outputTokens, key: #","output_tokens":"#)
            append(#","status":"#)
            try appendQuoted(s, Column.status)
            if flags & EventRows.usageMissingFlag != 0 { append(#","usage_missing":true"#) }
        } else {
            append(#","name":"#)
            try appendQuoted(s, Column.name)
            append(#","value":"#)
            if !appendNumber(s, Column.value, key: "") { append("0") }
        }
        if flags & EventRows.qaFlag != 0 { append(#","qa":true"#) }
        if !s.isNull(Column.prompt) {
            append(#","prompt":"#)
            appendQuoted(s.bytes(Column.prompt))
        }
        if !s.isNull(Column.messages) {
            append(#","messages":"#)
            line.append(contentsOf: s.bytes(Column.messages))
        }
        if !s.isNull(Column.response) {
            append(#","response":"#)
            appendQuoted(s.bytes(Column.response))
        }
        line.append(0x7D)
    }

    /// The request id of `idText(_:_:into:)`, as a key and its quoted value.
    private func appendRequestID(key: StaticString) {
        append(key)
        line.append(0x22)
        line.append(contentsOf: request)  // ids with characters to escape are rare: checked below
        if request.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            line.removeLast(request.count + 1)
            request.withUnsafeBytes { appendQuoted($0) }
        } else {
            line.append(0x22)
        }
    }

    private func blob(_ s: Statement, _ column: Int32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: sqlite3_column_blob(s.stmt, column), count: Int(sqlite3_column_bytes(s.stmt, column)))
    }

    /// A request or conversation id column's text into `out`; false when it is empty.
    private func idText(_ s: Statement, _ column: Int32, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        switch sqlite3_column_type(s.stmt, column) {
        case SQLITE_NULL: return false
        case SQLITE_BLOB: RequestIDCode.appendText(blob(s, column), to: &out)
        default: out.append(contentsOf: s.bytes(column))
        }
        return !out.isEmpty
    }

    @inline(__always)
    private func append(_ text: StaticString) {
        text.withUTF8Buffer { line.append(contentsOf: $0) }
    }

    /// A number column as `JSONWriter.number` writes it; false when NULL (nothing written).
    @discardableResult
    private func appendNumber(_ s: Statement, _ column: Int32, key: StaticString) -> Bool {
        let value: Double
        switch sqlite3_column_type(s.stmt, column) {
        case SQLITE_NULL: return false
        case SQLITE_INTEGER: value = Double(s.int(column)) / 1e6
        case SQLITE_FLOAT: value = s.double(column)
        default: value = .nan  // 'null'
        }
        append(key)
        if value == value.rounded(), abs(value) < 1e15 {
            appendInteger(Int64(value))  // as JSONWriter.number writes integers
        } else {
            var text = JSONWriter.number(value)
            text.withUTF8 { line.append(contentsOf: $0) }
        }
        return true
    }

    private func appendInteger(_ s: Statement, _ column: Int32, key: StaticString) {
        guard !s.isNull(column) else { return }
        append(key)
        appendInteger(s.int(column))
    }

    private func appendQuoted(_ s: Statement, _ column: Int32) throws(StoreError) {
        try withText(s, column) { appendQuoted($0) }
    }

    /// A JSON string as `JSONWriter.quote` writes it (the escaped characters are all ASCII, so bytes will do).
    private func appendQuoted(_ text: UnsafeRawBufferPointer) {
        line.append(0x22)
        var start = 0
        for i in 0..<text.count {
            let c = text[i]
            guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[start..<i]))
            switch c {
            case 0x22: append(#"\""#)
            case 0x5C: append(#"\\"#)
            case 0x0A: append(#"\n"#)
            case 0x0D: append(#"\r"#)
            case 0x09: append(#"\t"#)
            default:
                append(#"\u00"#)
                line.append(Self.hex(c >> 4))
                line.append(Self.hex(c & 15))
            }
            start = i + 1
        }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[start..<text.count]))
        line.append(0x22)
    }

    private static func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

    /// `formatTimestamp(micros)`: the date of each day is made once.
    private func appendTimestamp(_ micros: Int64) {
        let millis = micros >= 0 ? micros / 1000 : (micros - 999) / 1000
        let ms = Int(((millis % 1000) + 1000) % 1000)
        let seconds = (millis - Int64(ms)) / 1000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        if days != day {
            let text = formatTimestamp(days * 86_400_000_000)  // "YYYY-MM-DDT00:00:00.000Z"
            dayText = Array(text.utf8.prefix { $0 != 0x54 }) + [0x54]
            day = days
        }
        let second = Int(seconds - days * 86_400)
        line.append(contentsOf: dayText)
        appendTwoDigits(second / 3600)
        line.append(0x3A)
        appendTwoDigits(second / 60 % 60)
        line.append(0x3A)
        appendTwoDigits(second % 60)
        line.append(0x2E)
        line.append(0x30 + UInt8(ms / 100))
        appendTwoDigits(ms % 100)
        line.append(0x5A)
    }

    @inline(__always)
    private func appendTwoDigits(_ v: Int) {
        line.append(0x30 + UInt8(v / 10))
        line.append(0x30 + UInt8(v % 10))
    }

    /// `String(v)`'s digits.
    private func appendInteger(_ v: Int64) {
        if v < 0 { line.append(0x2D) }
        var magnitude = v.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[count] = 0x30 + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for i in stride(from: count - 1, through: 0, by: -1) { line.append(d[i]) }
        }
    }

    // MARK: - Column bytes

    private func withText<R>(_ s: Statement, _ column: Int32, _ body: (UnsafeRawBufferPointer) -> R) throws(StoreError) -> R {
        if sqlite3_column_type(s.stmt, column) == SQLITE_INTEGER { return try stringBytes(id: s.int(column)).withUnsafeBytes(body) }
        return body(s.bytes(column))
    }

    /// The bytes of an interned string (read once, then remembered).
    private func stringBytes(id: Int64) throws(StoreError) -> [UInt8] {
        if id >= 0, id < strings.count, let known = strings[Int(id)] { return known }
        if byID == nil { byID = try connection.prepare("SELECT value FROM strings WHERE id = ?1") }
        let s = byID!
        s.bind(1, id)
        defer { s.reset() }
        guard try s.step() else {
            throw StoreError(.damaged, path: connection.path, "\(connection.path): the \(connection.label) is damaged (string \(id) is missing); it cannot be read: \(damagedStoreAdvice(connection.path, version: nil))")
        }
        let bytes = Array(s.bytes(0))
        if id >= 0, id < 1 << 24 {
            if strings.count <= Int(id) { strings.append(contentsOf: repeatElement(nil, count: Int(id) + 1 - strings.count)) }
            strings[Int(id)] = bytes
        }
        return bytes
    }

    /// The request id's text ('' for none).
    private func withRequestID<R>(_ s: Statement, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        idText(s, Column.requestID, body)
    }

    /// A request or conversation id column's text: 12 bytes in the gateway's shape, or the text.
    private func idText<R>(_ s: Statement, _ column: Int32, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        guard sqlite3_column_type(s.stmt, column) == SQLITE_BLOB else { return body(s.bytes(column)) }
        let count = Int(sqlite3_column_bytes(s.stmt, column))
        let code = UnsafeRawBufferPointer(start: sqlite3_column_blob(s.stmt, column), count: count)
        request.removeAll(keepingCapacity: true)
        RequestIDCode.appendText(code, to: &request)
        return request.withUnsafeBytes { body($0) }
    }
}
