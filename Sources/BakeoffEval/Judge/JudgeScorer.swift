import BakeoffCore

/// A scorer that asks a model: pairwise (which of two answers is better, asked in both orders) or pointwise
/// (a yes/no criterion or a rating of one answer).
///
/// The default templates are MT-Bench's (Zheng et al. 2023), whose verdict formats (`[[A]]`, `[[B]]`,
/// `[[C]]`; `Rating: [[5]]`) most judge models have seen; a config may replace them.
public struct JudgeScorer: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        case pairwise
        case pointwise(JudgeScale)
    }

    public enum JudgeScale: Sendable, Equatable {
        /// The answer meets the rubric (1) or not (0).
        case yesNo
        /// A rating from 1 to `max`.
        case rating(max: Int)
    }

    public var name: String
    public var mode: Mode
    public var template: JudgeTemplate
    /// The request's `reference` is shown to the judge (requests without one are judged without it).
    public var useReference: Bool
    /// What a pointwise judge checks (in the default templates).
    public var rubric: String

    public var isPairwise: Bool { mode == .pairwise }

    public init(name: String, mode: Mode, template: JudgeTemplate? = nil, useReference: Bool = false, rubric: String? = nil) {
        self.name = name
        self.mode = mode
        self.useReference = useReference
        self.rubric = rubric ?? JudgeTemplate.defaultRubric
        self.template = template ?? JudgeTemplate.standard(for: mode)
    }

    /// The judge's messages for a pairwise comparison (`answerA` shown first).
    public func pairwisePrompt(question: String, answerA: String, answerB: String, reference: String?) -> JudgePrompt {
        template.render(["question": question, "answer_a": answerA, "answer_b": answerB,
                         "reference": reference ?? "", "rubric": rubric],
                        withReference: useReference && reference != nil)
    }

    /// The judge's messages for one answer.
    public func pointwisePrompt(question: String, answer: String, reference: String?) -> JudgePrompt {
        template.render(["question": question, "answer": answer, "reference": reference ?? "", "rubric": rubric],
                        withReference: useReference && reference != nil)
    }

    /// What a pairwise judge decided, from its answer: the last verdict marker in it (the final verdict comes
    /// after the explanation, which may quote the format); nil when there is none.
    public static func pairwiseVerdict(_ text: String) -> PairwiseVerdict? {
        var best: (index: String.Index, verdict: PairwiseVerdict)?
        for (marker, verdict) in [("[[A]]", PairwiseVerdict.first), ("[[B]]", .second), ("[[C]]", .tie)] {
            if let r = text.range(of: marker, options: .backwards), best == nil || r.lowerBound > best!.index {
                best = (r.lowerBound, verdict)
            }
        }
        return best?.verdict
    }

    /// A pointwise judge's score: 1 or 0 for yes/no, the rating for a scale; nil when its answer has none in range.
    public func pointwiseScore(_ text: String) -> Double? {
        guard case .pointwise(let scale) = mode else { return nil }
        switch scale {
        case .yesNo:
            let upper = text.uppercased()
            let yes = upper.range(of: "[[YES]]", options: .backwards)?.lowerBound
            let no = upper.range(of: "[[NO]]", options: .backwards)?.lowerBound
            switch (yes, no) {
            case (let y?, let n?): return y > n ? 1 : 0
            case (_?, nil): return 1
            case (nil, _?): return 0
            case (nil, nil): return nil
            }
        case .rating(let max):
            // The last [[n]] (MT-Bench's format), else "Rating: n".
            let bytes = Array(text.utf8)
            var found: Double?
            var i = 0
            while i + 1 < bytes.count {
                if bytes[i] == UInt8(ascii: "["), bytes[i + 1] == UInt8(ascii: "[") {
                    var j = i + 2
                    while j < bytes.count, bytes[j] == UInt8(ascii: " ") { j += 1 }
                    let start = j
                    while j < bytes.count, (bytes[j] >= 0x30 && bytes[j] <= 0x39) || bytes[j] == UInt8(ascii: ".") { j += 1 }
                    let end = j
                    while j < bytes.count, bytes[j] == UInt8(ascii: " ") { j += 1 }
                    if end > start, j + 1 < bytes.count, bytes[j] == UInt8(ascii: "]"), bytes[j + 1] == UInt8(ascii: "]"),
                       let v = Double(String(decoding: bytes[start..<end], as: UTF8.self)) {
                        found = v
                    }
                }
                i += 1
            }
            if found == nil, let r = text.range(of: "Rating:", options: [.backwards, .caseInsensitive]) {
                let rest = text[r.upperBound...].drop { $0 == " " }
                let digits = rest.prefix { $0.isNumber || $0 == "." }
                found = Double(digits)
            }
            guard let v = found, v >= 1, v <= Double(max) else { return nil }
            return v
        }
    }

    static let keys = ["type", "name", "template", "use_reference", "rubric", "scale"]

    /// `{"type": "judge_pairwise"}`, `{"type": "judge_pointwise", "scale": "1-5", "rubric": "..."}`.
    static func parse(_ o: inout ConfigObject, type: String) throws(ConfigError) -> JudgeScorer {
        let name = try o.string("name") ?? type
        let mode: Mode
        if type == "judge_pairwise" {
            if o["scale"] != nil { throw o.fail("scale", "a pairwise judge picks the better answer; a \"scale\" is for \"judge_pointwise\"") }
            mode = .pairwise
        } else {
            switch try o.string("scale") ?? "yes_no" {
            case "yes_no": mode = .pointwise(.yesNo)
            case "1-5": mode = .pointwise(.rating(max: 5))
            case "1-10": mode = .pointwise(.rating(max: 10))
            case let other: throw o.fail("scale", "\(JSONWriter.quote(other)) is not a scale; use \"yes_no\", \"1-5\" or \"1-10\"")
            }
        }
        let useReference = try o.bool("use_reference") ?? false
        let rubric = try o.string("rubric")
        if let rubric, rubric.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw o.fail("rubric", "must not be empty") }
        var template: JudgeTemplate?
        if var t = try o.object("template") {
            template = try JudgeTemplate.parse(&t, mode: mode)
        }
        try o.finishWithSuggestion(keys)
        return JudgeScorer(name: name, mode: mode, template: template, useReference: useReference, rubric: rubric)
    }
}

