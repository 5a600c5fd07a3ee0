import BakeoffSimulation

/// The mock upstream as an LLM judge (`MockUpstream.Options.judgeModels`), for MT-Bench's judge prompts.
///
/// The parts are found by their markers in the last user message (a completions request: its prompt):
/// - pairwise: `[User Question]` (or `[Question]`) then the question, up to the next `[The Start of`; the
///   answers between `[The Start of Assistant A's Answer]` and `[The End of Assistant A's Answer]`, and the same
///   for B. A reference block (`[The Start of Reference Answer]` ...) may come between and is ignored.
/// - pointwise: `[Question]` (or `[User Question]`) and one answer between `[The Start of Assistant's Answer]`
///   and `[The End of Assistant's Answer]`.
///
/// Verdicts, from `MockQuality`: an answer is good when, trimmed, it is the question's expected answer.
/// - pairwise: one good and the other not: the good one ("[[A]]" or "[[B]]"); both good or both not: "[[C]]".
/// - pointwise, when the prompt (any message) contains both "[[YES]]" and "[[NO]]": "[[YES]]" when good, else
///   "[[NO]]".
/// - pointwise otherwise: "Rating: [[K]]" when good, else "Rating: [[max(1, 2K/5)]]" (10 -> 4, 5 -> 2), on the
///   scale 1 to K the prompt names ("scale of 1 to K", "scale from 1 to K", "scale of 1-K", "scale 1-K",
///   any message, K in 2...100), 10 when it names none.
/// Each reply is one sentence of explanation, a space, then the verdict.
///
/// Per call (draws from the mock's per-request random source, so repetitions differ): with probability
/// `garbageRate` the reply is `garbageReply`, with no verdict at all; otherwise a pairwise judge answers
/// `positionBiasReply` ("[[A]]") with probability `positionBias`, whatever the answers.
///
/// A prompt without these markers is not judged: the mock answers 400 (`invalid_request_error`) with a
/// message naming the markers it looks for, so a judge template the mock cannot read fails loudly rather than
/// as a stream of unparseable verdicts.
public enum MockJudge {
    /// What a judge prompt asks.
    public enum Task: Sendable, Equatable {
        case pairwise(question: String, a: String, b: String)
        case rating(question: String, answer: String, scale: Int)
        case yesNo(question: String, answer: String)
    }

    /// The reply without any verdict marker.
    public static let garbageReply = "I cannot compare these answers with confidence."
    /// The reply of a judge that prefers the first position.
    public static let positionBiasReply = "Assistant A's answer comes first and reads well. [[A]]"
    /// The 400 message for a prompt the mock judge cannot read.
    public static let unrecognizedMessage = "The mock judge found no MT-Bench judge prompt in the last user message: it looks for [User Question] (or [Question]) followed by [The Start of Assistant A's Answer] ... [The End of Assistant A's Answer] and the same for B (pairwise), or [The Start of Assistant's Answer] ... [The End of Assistant's Answer] (pointwise)."

    /// The task of a judge prompt: `prompt` is the last user message, `instructions` the text of every message
    /// (where the scale and the yes/no format are looked for). Nil when the markers are not there.
    public static func task(prompt: String, instructions: String) -> Task? {
        guard let question = question(in: prompt) else { return nil }
        if let a = between(prompt, "[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]"),
           let b = between(prompt, "[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]") {
            return .pairwise(question: question, a: a, b: b)
        }
        guard let answer = between(prompt, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]") else { return nil }
        let text = instructions + "\n" + prompt
        if text.contains("[[YES]]") && text.contains("[[NO]]") {
            return .yesNo(question: question, answer: answer)
        }
        return .rating(question: question, answer: answer, scale: scale(in: text))
    }

    /// The deterministic verdict reply (no position bias, no garbage).
    public static func reply(_ task: Task) -> String {
        switch task {
        case .pairwise(let question, let a, let b):
            switch (MockQuality.isGood(answer: a, question: question), MockQuality.isGood(answer: b, question: question)) {
            case (true, false): return "Assistant A's answer is the expected one and Assistant B's is not. [[A]]"
            case (false, true): return "Assistant B's answer is the expected one and Assistant A's is not. [[B]]"
            case (true, true): return "Both answers are the expected one. [[C]]"
            case (false, false): return "Neither answer is the expected one. [[C]]"
            }
        case .rating(let question, let answer, let scale):
            return MockQuality.isGood(answer: answer, question: question)
                ? "The answer is correct and complete. Rating: [[\(scale)]]"
                : "The answer is not the expected one. Rating: [[\(max(1, 2 * scale / 5))]]"
        case .yesNo(let question, let answer):
            return MockQuality.isGood(answer: answer, question: question)
                ? "The answer is correct. [[YES]]" : "The answer is not correct. [[NO]]"
        }
    }

    /// The reply to one call: garbage with probability `garbageRate`, else (pairwise) "[[A]]" with probability
    /// `positionBias`, else `reply(task)`. Draws one or two uniforms from `rng` when the rates are above 0.
    public static func reply(_ task: Task, positionBias: Double, garbageRate: Double, rng: inout RandomSource) -> String {
        if garbageRate > 0 && rng.uniform() < garbageRate { return garbageReply }
        if case .pairwise = task, positionBias > 0, rng.uniform() < positionBias { return positionBiasReply }
        return reply(task)
    }

    // MARK: - Parsing

    static func question(in prompt: String) -> String? {
        for marker in ["[User Question]", "[Question]"] {
            guard let start = prompt.firstRange(of: marker)?.upperBound else { continue }
            let rest = prompt[start...]
            let end = rest.firstRange(of: "[The Start of")?.lowerBound ?? rest.endIndex
            return MockQuality.trimmed(String(rest[..<end]))
        }
        return nil
    }

    static func between(_ text: String, _ open: String, _ close: String) -> String? {
        guard let start = text.firstRange(of: open)?.upperBound,
              let end = text[start...].firstRange(of: close)?.lowerBound else { return nil }
        return MockQuality.trimmed(String(text[start..<end]))
    }

    /// K of the first "scale of 1 to K" (and the other spellings) with K in 2...100; 10 otherwise.
    static func scale(in text: String) -> Int {
        let lower = text.lowercased()
        var best: (String.Index, Int)?
        for lead in ["scale of 1 to ", "scale from 1 to ", "scale of 1-", "scale from 1-", "scale 1 to ", "scale 1-"] {
            for range in lower.ranges(of: lead) {
                let digits = lower[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
                guard let k = Int(digits), (2...100).contains(k) else { continue }
                if best == nil || range.lowerBound < best!.0 { best = (range.lowerBound, k) }
                break
            }
        }
        return best?.1 ?? 10
    }
}
