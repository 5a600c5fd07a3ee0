import BakeoffCore

// TEMPORARY stand-in for the deterministic scorers being written on branch eval-scorers: replaced at merge.

public enum ScoreKind: String, Sendable { case binary, numeric }

public enum ScoreOutcome: Sendable, Equatable {
    case value(Double)
    case notApplicable(String)
}

public struct DeterministicScorer: Sendable, Equatable {
    public enum Check: Sendable, Equatable { case exactMatch }
    public var name: String
    public var check: Check
    public var kind: ScoreKind
    public var higherIsBetter: Bool?
    public var needsReference: Bool

    public func score(answer: String, reference: String?) -> ScoreOutcome {
        guard let reference else { return .notApplicable("no reference") }
        return .value(answer.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == reference.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() ? 1 : 0)
    }

    package static func parse(_ object: inout ConfigObject, type: String) throws(ConfigError) -> DeterministicScorer {
        let name = try object.string("name") ?? type
        try object.finishWithSuggestion(["type", "name"])
        return DeterministicScorer(name: name, check: .exactMatch, kind: .binary, higherIsBetter: true, needsReference: true)
    }

    public static let types = ["exact_match"]
}
