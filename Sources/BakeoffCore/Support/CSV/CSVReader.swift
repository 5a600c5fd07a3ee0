/// The one CSV dialect Bakeoff reads (summary files, covariate files): RFC 4180 plus a few extras.
///
/// - Fields are separated by commas; records end with LF or CRLF. A field starting with `"` is quoted: it ends
///   at the next lone `"`, `""` inside it is one quote, and it may hold commas and line breaks (kept as written).
///   Spaces or tabs may follow the closing quote; anything else before the next comma or line end is an error.
///   A quote inside an unquoted field is an error.
/// - Unquoted fields are handed over as written (a CR before the line end excluded): each reader decides which
///   fields it trims.
/// - Skipped: a UTF-8 byte order mark, blank lines (only spaces, tabs or CR), and comment lines, which start
///   with `#` in their first column (a field that starts with `#` on the first column is quoted).
/// - Every field must be UTF-8.
///
/// Errors name the line where the record starts and, once the header has been read, the column.
package struct CSVReader {
    private let bytes: [UInt8]
    private var i: Int
    /// The 1-based physical line at `i`.
    private var line = 1
    /// The header's fields (as written, spaces and tabs around them trimmed), once the first record is read.
    package private(set) var header: [String]?
    private let hasHeader: Bool

    /// A reader of `bytes`; the first record is the header when `hasHeader` is true.
    package init(_ bytes: [UInt8], hasHeader: Bool = true) {
        self.bytes = bytes
        self.hasHeader = hasHeader
        i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    }

    /// The next record (the header first), or nil at the end of the input.
    package mutating func next() throws(CSVError) -> CSVRecord? {
        let n = bytes.count
        let quote: UInt8 = 0x22, comma: UInt8 = 0x2C, lf: UInt8 = 0x0A, cr: UInt8 = 0x0D
        while i < n {
            // A blank or comment line.
            var j = i
            while j < n, bytes[j] == 0x20 || bytes[j] == 0x09 || bytes[j] == cr { j += 1 }
            if j == n { i = n; return nil }
            if bytes[j] == lf { i = j + 1; line += 1; continue }
            if bytes[i] == UInt8(ascii: "#") {
                while i < n, bytes[i] != lf { i += 1 }
                i += 1
                line += 1
                continue
            }
            let recordLine = line, recordStart = i
            var fields: [CSVField] = []
            func fail(_ kind: CSVError.Kind) -> CSVError {
                let k = fields.count
                let column = header.flatMap { k < $0.count ? $0[k] : nil }
                return CSVError(kind: kind, line: recordLine, field: k + 1, column: column)
            }
            while true {
                var field: CSVField
                if i < n, bytes[i] == quote {
                    var value: [UInt8] = []
                    i += 1
                    while true {
                        guard i < n else { throw fail(.unclosedQuote) }
                        let b = bytes[i]
                        if b == quote {
                            if i + 1 < n, bytes[i + 1] == quote { value.append(quote); i += 2; continue }
                            i += 1
                            break
                        }
                        if b == lf { line += 1 }
                        value.append(b)
                        i += 1
                    }
                    while i < n, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
                    if i < n, bytes[i] == cr, i + 1 == n || bytes[i + 1] == lf { i += 1 }
                    if i < n, bytes[i] != comma, bytes[i] != lf {
                        var e = i
                        while e < n, bytes[e] != lf { e += 1 }
                        if e > i, bytes[e - 1] == cr { e -= 1 }
                        throw fail(.textAfterClosingQuote(String(decoding: bytes[i..<e], as: UTF8.self)))
                    }
                    field = CSVField(bytes: value[...], quoted: true)
                } else {
                    let begin = i
                    while i < n, bytes[i] != comma, bytes[i] != lf {
                        if bytes[i] == quote { throw fail(.quoteInUnquotedField) }
                        i += 1
                    }
                    var end = i
                    if end > begin, bytes[end - 1] == cr, end == n || bytes[end] == lf { end -= 1 }
                    field = CSVField(bytes: bytes[begin..<end], quoted: false)
                }
                let valid = field.bytes.withUnsafeBytes { isValidUTF8($0) }
                if !valid { throw fail(.invalidUTF8) }
                fields.append(field)
                if i >= n { break }
                if bytes[i] == comma { i += 1; continue }
                // The end of the line.
                i += 1
                line += 1
                break
            }
            var rawEnd = min(i, n)
            while rawEnd > recordStart, bytes[rawEnd - 1] == lf || bytes[rawEnd - 1] == cr { rawEnd -= 1 }
            let record = CSVRecord(line: recordLine, fields: fields, raw: bytes[recordStart..<rawEnd])
            if hasHeader && header == nil { header = fields.map { $0.trimmed } }
            return record
        }
        return nil
    }
}

/// One record: the line it starts on and its fields.
package struct CSVRecord: Sendable {
    package var line: Int
    package var fields: [CSVField]
    /// The record as written, without its line end.
    package var raw: ArraySlice<UInt8>
}

/// One field's content: for a quoted field, without the quotes and with `""` as one quote.
package struct CSVField: Sendable, Equatable {
    package var bytes: ArraySlice<UInt8>
    package var quoted: Bool

    package init(bytes: ArraySlice<UInt8>, quoted: Bool) {
        self.bytes = bytes
        self.quoted = quoted
    }

    /// The content as text (fields are valid UTF-8).
    package var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The content without the spaces and tabs around it.
    package var trimmed: String {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

/// A record the reader cannot read: what, the line where the record starts, the field (1-based) and, after
/// the header, its column name.
package struct CSVError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// A quoted field runs to the end of the input.
        case unclosedQuote
        /// Text between a closing quote and the next comma or line end (the text, up to the line end).
        case textAfterClosingQuote(String)
        /// A `"` inside a field that does not start with one.
        case quoteInUnquotedField
        /// A field that is not UTF-8.
        case invalidUTF8
    }

    package var kind: Kind
    package var line: Int
    package var field: Int
    package var column: String?

    package init(kind: Kind, line: Int, field: Int, column: String?) {
        self.kind = kind
        self.line = line
        self.field = field
        self.column = column
    }

    /// The problem in words (without the line).
    package var message: String {
        switch kind {
        case .unclosedQuote: return "a quoted field is not closed (add the closing \")"
        case .textAfterClosingQuote: return "text after the closing quote of field \(field); quote the whole field"
        case .quoteInUnquotedField: return "a quote inside unquoted field \(field); quote the whole field and double the quote (\"\")"
        case .invalidUTF8: return "not valid UTF-8 text"
        }
    }

    package var description: String {
        "line \(line): " + (column.map { "column \"\($0)\": " } ?? "") + message
    }
}
