import Foundation
import BakeoffStatistics

/// A problem in a summary file: the file, the line of the row (CSV, or the line where a JSON row starts),
/// the column and what is wrong, e.g. `summary.csv:4: column "users": must be a whole number ≥ 0, got "12.5"`.
public struct SummaryInputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    /// 1-based line; nil for problems of the whole file.
    public var line: Int?
    /// For JSON rows, the row's place (`rows[3]`), since JSON has no row lines of its own.
    public var row: String?
    public var column: String?
    public var message: String
    /// What went wrong, for the problems a caller may answer itself (nil for the others).
    public var problem: Problem?

    /// Problems a caller can act on.
    public enum Problem: Sendable, Equatable {
        /// Rows name several experiments (these, in order of appearance) and none was chosen: a command-line
        /// tool can say how to choose one.
        case severalExperiments([String])
    }

    public init(source: String, line: Int? = nil, row: String? = nil, column: String? = nil, message: String, problem: Problem? = nil) {
        self.source = source
        self.line = line
        self.row = row
        self.column = column
        self.message = message
        self.problem = problem
    }

    public var description: String {
        var s = source
        if let line { s += ":\(line)" }
        s += ":"
        if let row { s += " \(row):" }
        if let column { s += " column \"\(column)\":" }
        return s + " " + message
    }
}

/// The columns of a summary file (CSV header names and JSON keys): one row per (variant, metric).
public enum SummaryColumn: String, CaseIterable, Sendable {
    case experiment, variant, metric
    /// Users assigned to the variant (for the sample-ratio check); the same on every row of a variant that gives it.
    case assignedUsers = "assigned_users"
    /// Users with at least one unit of the metric (RatioMoments.n); for quantile rows, QuantileEstimate.users.
    case users
    /// Σ m_i and Σ m_i² over users, m_i the sum of the user's unit values.
    case sum, sumSquares = "sum_squares"
    /// Σ d_i, Σ d_i², Σ m_i d_i, d_i the user's number of units; absent: a per-user metric, d_i = 1.
    case units, unitsSquares = "units_squares", sumUnitsProducts = "sum_units_products"
    /// CUPED: the same metric before the experiment (mp_i / dp_i) and the cross sums.
    case preSum = "pre_sum", preSumSquares = "pre_sum_squares", sumPreSumProducts = "sum_pre_sum_products"
    case preUnits = "pre_units", preUnitsSquares = "pre_units_squares"
    case preSumPreUnitsProducts = "pre_sum_pre_units_products", unitsPreUnitsProducts = "units_pre_units_products"
    case sumPreUnitsProducts = "sum_pre_units_products", unitsPreSumProducts = "units_pre_sum_products"
    /// Quantile metrics: the fields of QuantileEstimate.
    case quantileLevel = "quantile_level", events, quantile, quantileLower = "quantile_lower", quantileUpper = "quantile_upper"
    case belowSum = "below_sum", belowSquares = "below_squares", countSum = "count_sum", countSquares = "count_squares"
    case belowCountProducts = "below_count_products"

    /// Units columns of a ratio metric (all or none).
    static let unitsGroup: [SummaryColumn] = [.units, .unitsSquares, .sumUnitsProducts]
    /// CUPED columns every metric with a pre-period needs.
    static let preGroup: [SummaryColumn] = [.preSum, .preSumSquares, .sumPreSumProducts]
    /// CUPED columns a ratio metric (one with units) needs besides `preGroup`.
    static let preUnitsGroup: [SummaryColumn] = [.preUnits, .preUnitsSquares, .preSumPreUnitsProducts, .unitsPreUnitsProducts,
                                                 .sumPreUnitsProducts, .unitsPreSumProducts]
    static let quantileGroup: [SummaryColumn] = [.quantile, .quantileLower, .quantileUpper, .belowSum, .belowSquares,
                                                 .countSum, .countSquares, .belowCountProducts]
}

