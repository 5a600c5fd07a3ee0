import Foundation

/// A problem in a covariate file, located by file and line.
public struct CovariateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String

    public init(path: String, line: Int? = nil, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String { path + (line.map { ":\($0)" } ?? "") + ": " + message }
}

/// Each user's pre-experiment value of some metrics, from a CSV file, for variance reduction (CUPED).
///
/// The file has a header and one row per user and metric:
///
/// ```
/// user_id,metric,value,units
/// u-1,task_completion,3,4
/// u-1,csat,8.5,2
/// u-2,repeat_usage,1,
/// ```
///
/// `value` is the user's pre-experiment numerator (the sum of the metric's unit values: 3 of 4
/// conversations completed) and `units` its denominator (the units: 4 conversations), 1 when the column
/// or the field is empty (a per-user metric). A user the file does not list for a metric enters CUPED with
/// 0 / 0. The file is CSV in Bakeoff's one dialect (`CSVReader`, the README's "CSV files"): RFC 4180 quoting
/// (`"a,b"`, `""` for a quote, line breaks allowed inside quotes), LF or CRLF, blank lines and `#` comment
/// lines skipped. User ids are compared byte for byte and kept as written (no trimming), while spaces around
/// metric names and numbers are ignored.
///
/// Every problem stops the load with the file, the line and what is wrong: a missing or different header,
/// a wrong number of fields, an empty user id, an unknown metric (or a quantile metric, which has no
/// covariate), a value that is not a finite decimal number, negative units, a value other than 0 on 0
/// units, a proportion outside [0, units], the same user and metric twice, a file that is not UTF-8, a
/// file with no rows. Rows of metrics whose `varianceReduction` is off are accepted and not used.
public struct CovariateTable: Sendable {
    /// The metrics the file has rows for, in the order of the metric list it was read with.
    public let metricNames: [String]
    /// Distinct users.
    public var userCount: Int { rowOfUser.count }
    /// Rows (user and metric pairs).
    public let rowCount: Int

    private let rowOfUser: [[UInt8]: Int32]
    /// Per user row and metric column: value and units (NaN when the file has no row).
    private let cells: [Double]

