import BakeoffCore
import Foundation

/// Whether a scorer's values are yes/no (0 or 1: compared with McNemar's test) or numbers (paired t, Wilcoxon).
public enum ScoreKind: String, Sendable {
    case binary, numeric
}

/// One answer's score, or why it has none (e.g. a reference-based scorer on a request without `reference`).
public enum ScoreOutcome: Sendable, Equatable {
    case value(Double)
    case notApplicable(String)
}

/// A scorer computed from the answer alone (and the request's reference): no model, no randomness, the same score
/// for the same text on every run. An entry of the eval config's `"scorers"` list, `{"type": ..., "name": ...,
/// options}`:
///
/// | type | score | options |
/// | --- | --- | --- |
/// | `exact_match` | 1 if the answer equals the reference | `case_sensitive` (false), `normalize` (true) |
/// | `contains` | 1 if the answer contains `text`, or without it the reference | `text`, `case_sensitive` (false) |
/// | `regex` | 1 if `pattern` matches the answer | `pattern` (required), `full_match` (false), `case_sensitive` (true) |
/// | `valid_json` | 1 if the answer is JSON | `strip_code_fence` (true) |
/// | `json_schema` | 1 if the answer is JSON valid against `schema` | `schema` (required), `strip_code_fence` (true) |
/// | `length` | the answer's length; with `min`/`max`, 1 if within them | `unit` ("words"), `min`, `max`, `goal` |
/// | `token_f1` | SQuAD v1.1 token F1 against the reference, in [0, 1] | |
/// | `rouge_l` | ROUGE-L F-measure against the reference, in [0, 1] | |
///
/// Semantics, precisely:
/// - White space is what Python's `str.split()` splits on (`TextScores.isPythonWhitespace`: Unicode white space
///   and U+001C-U+001F). Case-insensitive comparisons lower-case both sides with Swift's `lowercased()` (full
///   Unicode mappings: "É" matches "é", but "STRASSE" does not match "straße").
/// - `exact_match` with `normalize`: both texts are split on white space and joined with single spaces (which trims
///   them), then lose their trailing run of sentence punctuation and white space: `. , ; : ! ?` `…` and the
///   full-width `。 ！ ？ ， ； ：`. "  Paris. " equals "paris". Without `normalize` the texts are compared as they
///   are. Either way the comparison is Swift's `String` equality (canonical equivalence: "é" precomposed equals
///   "e" + U+0301). An empty reference is matched by an empty (or, normalized, blank) answer only.
/// - `contains`: a substring search in whole characters (grapheme clusters: "e" is not found in "é"). Without
///   `text`, the reference with its leading and trailing white space trimmed is searched for; a blank reference
///   gives "not applicable" (everything contains the empty string).
/// - `regex`: see `ScorerRegex` (Swift Regex on code points; `(?i)` and the other inline options work).
/// - `valid_json`, `json_schema`: the answer, without its leading and trailing ASCII white space, must be one JSON
///   value (RFC 8259: any value, a bare number or string included; no trailing commas, NaN or comments). With
///   `strip_code_fence`, an answer that is a Markdown code fence, "```" or "```json" (any case) alone on the first
///   line and "```" at the very end, is judged by what is inside; text around the fence is not accepted.
/// - `length`: `unit` "words" counts the runs of non-white space (Python's `len(s.split())`); "characters"
///   counts Unicode code points (Python's `len(s)`; "é" written as "e" + U+0301 is 2, an emoji with a skin tone
///   is 2). Without bounds it is numeric with no preferred direction (`higherIsBetter` nil) unless `goal` is
///   "up" or "down"; with `min` and/or `max` (whole numbers, inclusive) it is binary, 1 within the bounds.
/// - `token_f1`, `rouge_l`: see `TextScores` (the reference implementations' numbers, empty texts included: 0).
///   `rouge_l` has no stemmer (`rouge-score`'s `use_stemmer=False`).
public struct DeterministicScorer: Sendable {
    /// Unique in the config; defaults to the type's name, e.g. "exact_match".
    public var name: String
    public var check: Check
    /// Which way is better; nil for a plain length, which has no preferred direction (report the difference,
    /// declare no winner). True for every other scorer.
    public var higherIsBetter: Bool?

    public enum Check: Sendable {
        case exactMatch(caseSensitive: Bool, normalize: Bool)
        /// `text` nil: the reference.
        case contains(text: String?, caseSensitive: Bool)
        case regex(ScorerRegex)
        case validJSON(stripCodeFence: Bool)
        case jsonSchema(JSONSchema, stripCodeFence: Bool)
        case length(unit: LengthUnit, min: Int?, max: Int?)
        case tokenF1
        case rougeL

        /// The config's `"type"`.
        public var type: String {
            switch self {
            case .exactMatch: "exact_match"
            case .contains: "contains"
            case .regex: "regex"
            case .validJSON: "valid_json"
            case .jsonSchema: "json_schema"
            case .length: "length"
            case .tokenF1: "token_f1"
            case .rougeL: "rouge_l"
            }
        }
    }