/// Reads per-variant, per-metric sufficient statistics aggregated elsewhere (a warehouse) into the
/// `ExperimentData` the analysis takes; the format is in the README, "Sufficient statistics from your warehouse".
///
/// Only the user-level analysis is possible from sums: `unitMoments` carry the unit counts and sums (the
/// report's means) but not, in general, the sum of squared unit values, so the naive event-level test
/// (`--unit event`) must not be offered; there are no timestamps (no days-left estimate), request and feedback
/// counts, or data-quality counts. `requestEvents` is the total of `assigned_users`, so that an analysis sees
/// the data as non-empty.
public enum SummaryInput {
    /// Reads a summary file (or standard input for `-`) and parses it.
    public static func read(path: String, metrics: [Metric], experiment: String? = nil, variants: [String]? = nil) throws -> ExperimentData {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            data = try FileError.contents(of: path)
        }
        return try parse(Array(data), source: path == "-" ? "standard input" : path, metrics: metrics,
                         experiment: experiment, variants: variants)
    }

    /// Parses CSV or JSON (JSON when the first byte that is not white space is `[` or `{`) into ExperimentData.
    ///
    /// `metrics` are the metrics rows may name (Metric.builtIn or a config's). `experiment` picks one
    /// experiment when rows name several (without it such a file fails with `Problem.severalExperiments`);
    /// `variants`, when given, are the only variant names allowed.
    public static func parse(_ bytes: [UInt8], source: String, metrics: [Metric], experiment: String? = nil,
                             variants: [String]? = nil) throws(SummaryInputError) -> ExperimentData {
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }  // UTF-8 byte order mark (spreadsheet exports)
        let first = bytes[start...].first { !isSpace($0) }
        guard let first else {
            throw SummaryInputError(source: source, message: "the file is empty; expected a CSV header row or JSON rows (README: \"Sufficient statistics from your warehouse\")")
        }
        let rows = first == UInt8(ascii: "[") || first == UInt8(ascii: "{")
            ? try JSONRows.read(Array(bytes[start...]), source: source)
            : try CSVRows.read(bytes, source: source)
        let builder = Builder(source: source, metrics: metrics, experiment: experiment, variants: variants)
        return try builder.build(rows)
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
}

// MARK: - Rows as read

/// A cell as written: CSV cells are text; JSON cells are strings or numbers.
enum SummaryCell: Equatable {
    case text(String)
    case number(Double)
}

/// One row before validation: where it is and its non-empty cells.
struct SummaryRow {
    var line: Int?
    var label: String?
    var cells: [SummaryColumn: SummaryCell]
}

/// CSV in Bakeoff's dialect (`CSVReader`: RFC 4180, CRLF or LF, `#` comment lines and blank lines skipped); a
/// header row first; spaces and tabs around unquoted fields are dropped.
enum CSVRows {
    static func read(_ bytes: [UInt8], source: String) throws(SummaryInputError) -> [SummaryRow] {
        var reader = CSVReader(bytes)
        var records: [(line: Int, fields: [String])] = []
        do throws(CSVError) {
            while let record = try reader.next() {
                records.append((record.line, record.fields.map { $0.quoted ? $0.text : $0.trimmed }))
            }
        } catch {
            throw SummaryInputError(source: source, line: error.line, message: error.message)
        }
        guard let header = records.first else {
            throw SummaryInputError(source: source, message: "no header row (only blank or # comment lines); the first row names the columns")
        }
        var columns: [SummaryColumn] = []
        for (k, name) in header.fields.enumerated() {
            guard let column = SummaryColumn(rawValue: name) else {
                throw SummaryInputError(source: source, line: header.line, column: name, message: unknownColumn(name, place: "header field \(k + 1)"))
            }
            if let earlier = columns.firstIndex(of: column) {
                throw SummaryInputError(source: source, line: header.line, column: name, message: "appears twice in the header (fields \(earlier + 1) and \(k + 1))")
            }
            columns.append(column)
        }
        var rows: [SummaryRow] = []
        for record in records.dropFirst() {
            guard record.fields.count == columns.count else {
                throw SummaryInputError(source: source, line: record.line, message: "\(record.fields.count) fields, but the header (line \(header.line)) has \(columns.count)")
            }
            var cells: [SummaryColumn: SummaryCell] = [:]
            for (column, field) in zip(columns, record.fields) where !field.isEmpty { cells[column] = .text(field) }
            rows.append(SummaryRow(line: record.line, label: nil, cells: cells))
        }
        if rows.isEmpty {
            throw SummaryInputError(source: source, line: header.line, message: "a header row but no data rows")
        }
        return rows
    }

    static func unknownColumn(_ name: String, place: String) -> String {
        "unknown column (\(place)); the columns are " + SummaryColumn.allCases.map(\.rawValue).joined(separator: ", ")
    }
}

