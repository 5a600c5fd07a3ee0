import BakeoffCore
import Foundation

extension LabelSheet {
    /// The sheet's columns, in order. Labelers fill `label` (left, right or tie) and may write a `note`.
    public static let csvColumns = ["item", "question", "reference", "left", "right", "label", "note"]

    /// The sheet as CSV for labelers (RFC 4180: CRLF line ends, a header, fields quoted when they must be; no
    /// byte order mark). `labels` fills the label and note columns by item code (the HTML page's "Download CSV"
    /// writes the same bytes).
    public func csv(labels: [String: (choice: LabelChoice, note: String?)] = [:]) -> String {
        var out = Self.csvColumns.joined(separator: ",") + "\r\n"
        for item in items {
            let filled = labels[item.code]
            let fields = [item.code, item.question, item.reference ?? "", item.left, item.right,
                          filled?.choice.rawValue ?? "", filled?.note ?? ""]
            out += fields.map(Self.csvField).joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// A field as written: quoted (quotes doubled) when it holds a quote, a comma or a line break, starts with
    /// a space, a tab or `#` (a comment to Bakeoff's CSV reader), or ends with a space or a tab; else as it is.
    public static func csvField(_ s: String) -> String {
        var quote = false
        for u in s.unicodeScalars where u == "\"" || u == "," || u == "\r" || u == "\n" { quote = true; break }
        if let first = s.unicodeScalars.first, first == " " || first == "\t" || first == "#" { quote = true }
        if let last = s.unicodeScalars.last, last == " " || last == "\t" { quote = true }
        guard quote else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A filled label sheet, read back: the labels given, the blank ones, and the rows that cannot be used.
public struct FilledLabels: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        /// The item code as in the key.
        public var code: String
        public var choice: LabelChoice
        public var note: String?
        /// The line where the row starts.
        public var line: Int
    }

    /// Labels read, in the file's order.
    public var rows: [Row]
    /// Items whose label was left blank (skipped).
    public var blank: Int
    /// Rows that cannot be used: a label that is none of the accepted ones, an item code the key does not
    /// know, an item labelled twice, a row with more fields than the header. Each names its line and column.
    public var problems: [LabelError]

    /// Reads a filled sheet (CSV, as `LabelSheet.csv` writes it, possibly after a spreadsheet: a byte order mark,
    /// LF line ends, columns reordered or dropped are fine). The header must have `item` and `label` (any
    /// case); `note` is read when there; other columns are ignored. Labels are `LabelChoice`'s spellings; a
    /// blank label is skipped and counted; a row with every field blank is ignored.
    ///
    /// Throws for a file that is not such a sheet (CSV syntax, no header, no `item` or `label` column); a row
    /// that cannot be used is a problem in `problems`, and the others are still read.
    public static func parse(_ bytes: [UInt8], source: String, key: LabelKey) throws(LabelError) -> FilledLabels {
        var reader = CSVReader(bytes)
        func read() throws(LabelError) -> CSVRecord? {
            do throws(CSVError) { return try reader.next() } catch {
                throw LabelError(source: source, line: error.line, column: error.column, message: error.message)
            }
        }
        guard let headerRecord = try read() else {
            throw LabelError(source: source, message: "empty: a filled label sheet starts with its header (item,question,reference,left,right,label,note)")
        }
        let header = headerRecord.fields.map { $0.trimmed.lowercased() }
        func column(_ name: String, required: Bool) throws(LabelError) -> Int? {
            let found = header.indices.filter { header[$0] == name }
            if found.count > 1 {
                throw LabelError(source: source, line: headerRecord.line, column: name, message: "appears \(found.count) times in the header")
            }
            if found.isEmpty && required {
                throw LabelError(source: source, line: headerRecord.line,
                                 message: "the header has no \"\(name)\" column (a filled label sheet has item and label; found: \(header.joined(separator: ", ")))")
            }
            return found.first
        }
        let itemColumn = try column("item", required: true)!
        let labelColumn = try column("label", required: true)!
        let noteColumn = try column("note", required: false)

        let known = Set(key.entries.map(\.code))
        var result = FilledLabels(rows: [], blank: 0, problems: [])
        var firstLine: [String: Int] = [:]
        while let record = try read() {
            func field(_ i: Int) -> String { i < record.fields.count ? record.fields[i].text : "" }
            func problem(_ column: String?, _ message: String) {
                result.problems.append(LabelError(source: source, line: record.line, column: column, message: message))
            }
            if record.fields.allSatisfy({ $0.trimmed.isEmpty }) { continue }
            if record.fields.count > header.count, record.fields[header.count...].contains(where: { !$0.trimmed.isEmpty }) {
                problem(nil, "\(record.fields.count) fields but the header has \(header.count): a field with a comma or a line break must be quoted")
                continue
            }
            let code = field(itemColumn).trimmingCharacters(in: .whitespaces).lowercased()
            let label = field(labelColumn)
            guard !code.isEmpty else {
                problem("item", "is blank: every row names its item, as in the sheet")
                continue
            }
            guard known.contains(code) else {
                problem("item", "\"\(code)\" is not an item of this sheet's key (is it a sheet from another export?)")
                continue
            }
            if let earlier = firstLine[code] {
                problem("item", "\(code) is also on line \(earlier): each item is labelled once per file")
                continue
            }
            firstLine[code] = record.line
            if label.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                result.blank += 1
                continue
            }
            guard let choice = LabelChoice.parse(label) else {
                problem("label", "\"\(label)\" is not a label: write left, right or tie (or l, r, t)")
                continue
            }
            let note = noteColumn.map(field).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            result.rows.append(Row(code: code, choice: choice, note: note?.isEmpty == false ? note : nil, line: record.line))
        }
        return result
    }
}