    public enum LengthUnit: String, Sendable, CaseIterable {
        /// Runs of non-white space, as Python's `str.split()`.
        case words
        /// Unicode code points, as Python's `len()`.
        case characters
    }

    /// `higherIsBetter` defaults to true, nil for a length without bounds.
    public init(name: String? = nil, check: Check) {
        self.name = name ?? check.type
        self.check = check
        if case .length(_, nil, nil) = check { higherIsBetter = nil } else { higherIsBetter = true }
    }

    /// The "type" values handled here.
    public static let types: [String] = ["exact_match", "contains", "regex", "valid_json", "json_schema", "length", "token_f1", "rouge_l"]

    public var kind: ScoreKind {
        switch check {
        case .tokenF1, .rougeL: .numeric
        case .length(_, let min, let max): min == nil && max == nil ? .numeric : .binary
        default: .binary
        }
    }

    public var needsReference: Bool {
        switch check {
        case .exactMatch, .tokenF1, .rougeL: true
        case .contains(let text, _): text == nil
        default: false
        }
    }

    // MARK: Scoring

    public func score(answer: String, reference: String?) -> ScoreOutcome {
        if needsReference && reference == nil { return .notApplicable("the request has no \"reference\"") }
        func binary(_ b: Bool) -> ScoreOutcome { .value(b ? 1 : 0) }
        switch check {
        case .exactMatch(let caseSensitive, let normalize):
            let a = Self.exactMatchForm(answer, caseSensitive: caseSensitive, normalize: normalize)
            let r = Self.exactMatchForm(reference!, caseSensitive: caseSensitive, normalize: normalize)
            return binary(a == r)
        case .contains(let text, let caseSensitive):
            var needle = text ?? Self.trimmed(reference!)
            if needle.isEmpty { return .notApplicable("the reference is empty") }
            var haystack = answer
            if !caseSensitive {
                needle = needle.lowercased()
                haystack = haystack.lowercased()
            }
            return binary(haystack.firstRange(of: needle) != nil)
        case .regex(let regex):
            return binary(regex.matches(answer))
        case .validJSON(let strip):
            return binary(Self.parseJSON(answer, stripCodeFence: strip) != nil)
        case .jsonSchema(let schema, let strip):
            guard let value = Self.parseJSON(answer, stripCodeFence: strip) else { return .value(0) }
            return binary(schema.accepts(value))
        case .length(let unit, let min, let max):
            let length = unit == .words ? TextScores.pythonWordCount(answer) : answer.unicodeScalars.count
            if min == nil && max == nil { return .value(Double(length)) }
            return binary(length >= (min ?? 0) && length <= (max ?? Int.max))
        case .tokenF1:
            return .value(TextScores.squadTokenF1(prediction: answer, reference: reference!))
        case .rougeL:
            return .value(TextScores.rougeL(prediction: answer, reference: reference!))
        }
    }

    /// Sentence punctuation that `exact_match`'s normalization strips from the end.
    static let trailingPunctuation: Set<Unicode.Scalar> = [".", ",", ";", ":", "!", "?", "\u{2026}", "\u{3002}", "\u{FF01}", "\u{FF1F}", "\u{FF0C}", "\u{FF1B}", "\u{FF1A}"]