/// Which answer a pairwise judge preferred, by position.
public enum PairwiseVerdict: String, Sendable, Equatable {
    case first = "A", second = "B", tie = "C"
}

/// The messages a judge is sent.
public struct JudgePrompt: Sendable, Equatable {
    public var system: String
    public var user: String
}

/// A judge's system and user messages with `{placeholders}`: `{question}`, `{answer_a}`, `{answer_b}`
/// (pairwise), `{answer}` (pointwise), `{reference}`, `{rubric}`. `{{` and `}}` are literal braces. A
/// `[[reference]] ... [[/reference]]` block is kept only when the reference is shown.
public struct JudgeTemplate: Sendable, Equatable {
    public var system: String
    public var user: String

    public init(system: String, user: String) {
        self.system = system
        self.user = user
    }

    static let defaultRubric = "The response answers the user's question correctly and helpfully."

    /// MT-Bench's templates (pair-v2, single-v1), with an optional reference block as in its reference-guided ones.
    public static func standard(for mode: JudgeScorer.Mode) -> JudgeTemplate {
        let reference = "[[reference]][The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n[[/reference]]"
        switch mode {
        case .pairwise:
            return JudgeTemplate(
                system: "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.",
                user: "[User Question]\n{question}\n\n" + reference + "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]")
        case .pointwise(.yesNo):
            return JudgeTemplate(
                system: "You are a helpful assistant.",
                user: "[Instruction]\nPlease act as an impartial judge and decide whether the response provided by an AI assistant to the user question displayed below meets this criterion: {rubric}\nBegin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must give your verdict by strictly following this format: \"[[YES]]\" if the response meets the criterion, \"[[NO]]\" if it does not.\n\n[Question]\n{question}\n\n" + reference + "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")
        case .pointwise(.rating(let max)):
            return JudgeTemplate(
                system: "You are a helpful assistant.",
                user: "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Criterion: {rubric}\nBegin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to \(max) by strictly following this format: \"[[rating]]\", for example: \"Rating: [[\(max / 2 + 1)]]\".\n\n[Question]\n{question}\n\n" + reference + "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")
        }
    }

    /// Fills in the placeholders in one pass (a value that contains `{answer_b}` stays as it is).
    func render(_ values: [String: String], withReference: Bool) -> JudgePrompt {
        JudgePrompt(system: Self.fill(system, values, withReference), user: Self.fill(user, values, withReference))
    }