/// JSON: an array of row objects, or `{"experiment": NAME, "rows": [...]}`; keys are the CSV column names,
/// values strings or numbers (null or absent = empty). A key may appear once per object.
enum JSONRows {
    static func read(_ bytes: [UInt8], source: String) throws(SummaryInputError) -> [SummaryRow] {
        let document: JSONDocument
        do { document = try JSONValue.parse(bytes) } catch {
            throw SummaryInputError(source: source, message: "not valid JSON: \(error)")
        }
        let value = document.root
        var defaultExperiment: String?
        let items: [JSONValue]
        let prefix: String
        switch value.content {
        case .array(let a):
            items = a
            prefix = ""
        case .object(let o):
            if let repeated = o.repeatedMembers.first {
                throw SummaryInputError(source: source, line: repeated.value.line, message: "\"\(repeated.key)\" appears twice at the top level; keep one")
            }
            for key in o.keys.sorted() where key != "experiment" && key != "rows" {
                throw SummaryInputError(source: source, message: "unknown key \"\(key)\" at the top level; expected \"experiment\" and \"rows\" (or an array of rows)")
            }
            switch o["experiment"]?.content {
            case nil, .null?: break
            case .string(let s)?: defaultExperiment = s
            case _?: throw SummaryInputError(source: source, column: "experiment", message: "must be a string, got \(o["experiment"]!.described)")
            }
            guard let a = o["rows"]?.array else {
                throw SummaryInputError(source: source, message: "expected \"rows\": an array of row objects")
            }
            items = a
            prefix = "rows"
        default:
            throw SummaryInputError(source: source, message: "expected an array of row objects or {\"rows\": [...]}, got \(value.described)")
        }
        var rows: [SummaryRow] = []
        for (k, item) in items.enumerated() {
            let label = "\(prefix)[\(k)]"
            guard let object = item.object else {
                throw SummaryInputError(source: source, row: label, message: "a row must be an object, got \(item.described)")
            }
            // A row is named by the line its object starts on.
            let line = item.line
            if let repeated = object.repeatedMembers.first {
                throw SummaryInputError(source: source, line: line, row: label, column: repeated.key, message: "appears twice in the row; keep one")
            }
            var cells: [SummaryColumn: SummaryCell] = [:]
            for key in object.keys.sorted() {
                guard let column = SummaryColumn(rawValue: key) else {
                    throw SummaryInputError(source: source, line: line, row: label, column: key, message: CSVRows.unknownColumn(key, place: "a key of the row"))
                }
                let cell = object[key]!
                switch cell.content {
                case .null: break
                case .string(let s): if !s.isEmpty { cells[column] = .text(s) }
                case .number(let n): cells[column] = .number(n)
                default:
                    throw SummaryInputError(source: source, line: line, row: label, column: key, message: "must be a string or a number, got \(cell.described)")
                }
            }
            if cells[.experiment] == nil, let defaultExperiment { cells[.experiment] = .text(defaultExperiment) }
            rows.append(SummaryRow(line: line, label: label, cells: cells))
        }
        if rows.isEmpty { throw SummaryInputError(source: source, message: "no rows: give one object per variant and metric (README: \"Sufficient statistics from your warehouse\")") }
        return rows
    }
}

// MARK: - Validation and the ExperimentData

/// One validated row.
private struct ParsedRow {
    var line: Int?
    var label: String?
    var variant: String
    var metric: Int
    var assignedUsers: Int?
    var users: Int
    var moments = RatioMoments()
    var hasUnits = false
    var covariate: RatioCUPEDMoments?
    /// For quantile metrics: nil when the variant has no events.
    var quantile: QuantileEstimate?
}

private struct Builder {
    let source: String
    let metrics: [Metric]
    let experiment: String?
    let variants: [String]?
    let metricIndex: [String: Int]

    init(source: String, metrics: [Metric], experiment: String?, variants: [String]?) {
        self.source = source
        self.metrics = metrics
        self.experiment = experiment
        self.variants = variants
        var index: [String: Int] = [:]
        for (i, m) in metrics.enumerated() where index[m.name] == nil { index[m.name] = i }
        metricIndex = index
    }

    func fail(_ row: SummaryRow, _ column: SummaryColumn?, _ message: String) -> SummaryInputError {
        SummaryInputError(source: source, line: row.line, row: row.label, column: column?.rawValue, message: message)
    }