    /// What `exact_match` compares (see the type's documentation).
    static func exactMatchForm(_ text: String, caseSensitive: Bool, normalize: Bool) -> String {
        let cased = caseSensitive ? text : text.lowercased()
        guard normalize else { return cased }
        var scalars: [Unicode.Scalar] = []
        for word in TextScores.pythonSplit(Array(cased.unicodeScalars)) {
            if !scalars.isEmpty { scalars.append(" ") }
            scalars.append(contentsOf: word)
        }
        while let last = scalars.last, trailingPunctuation.contains(last) || last == " " { scalars.removeLast() }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars)
        return String(out)
    }

    static func trimmed(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.firstIndex(where: { !TextScores.isPythonWhitespace($0) }),
              let last = scalars.lastIndex(where: { !TextScores.isPythonWhitespace($0) }) else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[first...last])
        return String(out)
    }

    /// The answer as a JSON value (see the type's documentation), nil when it is not JSON.
    package static func parseJSON(_ answer: String, stripCodeFence: Bool) -> JSONValue? {
        var bytes = Array(answer.utf8)[...]
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
        while let b = bytes.first, isSpace(b) { bytes.removeFirst() }
        while let b = bytes.last, isSpace(b) { bytes.removeLast() }
        let fence: [UInt8] = Array("```".utf8)
        if stripCodeFence, bytes.starts(with: fence), let newline = bytes.firstIndex(of: 0x0A) {
            var info = bytes[(bytes.startIndex + 3)..<newline]
            while let b = info.first, isSpace(b) { info.removeFirst() }
            while let b = info.last, isSpace(b) { info.removeLast() }
            let body = bytes[(newline + 1)...]
            if info.isEmpty || info.map({ $0 | 0x20 }) == Array("json".utf8), body.count >= 3, body.suffix(3).elementsEqual(fence) {
                bytes = body.dropLast(3)
            }
        }
        return try? JSONValue.parse(Array(bytes), trailingCommas: false).root
    }

    // MARK: Configuration

    /// The option keys of each type (besides "type" and "name").
    static let options: [String: [String]] = [
        "exact_match": ["case_sensitive", "normalize"],
        "contains": ["text", "case_sensitive"],
        "regex": ["pattern", "full_match", "case_sensitive"],
        "valid_json": ["strip_code_fence"],
        "json_schema": ["schema", "strip_code_fence"],
        "length": ["unit", "min", "max", "goal"],
        "token_f1": [],
        "rouge_l": [],
    ]

    /// Parses one entry of the config's "scorers" list whose "type" is a deterministic one (`types`); unknown keys
    /// get a suggestion; errors carry the JSON path (`scorers[2].pattern`).
    package static func parse(_ object: inout ConfigObject, type: String) throws(ConfigError) -> DeterministicScorer {
        _ = object.take("type")
        guard let optionKeys = options[type] else {
            throw object.fail("type", "\"\(type)\" is not a deterministic scorer" + (closestName(type, among: types).map { "; did you mean \"\($0)\"?" } ?? "")
                              + " (types: \(types.joined(separator: ", ")))")
        }
        let name = try object.string("name")
        if name?.isEmpty == true { throw object.fail("name", "must not be empty (it names the scorer in reports)") }
        if type == "rouge_l", object["use_stemmer"] != nil {
            throw object.fail("use_stemmer", "is not supported: ROUGE-L compares the words as written, lower-cased (rouge-score's use_stemmer=False)")
        }
        let check: Check
        var higherIsBetter: Bool?? = nil
        switch type {
        case "exact_match":
            check = .exactMatch(caseSensitive: try object.bool("case_sensitive") ?? false, normalize: try object.bool("normalize") ?? true)
        case "contains":
            let text = try object.string("text")
            if text?.isEmpty == true { throw object.fail("text", "must not be empty (leave it out to look for the reference)") }
            check = .contains(text: text, caseSensitive: try object.bool("case_sensitive") ?? false)
        case "regex":
            guard let pattern = try object.string("pattern") else { throw object.fail("pattern", "is required: the regular expression the answer must match") }
            guard !pattern.isEmpty else { throw object.fail("pattern", "must not be empty (it would match every answer)") }
            let fullMatch = try object.bool("full_match") ?? false
            let caseSensitive = try object.bool("case_sensitive") ?? true
            do throws(ScorerRegex.PatternError) {
                check = .regex(try ScorerRegex(pattern: pattern, fullMatch: fullMatch, caseSensitive: caseSensitive))
            } catch {
                throw object.fail("pattern", "not a valid regular expression (Swift Regex syntax): \(error.message)")
            }
        case "valid_json":
            check = .validJSON(stripCodeFence: try object.bool("strip_code_fence") ?? true)
        case "json_schema":
            guard let schema = object.take("schema") else { throw object.fail("schema", "is required: a JSON Schema (draft 2020-12 subset) object") }
            guard schema.object != nil || schema.bool != nil else { throw object.fail("schema", "must be a JSON Schema object, got \(schema.described)") }
            let compiled = try JSONSchema.compile(schema, source: object.source, path: object.childPath("schema"))
            check = .jsonSchema(compiled, stripCodeFence: try object.bool("strip_code_fence") ?? true)
        case "length":
            let unit = try object.enumValue("unit", LengthUnit.self) ?? .words
            let min = try object.int("min"), max = try object.int("max")
            if let min, let max, min > max { throw object.fail("max", "is smaller than \"min\" (\(min))") }
            if let goal = try object.enumValue("goal", Goal.self) {
                if min != nil || max != nil {
                    throw object.fail("goal", "does not apply with \"min\"/\"max\": the score is 1 within the bounds, and higher is better")
                }
                higherIsBetter = .some(goal == Goal.none ? nil : goal == .up)
            }
            check = .length(unit: unit, min: min, max: max)
        case "token_f1":
            check = .tokenF1
        default:
            check = .rougeL
        }
        try finish(object, type: type, optionKeys: optionKeys)
        var scorer = DeterministicScorer(name: name, check: check)
        if let higherIsBetter { scorer.higherIsBetter = higherIsBetter }
        return scorer
    }

    /// Refuses keys not read, with the nearest known key as a suggestion.
    static func finish(_ object: ConfigObject, type: String, optionKeys: [String]) throws(ConfigError) {
        let unknown = object.members.keys.filter { !object.used.contains($0) }
        guard let key = unknown.first else { return }
        let known = ["type", "name"] + optionKeys
        let elsewhere = options.filter { $0.value.contains(key) }.map(\.key).sorted()
        var message = "is not an option of \(type)"
        if let guess = closestName(key, among: known) {
            message += "; did you mean \"\(guess)\"?"
        } else if !elsewhere.isEmpty {
            message += ", but of \(elsewhere.joined(separator: " and "))"
        }
        message += " (keys: \(known.joined(separator: ", ")))"
        throw object.fail(key, message)
    }
}