    private static func fill(_ text: String, _ values: [String: String], _ withReference: Bool) -> String {
        var out = ""
        var rest = Substring(text)
        while let i = rest.firstIndex(where: { $0 == "{" || $0 == "}" || $0 == "[" }) {
            out += rest[..<i]
            rest = rest[i...]
            if rest.hasPrefix("{{") { out += "{"; rest = rest.dropFirst(2); continue }
            if rest.hasPrefix("}}") { out += "}"; rest = rest.dropFirst(2); continue }
            if rest.hasPrefix("[[reference]]") {
                rest = rest.dropFirst("[[reference]]".count)
                if !withReference, let end = rest.range(of: "[[/reference]]") { rest = rest[end.upperBound...] }
                continue
            }
            if rest.hasPrefix("[[/reference]]") { rest = rest.dropFirst("[[/reference]]".count); continue }
            if rest.first == "{", let close = rest.firstIndex(of: "}"), let value = values[String(rest[rest.index(after: rest.startIndex)..<close])] {
                out += value
                rest = rest[rest.index(after: close)...]
                continue
            }
            out.append(rest.first!)
            rest = rest.dropFirst()
        }
        out += rest
        return out
    }

    /// The `{name}` placeholders a template text uses (after `{{` escapes).
    static func names(in text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let i = rest.firstIndex(of: "{") {
            rest = rest[i...]
            if rest.hasPrefix("{{") { rest = rest.dropFirst(2); continue }
            guard let close = rest.firstIndex(of: "}") else { break }
            let name = rest[rest.index(after: rest.startIndex)..<close]
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0 == "_" || $0.isNumber }) { out.append(String(name)) }
            rest = rest[rest.index(after: close)...]
        }
        return out
    }

    static func parse(_ t: inout ConfigObject, mode: JudgeScorer.Mode) throws(ConfigError) -> JudgeTemplate {
        let standard = standard(for: mode)
        let system = try t.string("system") ?? standard.system
        let user = try t.string("user") ?? standard.user
        try t.finishWithSuggestion(["system", "user"])
        let allowed = mode == .pairwise ? ["question", "answer_a", "answer_b", "reference", "rubric"] : ["question", "answer", "reference", "rubric"]
        for (key, text) in [("system", system), ("user", user)] {
            for name in names(in: text) where !allowed.contains(name) {
                var message = "{\(name)} is not a placeholder here (placeholders: \(allowed.map { "{\($0)}" }.joined(separator: ", ")); write {{ and }} for literal braces)"
                if let guess = closestName(name, among: allowed) { message = "{\(name)}: did you mean {\(guess)}? " + message }
                throw t.fail(key, message)
            }
        }
        let used = Set(names(in: system) + names(in: user))
        let required = mode == .pairwise ? ["question", "answer_a", "answer_b"] : ["question", "answer"]
        for name in required where !used.contains(name) {
            throw t.fail("user", "the template never shows {\(name)}; the judge needs it")
        }
        return JudgeTemplate(system: system, user: user)
    }
}

/// One scorer of an eval: deterministic (computed from the answer) or a judge.
public enum EvalScorer: Sendable {
    case deterministic(DeterministicScorer)
    case judge(JudgeScorer)

    public var name: String {
        switch self {
        case .deterministic(let s): return s.name
        case .judge(let j): return j.name
        }
    }

    public var isPairwise: Bool {
        if case .judge(let j) = self { return j.isPairwise }
        return false
    }

    /// Whether values are yes/no (McNemar) or numbers (paired t, Wilcoxon); nil for pairwise verdicts.
    public var kind: ScoreKind? {
        switch self {
        case .deterministic(let s): return s.kind
        case .judge(let j):
            switch j.mode {
            case .pairwise: return nil
            case .pointwise(.yesNo): return .binary
            case .pointwise(.rating): return .numeric
            }
        }
    }

    /// +1 when higher is better, -1 when lower is, nil when neither (plain length).
    public var direction: Int? {
        switch self {
        case .deterministic(let s): return s.higherIsBetter.map { $0 ? 1 : -1 }
        case .judge: return 1
        }
    }

    public static var types: [String] { ["judge_pairwise", "judge_pointwise"] + DeterministicScorer.types }

    static func parse(_ o: inout ConfigObject) throws(ConfigError) -> EvalScorer {
        guard let type = try o.string("type") else {
            throw o.fail("type", "each scorer needs a \"type\": one of \(types.joined(separator: ", "))")
        }
        if type == "judge_pairwise" || type == "judge_pointwise" { return .judge(try JudgeScorer.parse(&o, type: type)) }
        guard DeterministicScorer.types.contains(type) else {
            var message = "\(JSONWriter.quote(type)) is not a scorer type"
            if let guess = closestName(type, among: types) { message += "; did you mean \"\(guess)\"?" }
            throw o.fail("type", message + " (types: \(types.joined(separator: ", ")))")
        }
        return .deterministic(try DeterministicScorer.parse(&o, type: type))
    }
}