    /// Reads a covariate file for `metrics` (the analysis' metric list).
    public static func load(path: String, metrics: [Metric] = Metric.builtIn) throws(CovariateError) -> CovariateTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            throw CovariateError(path: path, message: isDirectory.boolValue ? "is a directory, not a covariate file"
                                 : exists ? "cannot read the covariate file (check its permissions)" : "no such covariate file")
        }
        return try parse(bytes: [UInt8](data), source: path, metrics: metrics)
    }

    /// Reads covariates from CSV text; `source` names it in errors.
    public static func parse(_ text: String, source: String, metrics: [Metric] = Metric.builtIn) throws(CovariateError) -> CovariateTable {
        try parse(bytes: Array(text.utf8), source: source, metrics: metrics)
    }

    /// The pre-experiment value (numerator) and units (denominator) of `user` for `metric`, nil when the
    /// file has no such row.
    public func value(user: String, metric: String) -> (value: Double, units: Double)? {
        guard let row = rowOfUser[Array(user.utf8)], let column = column(of: metric) else { return nil }
        return cell(row: Int(row), column: column)
    }

    // MARK: For the aggregator

    /// The column of `metric`, nil when the file has no row for it.
    func column(of metric: String) -> Int? { metricNames.firstIndex(of: metric) }

    /// The row of a user id, by its bytes.
    func row(ofUser bytes: UnsafeRawBufferPointer) -> Int? {
        rowOfUser[Array(bytes)].map(Int.init)
    }

    func cell(row: Int, column: Int) -> (value: Double, units: Double)? {
        let i = (row * metricNames.count + column) * 2
        return cells[i].isNaN ? nil : (cells[i], cells[i + 1])
    }

    // MARK: Parsing

    private static let header = ["user_id", "metric", "value"]

    static func parse(bytes input: [UInt8], source: String, metrics: [Metric]) throws(CovariateError) -> CovariateTable {
        func fail(_ line: Int?, _ message: String) -> CovariateError { CovariateError(path: source, line: line, message: message) }
        var reader = CSVReader(input)
        func next() throws(CovariateError) -> CSVRecord? {
            do throws(CSVError) { return try reader.next() } catch {
                let message: String
                switch error.kind {
                case .unclosedQuote: message = "a quoted field is not closed (add the closing \")"
                case .textAfterClosingQuote(let found): message = "a comma must follow a closing quote, found \"\(excerpt(Array(found.utf8)[...]))\""
                case .quoteInUnquotedField: message = "a quote inside an unquoted field: quote the whole field and double the quote"
                case .invalidUTF8: throw fail(error.line, "not valid UTF-8")
                }
                throw fail(error.line, reader.header == nil
                    ? "the header must be user_id,metric,value or user_id,metric,value,units (\(message))" : message)
            }
        }

        // Header.
        guard let headerRecord = try next() else {
            throw fail(nil, "the file is empty: expected the header user_id,metric,value[,units] and rows")
        }
        let headerNames = headerRecord.fields.map(\.trimmed)
        guard headerNames == header || headerNames == header + ["units"] else {
            throw fail(headerRecord.line, "the header must be user_id,metric,value or user_id,metric,value,units; got \"\(excerpt(headerRecord.raw))\"")
        }
        let columns = headerNames.count

        // Metrics that can have a covariate, by name.
        var known: [String: Metric] = [:]
        for m in metrics { known[m.name] = m }
        var metricNames: [String] = []          // in the order first seen, reordered below
        var userRows: [[UInt8]: Int32] = [:]
        var rows: [(user: Int32, metric: Int, value: Double, units: Double, line: Int)] = []

        while let record = try next() {
            let number = record.line
            let fields = record.fields.map(\.bytes)
            guard fields.count == columns else {
                throw fail(number, "expected \(columns) fields (\((header + ["units"]).prefix(columns).joined(separator: ","))), got \(fields.count)")
            }
            let user = Array(fields[0])
            guard !user.isEmpty else { throw fail(number, "empty user_id") }
            let name = trimmed(String(decoding: fields[1], as: UTF8.self))
            guard let metric = known[name] else {
                if name.isEmpty { throw fail(number, "empty metric name") }
                let list = metrics.filter { $0.kind != .quantile }.map(\.name).joined(separator: ", ")
                throw fail(number, "unknown metric \"\(excerpt(fields[1]))\" (the metrics: \(list))")
            }
            guard metric.kind != .quantile else {
                throw fail(number, "metric \"\(name)\" is a quantile: it takes no covariate")
            }
            let value: Double
            do throws(FieldError) { value = try parseNumber(fields[2]) } catch { throw fail(number, "value: \(error.message)") }
            var units = 1.0
            if columns == 4, !trimmed(String(decoding: fields[3], as: UTF8.self)).isEmpty {
                do throws(FieldError) { units = try parseNumber(fields[3]) } catch { throw fail(number, "units: \(error.message)") }
                guard units >= 0 else { throw fail(number, "units must not be negative, got \(trimmed(String(decoding: fields[3], as: UTF8.self)))") }
            }
            if units == 0 && value != 0 {
                throw fail(number, "value must be 0 when units is 0, got \(JSONWriter.number(value))")
            }
            if metric.kind == .proportion && !(value >= 0 && value <= units) {
                throw fail(number, "metric \"\(name)\" is a proportion: value must be between 0 and units (\(JSONWriter.number(units))), got \(JSONWriter.number(value))")
            }
            let column: Int
            if let c = metricNames.firstIndex(of: name) { column = c } else { column = metricNames.count; metricNames.append(name) }
            let row: Int32
            if let r = userRows[user] { row = r } else { row = Int32(userRows.count); userRows[user] = row }
            rows.append((row, column, value, units, number))
        }
        guard !rows.isEmpty else { throw fail(nil, "no rows after the header") }
        let names = metricNames

        // Columns in the order of the metric list.
        let ordered = metrics.map(\.name).filter { names.contains($0) }
        let remap = names.map { ordered.firstIndex(of: $0)! }
        var cells = [Double](repeating: .nan, count: userRows.count * ordered.count * 2)
        var lineOf = [Int32](repeating: 0, count: userRows.count * ordered.count)
        for r in rows {
            let k = Int(r.user) * ordered.count + remap[r.metric]
            if lineOf[k] != 0 {
                let user = userRows.first { $0.value == r.user }!.key
                throw fail(r.line, "duplicate row for user \"\(excerpt(user[...]))\" and metric \"\(ordered[remap[r.metric]])\" (first at line \(lineOf[k]))")
            }
            lineOf[k] = Int32(truncatingIfNeeded: r.line)
            cells[2 * k] = r.value
            cells[2 * k + 1] = r.units
        }
        return CovariateTable(metricNames: ordered, rowCount: rows.count, rowOfUser: userRows, cells: cells)
    }

    private init(metricNames: [String], rowCount: Int, rowOfUser: [[UInt8]: Int32], cells: [Double]) {
        self.metricNames = metricNames
        self.rowCount = rowCount
        self.rowOfUser = rowOfUser
        self.cells = cells
    }

    private struct FieldError: Error { var message: String }

    /// A finite decimal number (`-12`, `3.5`, `.5`, `1e-3`), spaces around allowed; not `nan`, `inf`, hex.
    private static func parseNumber(_ field: ArraySlice<UInt8>) throws(FieldError) -> Double {
        let text = trimmed(String(decoding: field, as: UTF8.self))
        if text.isEmpty { throw FieldError(message: "missing number") }
        var digits = 0, i = text.utf8.startIndex
        let u = text.utf8
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        if u[i] == 0x2B || u[i] == 0x2D { i = u.index(after: i) }
        while i < u.endIndex && isDigit(u[i]) { digits += 1; i = u.index(after: i) }
        if i < u.endIndex && u[i] == 0x2E {
            i = u.index(after: i)
            while i < u.endIndex && isDigit(u[i]) { digits += 1; i = u.index(after: i) }
        }
        var valid = digits > 0
        if valid && i < u.endIndex && (u[i] == 0x65 || u[i] == 0x45) {
            i = u.index(after: i)
            if i < u.endIndex && (u[i] == 0x2B || u[i] == 0x2D) { i = u.index(after: i) }
            var exponent = 0
            while i < u.endIndex && isDigit(u[i]) { exponent += 1; i = u.index(after: i) }
            valid = exponent > 0
        }
        guard valid && i == u.endIndex, let x = Double(text) else {
            throw FieldError(message: "\"\(excerpt(field))\" is not a number; write a decimal number such as 3.5 or 1e-3")
        }
        guard x.isFinite else { throw FieldError(message: "\"\(excerpt(field))\" is out of range") }
        return x
    }

    private static func trimmed(_ s: String) -> String {
        var t = Substring(s)
        while let c = t.first, c == " " || c == "\t" { t.removeFirst() }
        while let c = t.last, c == " " || c == "\t" { t.removeLast() }
        return String(t)
    }

    /// At most 40 characters of a field, for messages.
    private static func excerpt(_ bytes: ArraySlice<UInt8>) -> String {
        let s = String(decoding: bytes, as: UTF8.self)
        return s.count > 40 ? String(s.prefix(40)) + "…" : s
    }
}
