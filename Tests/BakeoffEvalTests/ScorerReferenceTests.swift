import BakeoffEval
import BakeoffCore
import Foundation
import Testing

/// Reference values from Python, written by scripts/reference/scorer_fixtures.py (SQuAD v1.1's evaluation
/// functions, rouge-score, jsonschema's Draft202012Validator, re).
struct ScorerFixtures: Decodable {
    struct TextPair: Decodable {
        var answer: String
        var reference: String
        var tokenF1: Double
        var squadTokens: [String]
        var rougeL: Double
        var rougeTokens: [String]
        var words: Int
        var characters: Int
    }

    struct SchemaCase: Decodable {
        var schema: String
        var instance: String
        var valid: Bool
    }

    struct RegexCase: Decodable {
        var pattern: String
        var text: String
        var search: Bool
        var fullMatch: Bool
    }

    var generator: String
    var textPairs: [TextPair]
    var jsonSchema: [SchemaCase]
    var regex: [RegexCase]

    static let shared: ScorerFixtures = {
        guard let url = Bundle.module.url(forResource: "scorers", withExtension: "json", subdirectory: "Fixtures") else {
            fatalError("missing fixture scorers.json")
        }
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(ScorerFixtures.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot decode scorers.json: \(error)")
        }
    }()
}

/// Builds a scorer from the JSON text of its config entry.
func scorer(_ json: String, source: String = "eval.json") throws(ConfigError) -> DeterministicScorer {
    var root = try ConfigObject.parse(Data(json.utf8), source: source)
    let type = try root.string("type") ?? ""
    return try DeterministicScorer.parse(&root, type: type)
}

@Suite("Deterministic scorers against their Python references")
struct ScorerReferenceTests {
    static let fixtures = ScorerFixtures.shared

    /// Python's strings as arrays of code points (Swift's `==` would equate canonically equivalent strings).
    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    @Test func fixturesAreThere() {
        #expect(Self.fixtures.textPairs.count >= 300)
        #expect(Self.fixtures.jsonSchema.count >= 200)
        #expect(Self.fixtures.regex.count >= 100)
    }

    @Test func squadTokenF1MatchesTheOfficialScript() throws {
        let f1 = try scorer(#"{"type": "token_f1"}"#)
        for pair in Self.fixtures.textPairs {
            let tokens = TextScores.squadTokens(pair.answer)
            #expect(tokens == pair.squadTokens.map(Self.scalars), "normalized \(pair.answer.debugDescription)")
            let value = f1.score(answer: pair.answer, reference: pair.reference)
            guard case .value(let v) = value else {
                Issue.record("no value for \(pair.answer.debugDescription)")
                continue
            }
            #expect(abs(v - pair.tokenF1) <= 1e-12, "token F1 of \(pair.answer.debugDescription) vs \(pair.reference.debugDescription): \(v), Python \(pair.tokenF1)")
        }
    }

    @Test func rougeLMatchesRougeScore() throws {
        let rouge = try scorer(#"{"type": "rouge_l"}"#)
        for pair in Self.fixtures.textPairs {
            let tokens = TextScores.rougeTokens(pair.answer).map { String(decoding: $0, as: UTF8.self) }
            #expect(tokens == pair.rougeTokens, "tokens of \(pair.answer.debugDescription)")
            guard case .value(let v) = rouge.score(answer: pair.answer, reference: pair.reference) else {
                Issue.record("no value for \(pair.answer.debugDescription)")
                continue
            }
            #expect(abs(v - pair.rougeL) <= 1e-12, "ROUGE-L of \(pair.answer.debugDescription) vs \(pair.reference.debugDescription): \(v), Python \(pair.rougeL)")
            // F is symmetric.
            #expect(abs(TextScores.rougeL(prediction: pair.reference, reference: pair.answer) - pair.rougeL) <= 1e-12)
        }
    }

    @Test func lengthCountsWordsAndCodePointsAsPython() throws {
        let words = try scorer(#"{"type": "length"}"#)
        let characters = try scorer(#"{"type": "length", "unit": "characters"}"#)
        for pair in Self.fixtures.textPairs {
            #expect(words.score(answer: pair.answer, reference: nil) == .value(Double(pair.words)), "words of \(pair.answer.debugDescription)")
            #expect(characters.score(answer: pair.answer, reference: nil) == .value(Double(pair.characters)), "characters of \(pair.answer.debugDescription)")
        }
    }

    @Test func jsonSchemaAgreesWithDraft202012Validator() throws {
        for c in Self.fixtures.jsonSchema {
            let s: DeterministicScorer
            do { s = try scorer(#"{"type": "json_schema", "schema": \#(c.schema)}"#) } catch {
                Issue.record("schema \(c.schema) refused: \(error)")
                continue
            }
            #expect(s.score(answer: c.instance, reference: nil) == .value(c.valid ? 1 : 0), "\(c.instance) against \(c.schema): Python says \(c.valid)")
        }
    }

    @Test func regexAgreesWithPythonOnTheCommonDialect() throws {
        for c in Self.fixtures.regex {
            let search = try ScorerRegex(pattern: c.pattern)
            let full = try ScorerRegex(pattern: c.pattern, fullMatch: true)
            #expect(search.matches(c.text) == c.search, "re.search(\(c.pattern.debugDescription), \(c.text.debugDescription))")
            #expect(full.matches(c.text) == c.fullMatch, "re.fullmatch(\(c.pattern.debugDescription), \(c.text.debugDescription))")
        }
    }

    @Test func scoringIsFastOnLongAnswers() throws {
        let words = (0..<2000).map { "word\($0 % 300)" }
        let answer = words.joined(separator: " "), reference = words.reversed().joined(separator: " ")
        let start = ContinuousClock.now
        let value = TextScores.rougeL(prediction: answer, reference: reference)
        _ = TextScores.squadTokenF1(prediction: answer, reference: reference)
        #expect(value > 0 && value < 1)
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
