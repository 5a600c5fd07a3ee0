import BakeoffCore
import BakeoffEval
import Foundation
import Testing

@Suite("Deterministic scorers: semantics and configuration")
struct ScorerConfigTests {
    static func value(_ config: String, _ answer: String, _ reference: String? = nil) throws -> ScoreOutcome {
        try scorer(config).score(answer: answer, reference: reference)
    }

    // MARK: Defaults

    @Test(arguments: [
        (#"{"type": "exact_match"}"#, "exact_match", ScoreKind.binary, true as Bool?, true),
        (#"{"type": "contains", "text": "refund"}"#, "contains", .binary, true, false),
        (#"{"type": "contains"}"#, "contains", .binary, true, true),
        (#"{"type": "regex", "pattern": "x"}"#, "regex", .binary, true, false),
        (#"{"type": "valid_json"}"#, "valid_json", .binary, true, false),
        (#"{"type": "json_schema", "schema": {"type": "object"}}"#, "json_schema", .binary, true, false),
        (#"{"type": "length"}"#, "length", .numeric, nil, false),
        (#"{"type": "length", "goal": "down"}"#, "length", .numeric, false, false),
        (#"{"type": "length", "goal": "up", "unit": "characters"}"#, "length", .numeric, true, false),
        (#"{"type": "length", "max": 50}"#, "length", .binary, true, false),
        (#"{"type": "token_f1", "name": "f1"}"#, "f1", .numeric, true, true),
        (#"{"type": "rouge_l"}"#, "rouge_l", .numeric, true, true),
    ])
    func kindsDirectionsAndReferences(config: String, name: String, kind: ScoreKind, higherIsBetter: Bool?, needsReference: Bool) throws {
        let s = try scorer(config)
        #expect(s.name == name)
        #expect(s.kind == kind)
        #expect(s.higherIsBetter == higherIsBetter)
        #expect(s.needsReference == needsReference)
    }

    @Test func typesAreTheEightDeterministicOnes() {
        #expect(DeterministicScorer.types == ["exact_match", "contains", "regex", "valid_json", "json_schema", "length", "token_f1", "rouge_l"])
    }

    @Test func withoutAReferenceAReferenceScorerIsNotApplicable() throws {
        for config in [#"{"type": "exact_match"}"#, #"{"type": "contains"}"#, #"{"type": "token_f1"}"#, #"{"type": "rouge_l"}"#] {
            #expect(try Self.value(config, "Paris") == .notApplicable("the request has no \"reference\""))
        }
        #expect(try Self.value(#"{"type": "contains"}"#, "Paris", " \n") == .notApplicable("the reference is empty"))
        #expect(try Self.value(#"{"type": "contains", "text": "Par"}"#, "Paris") == .value(1))
    }

    // MARK: exact_match

    @Test(arguments: [
        ("Paris", "Paris", 1.0), ("  paris. ", "Paris", 1), ("Paris!?", "PARIS", 1), ("Paris …", "paris", 1),
        ("New   York\n City", "new york city", 1), ("Paris", "Paris, France", 0), ("U.S.", "U.S", 1),
        ("\"Paris\"", "Paris", 0), ("café", "cafe\u{301}", 1), ("", "", 1), (" . ", "", 1), ("x", "", 0),
        ("東京。", "東京", 1), ("Paris.", ".Paris", 0),
    ])
    func exactMatchNormalizes(answer: String, reference: String, expected: Double) throws {
        #expect(try Self.value(#"{"type": "exact_match"}"#, answer, reference) == .value(expected))
    }

    @Test func exactMatchOptions() throws {
        let strict = #"{"type": "exact_match", "case_sensitive": true, "normalize": false}"#
        #expect(try Self.value(strict, "Paris", "Paris") == .value(1))
        #expect(try Self.value(strict, "Paris.", "Paris") == .value(0))
        #expect(try Self.value(strict, "paris", "Paris") == .value(0))
        #expect(try Self.value(strict, " Paris", "Paris") == .value(0))
        #expect(try Self.value(#"{"type": "exact_match", "case_sensitive": true}"#, " Paris. ", "Paris") == .value(1))
        #expect(try Self.value(#"{"type": "exact_match", "case_sensitive": true}"#, "paris", "Paris") == .value(0))
        #expect(try Self.value(#"{"type": "exact_match", "normalize": false}"#, "PARIS", "paris") == .value(1))
    }

    // MARK: contains

    @Test func containsSearchesWholeCharacters() throws {
        #expect(try Self.value(#"{"type": "contains"}"#, "The capital is Paris.", "paris\n") == .value(1))
        #expect(try Self.value(#"{"type": "contains", "case_sensitive": true}"#, "The capital is Paris.", "paris") == .value(0))
        #expect(try Self.value(#"{"type": "contains", "text": "e"}"#, "cafe\u{301}") == .value(0))
        #expect(try Self.value(#"{"type": "contains", "text": "é"}"#, "cafe\u{301}") == .value(1))
        #expect(try Self.value(#"{"type": "contains", "text": "REFUND"}"#, "a refund is due") == .value(1))
        #expect(try Self.value(#"{"type": "contains", "text": "refund"}"#, "") == .value(0))
    }

    // MARK: regex

    @Test func regexOptionsAndDialect() throws {
        #expect(try Self.value(#"{"type": "regex", "pattern": "\\d{3}"}"#, "order 123") == .value(1))
        #expect(try Self.value(#"{"type": "regex", "pattern": "\\d{3}", "full_match": true}"#, "order 123") == .value(0))
        #expect(try Self.value(#"{"type": "regex", "pattern": "order \\d+", "full_match": true}"#, "order 123") == .value(1))
        #expect(try Self.value(#"{"type": "regex", "pattern": "yes"}"#, "YES") == .value(0))
        #expect(try Self.value(#"{"type": "regex", "pattern": "yes", "case_sensitive": false}"#, "YES") == .value(1))
        #expect(try Self.value(#"{"type": "regex", "pattern": "(?i)yes"}"#, "YES") == .value(1))
        // Where Swift Regex differs from Python's re, as documented: $ only at the very end; \p{...} classes.
        #expect(try Self.value(#"{"type": "regex", "pattern": "done$"}"#, "done\n") == .value(0))
        #expect(try Self.value(#"{"type": "regex", "pattern": "done\\s*$"}"#, "done\n") == .value(1))
        #expect(try Self.value(#"{"type": "regex", "pattern": "^\\p{Lu}"}"#, "Élan") == .value(1))
        #expect(try Self.value(#"{"type": "regex", "pattern": "^\\p{Lu}"}"#, "élan") == .value(0))
    }

    // MARK: valid_json and code fences

    @Test(arguments: [
        (#"{"a": 1}"#, true, 1.0), ("  [1, 2]\n", true, 1), ("42", true, 1), ("\"text\"", true, 1), ("null", true, 1),
        (#"{"a": 1,}"#, true, 0), ("{'a': 1}", true, 0), ("NaN", true, 0), ("", true, 0), ("Sure! {\"a\": 1}", true, 0),
        ("```json\n{\"a\": 1}\n```", true, 1), ("```JSON\r\n{\"a\": 1}\r\n```\n", true, 1), ("```\n[1]\n```", true, 1),
        ("```json \n{\"a\": 1}```", true, 1), ("```python\n{\"a\": 1}\n```", true, 0), ("```json\n{\"a\": 1}\n```\nDone.", true, 0),
        ("Here: ```json\n{\"a\": 1}\n```", true, 0), ("```json\n```", true, 0), ("```", true, 0), ("```json {\"a\": 1}```", true, 0),
        ("```json\n{\"a\": 1}\n```", false, 0), (#"{"a": 1, "a": 2}"#, true, 1),
    ])
    func validJSON(answer: String, strip: Bool, expected: Double) throws {
        #expect(try Self.value(#"{"type": "valid_json", "strip_code_fence": \#(strip)}"#, answer) == .value(expected))
    }

    @Test func jsonSchemaStripsFencesAndFailsOnNonJSON() throws {
        let config = #"{"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}}"#
        #expect(try Self.value(config, "```json\n{\"answer\": \"yes\"}\n```") == .value(1))
        #expect(try Self.value(config, "{\"answer\": ") == .value(0))
        #expect(try Self.value(config, "{}") == .value(0))
        let noStrip = #"{"type": "json_schema", "strip_code_fence": false, "schema": {"type": "object"}}"#
        #expect(try Self.value(noStrip, "```json\n{}\n```") == .value(0))
    }

    @Test func jsonSchemaDeepRecursionAndLargeMultiples() throws {
        let schema = try JSONSchema(json: ##"{"type": ["array", "number"], "items": {"$ref": "#"}}"##)
        let deep = String(repeating: "[", count: 400) + "1" + String(repeating: "]", count: 400)
        let value = try #require(try? JSONValue.parse(Array(deep.utf8)).root)
        #expect(schema.accepts(value))
        #expect(schema.jsonText == ##"{"type":["array","number"],"items":{"$ref":"#"}}"##)
    }

    // MARK: length

    @Test func lengthBounds() throws {
        let bounded = #"{"type": "length", "min": 2, "max": 3}"#
        #expect(try Self.value(bounded, "one") == .value(0))
        #expect(try Self.value(bounded, "one two") == .value(1))
        #expect(try Self.value(bounded, " one\ttwo\nthree ") == .value(1))
        #expect(try Self.value(bounded, "one two three four") == .value(0))
        #expect(try Self.value(#"{"type": "length", "unit": "characters", "max": 2}"#, "👍🏽") == .value(1))
        #expect(try Self.value(#"{"type": "length", "unit": "characters", "max": 1}"#, "👍🏽") == .value(0))
        #expect(try Self.value(#"{"type": "length", "unit": "characters"}"#, "cafe\u{301}") == .value(5))
        #expect(try Self.value(#"{"type": "length", "min": 0}"#, "") == .value(1))
        #expect(try Self.value(#"{"type": "length"}"#, "") == .value(0))
    }

    // MARK: Text scores at the edges

    @Test func emptyTextsScoreAsTheReferencesDo() throws {
        for type in ["token_f1", "rouge_l"] {
            let config = #"{"type": "\#(type)"}"#
            #expect(try Self.value(config, "", "") == .value(0))
            #expect(try Self.value(config, "Paris", "") == .value(0))
            #expect(try Self.value(config, "", "Paris") == .value(0))
            #expect(try Self.value(config, "Paris", "paris!") == .value(1))
        }
        // Only articles and punctuation: nothing left for SQuAD, "the" still a token for ROUGE.
        #expect(try Self.value(#"{"type": "token_f1"}"#, "The.", "the") == .value(0))
        #expect(try Self.value(#"{"type": "rouge_l"}"#, "The.", "the") == .value(1))
    }

    // MARK: Configuration errors

    @Test(arguments: [
        (#"{"type": "exact_match", "case_sensitiv": true}"#, "eval.json: case_sensitiv: is not an option of exact_match; did you mean \"case_sensitive\"?"),
        (#"{"type": "exact_match", "text": "x"}"#, "eval.json: text: is not an option of exact_match, but of contains (keys: type, name, case_sensitive, normalize)"),
        (#"{"type": "token_f1", "weight": 2}"#, "eval.json: weight: is not an option of token_f1 (keys: type, name)"),
        (#"{"type": "rouge_l", "use_stemmer": true}"#, "eval.json: use_stemmer: is not supported"),
        (#"{"type": "exact_mach"}"#, "eval.json: type: \"exact_mach\" is not a deterministic scorer; did you mean \"exact_match\"?"),
        (#"{"type": "exact_match", "name": ""}"#, "eval.json: name: must not be empty"),
        (#"{"type": "exact_match", "name": 3}"#, "eval.json: name: must be a string, got 3"),
        (#"{"type": "exact_match", "normalize": "yes"}"#, "eval.json: normalize: must be true or false, got \"yes\""),
        (#"{"type": "contains", "text": ""}"#, "eval.json: text: must not be empty"),
        (#"{"type": "contains", "text": 5}"#, "eval.json: text: must be a string, got 5"),
        (#"{"type": "regex"}"#, "eval.json: pattern: is required"),
        (#"{"type": "regex", "pattern": ""}"#, "eval.json: pattern: must not be empty"),
        (#"{"type": "regex", "pattern": "(abc"}"#, "eval.json: pattern: not a valid regular expression (Swift Regex syntax): expected ')'"),
        (#"{"type": "regex", "pattern": "(?<=a)b"}"#, "eval.json: pattern: not a valid regular expression (Swift Regex syntax): lookbehind is not currently supported"),
        (#"{"type": "regex", "pattern": "a", "full_match": 1}"#, "eval.json: full_match: must be true or false, got 1"),
        (#"{"type": "valid_json", "strip_code_fences": false}"#, "eval.json: strip_code_fences: is not an option of valid_json; did you mean \"strip_code_fence\"?"),
        (#"{"type": "json_schema"}"#, "eval.json: schema: is required"),
        (#"{"type": "json_schema", "schema": "object"}"#, "eval.json: schema: must be a JSON Schema object, got \"object\""),
        (#"{"type": "length", "unit": "tokens"}"#, "eval.json: unit: \"tokens\" is not one of \"words\", \"characters\""),
        (#"{"type": "length", "min": -1}"#, "eval.json: min: must be a whole number of at least 0, got -1"),
        (#"{"type": "length", "max": 2.5}"#, "eval.json: max: must be a whole number of at least 0, got 2.5"),
        (#"{"type": "length", "min": 5, "max": 2}"#, "eval.json: max: is smaller than \"min\" (5)"),
        (#"{"type": "length", "max": 5, "goal": "down"}"#, "eval.json: goal: does not apply with \"min\"/\"max\""),
        (#"{"type": "length", "goal": "shorter"}"#, "eval.json: goal: \"shorter\" is not one of \"up\", \"down\", \"none\""),
    ])
    func configErrorsNameThePath(config: String, expected: String) {
        do {
            let s = try scorer(config)
            Issue.record("accepted: \(config) as \(s.name)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }

    @Test func errorsInsideAListCarryTheEntrysPath() throws {
        let config = #"{"scorers": [{"type": "token_f1"}, {"type": "regex", "pattern": "a{3,1}"}]}"#
        var root = try ConfigObject.parse(Data(config.utf8), source: "eval.json")
        let entries = try #require(try root.objects("scorers"))
        var first = entries[0]
        #expect(try DeterministicScorer.parse(&first, type: "token_f1").name == "token_f1")
        var second = entries[1]
        #expect {
            try DeterministicScorer.parse(&second, type: "regex")
        } throws: { error in
            (error as? ConfigError)?.description
                == "eval.json: scorers[1].pattern: not a valid regular expression (Swift Regex syntax): range lower bound '3' must be less than or equal to upper bound '1'"
        }
    }

    @Test(arguments: [
        (#"{"type": "strin"}"#, "eval.json: s.schema.type: \"strin\" is not a JSON Schema type; did you mean \"string\"?"),
        (#"{"type": ["string", "string"]}"#, "eval.json: s.schema.type[1]: \"string\" is listed twice"),
        (#"{"type": []}"#, "eval.json: s.schema.type: must not be an empty array"),
        (#"{"properties": {"a": {"format": "email"}}}"#, "eval.json: s.schema.properties.a.format: \"format\" is not supported"),
        (#"{"properties": {"a": {"patternProperties": {}}}}"#, "eval.json: s.schema.properties.a.patternProperties: the keyword \"patternProperties\" is not supported"),
        (#"{"anyOf": [{"type": "string"}, {"minLenght": 2}]}"#, "eval.json: s.schema.anyOf[1].minLenght: the keyword \"minLenght\" is not supported; did you mean \"minLength\"?"),
        (#"{"if": {"type": "string"}, "then": {}}"#, "eval.json: s.schema.if: the keyword \"if\" is not supported"),
        (#"{"items": [{"type": "string"}]}"#, "eval.json: s.schema.items: must be a schema; for a schema per position use \"prefixItems\""),
        (#"{"items": {"pattern": "(x"}}"#, "eval.json: s.schema.items.pattern: not a valid regular expression: expected ')'"),
        (#"{"minLength": -1}"#, "eval.json: s.schema.minLength: must be a whole number of at least 0, got -1"),
        (#"{"minItems": 3, "maxItems": 2}"#, "eval.json: s.schema.maxItems: is smaller than \"minItems\" (3)"),
        (#"{"multipleOf": 0}"#, "eval.json: s.schema.multipleOf: must be greater than 0"),
        (#"{"maximum": "5"}"#, "eval.json: s.schema.maximum: must be a number, got \"5\""),
        (#"{"required": ["a", 1]}"#, "eval.json: s.schema.required[1]: must be a string, got 1"),
        (#"{"required": ["a", "a"]}"#, "eval.json: s.schema.required[1]: \"a\" is listed twice"),
        (#"{"anyOf": []}"#, "eval.json: s.schema.anyOf: must be a non-empty array of schemas"),
        (#"{"not": 3}"#, "eval.json: s.schema.not: a schema must be an object or true/false, got 3"),
        (##"{"$ref": "#/$defs/missing", "$defs": {"mising": {}}}"##, "eval.json: s.schema.$ref: \"#/$defs/missing\": there is no \"missing\" in the root's \"$defs\"; did you mean \"#/$defs/mising\"?"),
        (#"{"$ref": "https://example.com/s.json"}"#, "eval.json: s.schema.$ref: \"https://example.com/s.json\" is not supported: only local references"),
        (##"{"$ref": "#/properties/a"}"##, "eval.json: s.schema.$ref: \"#/properties/a\" is not supported"),
        (#"{"properties": {"a": {"$defs": {}}}}"#, "eval.json: s.schema.properties.a.$defs: is supported at the schema's root only"),
        (##"{"$ref": "#"}"##, "eval.json: s.schema.$ref: this \"$ref\" leads back to itself"),
        (##"{"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}"##, "leads back to itself"),
        (#"{"$schema": "http://json-schema.org/draft-07/schema#"}"#, "eval.json: s.schema.$schema: only draft 2020-12 is supported"),
        (#"{"$defs": []}"#, "eval.json: s.schema.$defs: must be an object of schemas"),
        (#"{"$id": "x"}"#, "eval.json: s.schema.$id: the keyword \"$id\" is not supported"),
    ])
    func schemaErrorsNameTheKeywordAndItsPath(schema: String, expected: String) throws {
        let config = #"{"s": {"type": "json_schema", "schema": \#(schema)}}"#
        var root = try ConfigObject.parse(Data(config.utf8), source: "eval.json")
        var entry = try #require(try root.object("s"))
        do {
            _ = try DeterministicScorer.parse(&entry, type: "json_schema")
            Issue.record("accepted: \(schema)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func aRecursiveSchemaThatDescendsIsFine() throws {
        let s = try scorer(##"{"type": "json_schema", "schema": {"$defs": {"t": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/t"}}]}}, "$ref": "#/$defs/t"}}"##)
        #expect(s.score(answer: "[1, [2, [3]]]", reference: nil) == .value(1))
        #expect(s.score(answer: "[1, [2, [\"x\"]]]", reference: nil) == .value(0))
    }
}