    func fail(_ row: ParsedRow, _ column: SummaryColumn?, _ message: String) -> SummaryInputError {
        SummaryInputError(source: source, line: row.line, row: row.label, column: column?.rawValue, message: message)
    }

    /// "line 7" or "rows[3]": a row's place, for messages that name two rows.
    func place(_ row: ParsedRow) -> String {
        if let line = row.line { return "line \(line)" }
        return row.label ?? "another row"
    }

    // MARK: cells

    func name(_ row: SummaryRow, _ column: SummaryColumn) throws(SummaryInputError) -> String? {
        switch row.cells[column] {
        case nil: return nil
        case .text(let s)?: return s
        case .number(let n)?: throw fail(row, column, "must be a string, got the number \(JSONWriter.number(n))")
        }
    }

    func number(_ row: SummaryRow, _ column: SummaryColumn) throws(SummaryInputError) -> Double? {
        switch row.cells[column] {
        case nil: return nil
        case .number(let n)?: return n
        case .text(let s)?:
            // Decimal notation only: Double(_:) would also take "nan", "inf" and hexadecimal.
            let decimal = s.utf8.allSatisfy { b in (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") }
            guard decimal, let v = Double(s) else {
                let word = s.lowercased()
                let infinite = word.contains("inf") || word.contains("nan")
                throw fail(row, column, infinite ? "must be a finite number, got \"\(s)\"" : "must be a number, got \"\(s)\"")
            }
            guard v.isFinite else { throw fail(row, column, "must be a finite number, got \"\(s)\" (out of range)") }
            return v
        }
    }

    func required(_ row: SummaryRow, _ column: SummaryColumn, _ why: String) throws(SummaryInputError) -> Double {
        guard let v = try number(row, column) else { throw fail(row, column, "missing (\(why))") }
        return v
    }

    func count(_ row: SummaryRow, _ column: SummaryColumn) throws(SummaryInputError) -> Int? {
        guard let v = try number(row, column) else { return nil }
        guard v >= 0, v == v.rounded(), v < 9.0e15 else {
            throw fail(row, column, "must be a whole number ≥ 0, got \(describe(row.cells[column]!))")
        }
        return Int(v)
    }

    func describe(_ cell: SummaryCell) -> String {
        switch cell {
        case .text(let s): return "\"\(s)\""
        case .number(let n): return JSONWriter.number(n)
        }
    }

    // MARK: sanity of sums

    /// a ≥ b up to rounding in the warehouse's sums.
    static func atLeast(_ a: Double, _ b: Double) -> Bool { a >= b - 1e-9 * max(abs(a), abs(b)) - 1e-12 }

    /// Σx² ≥ (Σx)²/n: otherwise the sums cannot come from the same n users.
    func checkSquares(_ row: SummaryRow, _ squares: SummaryColumn, _ sumColumn: SummaryColumn, sum: Double,
                      sumOfSquares: Double, users: Int) throws(SummaryInputError) {
        guard users > 0 else { return }
        let floor = sum * sum / Double(users)
        if !Builder.atLeast(sumOfSquares, floor) {
            throw fail(row, squares, "\(JSONWriter.number(sumOfSquares)) is less than \(sumColumn.rawValue)²/users = \(JSONWriter.number(floor)): these cannot be sums over the same users (it must be Σ of each user's total squared)")
        }
    }

    /// (Σxy)² ≤ Σx² Σy² (Cauchy–Schwarz).
    func checkProducts(_ row: SummaryRow, _ column: SummaryColumn, product: Double, _ a: SummaryColumn, _ aSquares: Double,
                       _ b: SummaryColumn, _ bSquares: Double) throws(SummaryInputError) {
        if !Builder.atLeast(aSquares * bSquares, product * product) {
            let bound = (aSquares * bSquares).squareRoot()
            throw fail(row, column, "\(JSONWriter.number(product)) exceeds √(\(a.rawValue) × \(b.rawValue)) = \(formatNumber(bound)) in size: these cannot be sums over the same users")
        }
    }

    // MARK: one row

    func parse(_ row: SummaryRow) throws(SummaryInputError) -> ParsedRow {
        guard let variant = try name(row, .variant) else { throw fail(row, .variant, "missing (every row names its variant)") }
        guard let metricName = try name(row, .metric) else { throw fail(row, .metric, "missing (every row names its metric)") }
        if let variants, !variants.contains(variant) {
            throw fail(row, .variant, "unknown variant \"\(variant)\"; the planned variants are " + variants.map { "\"\($0)\"" }.joined(separator: ", "))
        }
        guard let m = metricIndex[metricName] else {
            throw fail(row, .metric, "unknown metric \"\(metricName)\"; known metrics: " + metrics.map(\.name).joined(separator: ", "))
        }
        let metric = metrics[m]
        guard let users = try count(row, .users) else {
            throw fail(row, .users, "missing (users with at least one unit of the metric)")
        }
        var parsed = ParsedRow(line: row.line, label: row.label, variant: variant, metric: m,
                               assignedUsers: try count(row, .assignedUsers), users: users)
        if metric.kind == .quantile {
            parsed.quantile = try quantileEstimate(row, metric: metric, users: users)
            return parsed
        }
        for column in SummaryColumn.quantileGroup + [.quantileLevel, .events] where row.cells[column] != nil {
            throw fail(row, column, "only for quantile metrics; \"\(metric.name)\" is a \(metric.kind.rawValue) metric")
        }
        let n = Double(users)
        let sum = try required(row, .sum, "Σ of each user's total"), squares = try required(row, .sumSquares, "Σ of each user's total squared")
        try checkSquares(row, .sumSquares, .sum, sum: sum, sumOfSquares: squares, users: users)
        // Units: all three, or none (d = 1 per user).
        let givenUnits = SummaryColumn.unitsGroup.filter { row.cells[$0] != nil }
        var units = n, unitsSquares = n, sumUnits = sum
        if !givenUnits.isEmpty {
            for column in SummaryColumn.unitsGroup where row.cells[column] == nil {
                throw fail(row, column, "missing; units, units_squares and sum_units_products go together (leave all three empty for a per-user metric)")
            }
            units = try number(row, .units)!
            unitsSquares = try number(row, .unitsSquares)!
            sumUnits = try number(row, .sumUnitsProducts)!
            parsed.hasUnits = true
            if !Builder.atLeast(units, n) {
                throw fail(row, .units, "\(JSONWriter.number(units)) is less than users (\(users)): every user counted has at least one unit")
            }
            try checkSquares(row, .unitsSquares, .units, sum: units, sumOfSquares: unitsSquares, users: users)
            try checkProducts(row, .sumUnitsProducts, product: sumUnits, .sumSquares, squares, .unitsSquares, unitsSquares)
        }
        if users == 0 {
            for (column, v) in [(SummaryColumn.sum, sum), (.sumSquares, squares), (.units, units)] where v != 0 {
                throw fail(row, column, "must be 0 when users is 0, got \(JSONWriter.number(v))")
            }
        }
        if metric.kind == .proportion && (sum < 0 || !Builder.atLeast(units, sum)) {
            throw fail(row, .sum, "\(JSONWriter.number(sum)) is outside 0...\(JSONWriter.number(units)) (\(parsed.hasUnits ? "units" : "users")): \"\(metric.name)\" is a proportion, each unit counts 0 or 1")
        }
        parsed.moments = RatioMoments(n: n, numerator: SampleMoments(n: n, sum: sum, sumOfSquares: squares),
                                      denominator: SampleMoments(n: n, sum: units, sumOfSquares: unitsSquares), sumOfProducts: sumUnits)
        parsed.covariate = try covariate(row, parsed: parsed)
        return parsed
    }

    /// The CUPED columns: none, `preGroup` for a per-user metric, or `preGroup` + `preUnitsGroup` for a ratio.
    func covariate(_ row: SummaryRow, parsed: ParsedRow) throws(SummaryInputError) -> RatioCUPEDMoments? {
        let all = SummaryColumn.preGroup + SummaryColumn.preUnitsGroup
        guard all.contains(where: { row.cells[$0] != nil }) else { return nil }
        let needed = parsed.hasUnits ? all : SummaryColumn.preGroup
        for column in needed where row.cells[column] == nil {
            throw fail(row, column, parsed.hasUnits
                ? "missing; a ratio metric (one with units) with a pre-period needs all of " + all.map(\.rawValue).joined(separator: ", ")
                : "missing; a per-user metric with a pre-period needs pre_sum, pre_sum_squares and sum_pre_sum_products")
        }
        if !parsed.hasUnits, let extra = SummaryColumn.preUnitsGroup.first(where: { row.cells[$0] != nil }) {
            throw fail(row, extra, "only for ratio metrics: give units, units_squares and sum_units_products too, or leave the pre-period units empty")
        }
        let m = parsed.moments, n = m.n
        let preSum = try number(row, .preSum)!, preSquares = try number(row, .preSumSquares)!
        let cross = try number(row, .sumPreSumProducts)!
        try checkSquares(row, .preSumSquares, .preSum, sum: preSum, sumOfSquares: preSquares, users: parsed.users)
        try checkProducts(row, .sumPreSumProducts, product: cross, .sumSquares, m.numerator.sumOfSquares, .preSumSquares, preSquares)
        // A per-user metric: dp = 1 for every user (users without pre data enter with mp = 0).
        var preUnits = n, preUnitsSquares = n, prePre = preSum, unitsPreUnits = m.denominator.sum
        var sumPreUnits = m.numerator.sum, unitsPreSum = preSum
        if parsed.hasUnits {
            preUnits = try number(row, .preUnits)!
            preUnitsSquares = try number(row, .preUnitsSquares)!
            prePre = try number(row, .preSumPreUnitsProducts)!
            unitsPreUnits = try number(row, .unitsPreUnitsProducts)!
            sumPreUnits = try number(row, .sumPreUnitsProducts)!
            unitsPreSum = try number(row, .unitsPreSumProducts)!
            if preUnits < 0 { throw fail(row, .preUnits, "must be ≥ 0 (0 for users without pre-period data), got \(JSONWriter.number(preUnits))") }
            try checkSquares(row, .preUnitsSquares, .preUnits, sum: preUnits, sumOfSquares: preUnitsSquares, users: parsed.users)
            try checkProducts(row, .preSumPreUnitsProducts, product: prePre, .preSumSquares, preSquares, .preUnitsSquares, preUnitsSquares)
            try checkProducts(row, .unitsPreUnitsProducts, product: unitsPreUnits, .unitsSquares, m.denominator.sumOfSquares, .preUnitsSquares, preUnitsSquares)
            try checkProducts(row, .sumPreUnitsProducts, product: sumPreUnits, .sumSquares, m.numerator.sumOfSquares, .preUnitsSquares, preUnitsSquares)
            try checkProducts(row, .unitsPreSumProducts, product: unitsPreSum, .unitsSquares, m.denominator.sumOfSquares, .preSumSquares, preSquares)
        }
        return RatioCUPEDMoments(
            n: n, numerator: m.numerator, denominator: m.denominator,
            preNumerator: SampleMoments(n: n, sum: preSum, sumOfSquares: preSquares),
            preDenominator: SampleMoments(n: n, sum: preUnits, sumOfSquares: preUnitsSquares),
            numeratorDenominator: m.sumOfProducts, preNumeratorPreDenominator: prePre, numeratorPreNumerator: cross,
            denominatorPreDenominator: unitsPreUnits, numeratorPreDenominator: sumPreUnits, denominatorPreNumerator: unitsPreSum)
    }

    func quantileEstimate(_ row: SummaryRow, metric: Metric, users: Int) throws(SummaryInputError) -> QuantileEstimate? {
        for column in [SummaryColumn.sum, .sumSquares] + SummaryColumn.unitsGroup + SummaryColumn.preGroup + SummaryColumn.preUnitsGroup
        where row.cells[column] != nil {
            throw fail(row, column, "not for quantile metrics (\"\(metric.name)\" takes events, quantile, quantile_lower, quantile_upper, below_sum, below_squares, count_sum, count_squares, below_count_products)")
        }
        guard let events = try count(row, .events) else { throw fail(row, .events, "missing (the number of values, e.g. requests, behind the quantile)") }
        var level = metric.quantile
        if let given = try number(row, .quantileLevel) {
            guard given > 0, given < 1 else { throw fail(row, .quantileLevel, "must be between 0 and 1 (0.95 for P95), got \(JSONWriter.number(given))") }
            if let expected = metric.quantile, abs(given - expected) > 1e-12 {
                throw fail(row, .quantileLevel, "\(JSONWriter.number(given)), but \"\(metric.name)\" is the \(JSONWriter.number(expected)) quantile")
            }
            level = given
        }
        guard let level else { throw fail(row, .quantileLevel, "missing (\"\(metric.name)\" does not say which quantile)") }
        if events == 0 {
            for column in [SummaryColumn.quantile, .quantileLower, .quantileUpper] where row.cells[column] != nil {
                throw fail(row, column, "must be empty when events is 0 (there is no quantile without values)")
            }
            return nil
        }
        var v: [SummaryColumn: Double] = [:]
        for column in SummaryColumn.quantileGroup {
            v[column] = try required(row, column, "a quantile row with events needs all of " + SummaryColumn.quantileGroup.map(\.rawValue).joined(separator: ", "))
        }
        let q = v[.quantile]!, lower = v[.quantileLower]!, upper = v[.quantileUpper]!
        if !(lower <= q) { throw fail(row, .quantileLower, "\(JSONWriter.number(lower)) is above the quantile \(JSONWriter.number(q))") }
        if !(q <= upper) { throw fail(row, .quantileUpper, "\(JSONWriter.number(upper)) is below the quantile \(JSONWriter.number(q))") }
        let countSum = v[.countSum]!, belowSum = v[.belowSum]!
        if countSum != Double(events) {
            throw fail(row, .countSum, "\(JSONWriter.number(countSum)) differs from events (\(events)): count_sum is Σ of each user's number of values")
        }
        if belowSum < 0 || belowSum > countSum {
            throw fail(row, .belowSum, "\(JSONWriter.number(belowSum)) is outside 0...count_sum (\(JSONWriter.number(countSum)))")
        }
        try checkSquares(row, .countSquares, .countSum, sum: countSum, sumOfSquares: v[.countSquares]!, users: users)
        try checkSquares(row, .belowSquares, .belowSum, sum: belowSum, sumOfSquares: v[.belowSquares]!, users: users)
        try checkProducts(row, .belowCountProducts, product: v[.belowCountProducts]!, .belowSquares, v[.belowSquares]!, .countSquares, v[.countSquares]!)
        return QuantileEstimate(
            level: level, n: Double(events), users: Double(users), quantile: q, lower: lower, upper: upper, belowSum: belowSum,
            belowSumSquares: v[.belowSquares]!, countSum: countSum, countSumSquares: v[.countSquares]!,
            belowCountSumProduct: v[.belowCountProducts]!)
    }

    /// Unit-level moments as far as sums give them: n = Σd and Σ of unit values = Σm (so the report's means
    /// and unit counts are right); Σ of squared unit values is exact for proportions (0/1 values) and per-user
    /// metrics (one unit per user), and unknown (0) for means over several units per user.
    func unitMoments(_ row: ParsedRow, _ metric: Metric) -> SampleMoments {
        let m = row.moments
        let squares = metric.kind == .proportion ? m.numerator.sum : row.hasUnits ? 0 : m.numerator.sumOfSquares
        return SampleMoments(n: m.denominator.sum, sum: m.numerator.sum, sumOfSquares: squares)
    }

    // MARK: all rows

    func build(_ raw: [SummaryRow]) throws(SummaryInputError) -> ExperimentData {
        // The experiment: the one asked for, or the only one named; rows of other experiments are not read.
        var experiments: [String?] = []
        var names: [String] = []
        for row in raw {
            let e = try name(row, .experiment)
            experiments.append(e)
            if let e, !names.contains(e) { names.append(e) }
        }
        if !names.isEmpty, let k = experiments.firstIndex(where: { $0 == nil }) {
            throw fail(raw[k], .experiment, "missing, while other rows name their experiment (\"\(names[0])\")")
        }
        let chosen: String
        var selected = raw
        if let experiment {
            if !names.isEmpty {
                guard names.contains(experiment) else {
                    throw SummaryInputError(source: source, column: "experiment", message: "no rows of experiment \"\(experiment)\"; the file has " + names.map { "\"\($0)\"" }.joined(separator: ", "))
                }
                selected = zip(raw, experiments).filter { $0.1 == experiment }.map(\.0)
            }
            chosen = experiment
        } else if names.count > 1 {
            throw SummaryInputError(source: source, column: "experiment",
                                    message: "the file has several experiments (" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "); choose one experiment",
                                    problem: .severalExperiments(names))
        } else {
            chosen = names.first ?? ""
        }
        var rows: [ParsedRow] = []
        rows.reserveCapacity(selected.count)
        for row in selected { rows.append(try parse(row)) }

        // Variants in order of appearance; one row per (variant, metric).
        var variantNames: [String] = []
        var byKey: [String: [Int: Int]] = [:]  // variant -> metric -> row index
        for (k, r) in rows.enumerated() {
            if !variantNames.contains(r.variant) { variantNames.append(r.variant) }
            if let earlier = byKey[r.variant]?[r.metric] {
                throw fail(r, .metric, "a second row for variant \"\(r.variant)\" and metric \"\(metrics[r.metric].name)\" (the first is \(place(rows[earlier])))")
            }
            byKey[r.variant, default: [:]][r.metric] = k
        }

        // assigned_users: given at least once per variant, equal wherever given, at least every row's users.
        var assigned: [Int] = []
        for v in variantNames {
            let own = rows.filter { $0.variant == v }
            guard let first = own.first(where: { $0.assignedUsers != nil }) else {
                throw fail(own[0], .assignedUsers, "missing for variant \"\(v)\": give the users assigned to it (for the sample-ratio check) on at least one of its rows")
            }
            let value = first.assignedUsers!
            for r in own {
                if let a = r.assignedUsers, a != value {
                    throw fail(r, .assignedUsers, "\(a) differs from \(value) on \(place(first)) for the same variant \"\(v)\"")
                }
                if r.users > value {
                    throw fail(r, .users, "\(r.users) users with data, more than the \(value) assigned_users of variant \"\(v)\" (\(place(first)))")
                }
            }
            assigned.append(value)
        }
        let total = assigned.reduce(0, +)
        guard total > 0 else {
            throw SummaryInputError(source: source, column: "assigned_users", message: "no users assigned to any variant: there is nothing to analyse")
        }

        // Every metric for every variant, in the same shape.
        var data: [MetricData] = []
        for (m, metric) in metrics.enumerated() {
            let present = variantNames.compactMap { v in byKey[v]?[m].map { rows[$0] } }
            guard let reference = present.first else { continue }
            for v in variantNames where byKey[v]?[m] == nil {
                throw fail(reference, .variant, "metric \"\(metric.name)\" has no row for variant \"\(v)\"; every metric needs a row for every variant")
            }
            for r in present.dropFirst() {
                if r.hasUnits != reference.hasUnits {
                    throw fail(r, .units, (r.hasUnits ? "given" : "empty") + " here but " + (reference.hasUnits ? "given" : "empty") + " on \(place(reference)) for the same metric \"\(metric.name)\"; a metric is a ratio (units) in every variant or in none")
                }
                if (r.covariate == nil) != (reference.covariate == nil) {
                    throw fail(r, .preSum, "pre-period columns " + (r.covariate == nil ? "empty" : "given") + " here but " + (reference.covariate == nil ? "empty" : "given") + " on \(place(reference)) for the same metric \"\(metric.name)\"; CUPED needs them in every variant")
                }
            }
            let zero = variantNames.map { _ in SampleMoments(n: 0, sum: 0, sumOfSquares: 0) }
            if metric.kind == .quantile {
                let estimates = present.map(\.quantile)
                data.append(MetricData(metric: metric, perVariant: variantNames.map { _ in RatioMoments() }, unitMoments: zero,
                                       quantiles: estimates.map { $0?.quantile }, quantileCounts: estimates.map { Int($0?.n ?? 0) },
                                       quantileEstimates: estimates))
            } else {
                data.append(MetricData(metric: metric, perVariant: present.map(\.moments), unitMoments: present.map { unitMoments($0, metric) },
                                       covariates: reference.covariate == nil ? nil : present.map { $0.covariate! }))
            }
        }

        var result = ExperimentData(
            experiment: chosen,
            variants: zip(variantNames, assigned).map { VariantData(name: $0, users: $1, requests: 0) },
            metrics: data, requestEvents: total, feedbackEvents: 0, firstTimestamp: nil, lastTimestamp: nil,
            dataQuality: DataQuality(usersInSeveralVariants: 0, feedbackWithMissingTarget: 0, duplicateRequestIDs: 0,
                                     otherExperiments: [], unusedFeedbackNames: []))
        result.hasEvents = false
        return result
    }
}

extension SummaryInputError: RemedyCarrying {
    /// Several experiments in one file: choose one.
    public var remedy: Remedy? {
        if case .severalExperiments = problem { return .chooseExperiment }
        return nil
    }
}
