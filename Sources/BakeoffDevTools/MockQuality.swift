import BakeoffCore
import BakeoffSimulation

/// The mock upstream's notion of a right answer, so that offline evals (`bakeoff eval`) can run end to end
/// without a network and with a known truth.
///
/// Every question has one correct answer, `expectedAnswer(question:)`: 3 to 6 distinct lower-case words of the
/// mock's vocabulary joined by single spaces, no punctuation, chosen from the MD5 of the question (stable across
/// runs and platforms). Every question also has a difficulty `u` in [0, 1) from another MD5 of it, the same for
/// every model. A model of quality `q` (`MockUpstream.Options.quality`) answers correctly when `u < q`, so a
/// better model answers every question a worse one does (variants are positively correlated per question, as
/// real ones are); with probability `noise` a call instead draws its outcome afresh, Bernoulli(`q`). Either way
/// P(correct) = `q` over questions: the expected rate of correct answers is exactly the model's quality.
///
/// A question is trimmed of white space (spaces, tabs, newlines) at both ends before it is hashed, so the
/// dataset's question and the one a judge prompt quotes agree.
public enum MockQuality {
    /// The correct answer to `question`: 3 to 6 distinct words, e.g. "refund label printed today".
    public static func expectedAnswer(question: String) -> String {
        answerWords(question).joined(separator: " ")
    }

    /// The answer a model gives when it gets `question` wrong: as many words as the correct one, of which one
    /// (3 or 4 words) or two (5 or 6 words) are the correct answer's words in their places, the others words the
    /// correct answer does not have. So it is never the correct answer, but token F1 and ROUGE-L give it partial
    /// credit (1/3 to 2/5). Deterministic per question.
    public static func wrongAnswer(question: String) -> String {
        let correct = answerWords(question)
        var rng = RandomSource(seed: hash("wrong", question).high)
        let kept = correct.count <= 4 ? 1 : 2
        var positions = Array(correct.indices)
        shuffle(&positions, prefix: kept, &rng)
        let keep = Set(positions.prefix(kept))
        var others = answerVocabulary.filter { !correct.contains($0) }
        shuffle(&others, prefix: correct.count, &rng)
        var next = 0
        var words: [String] = []
        for i in correct.indices {
            if keep.contains(i) {
                words.append(correct[i])
            } else {
                words.append(others[next])
                next += 1
            }
        }
        return words.joined(separator: " ")
    }

    /// The question's difficulty: uniform in [0, 1) over questions, from its hash; the same for every model.
    public static func difficulty(question: String) -> Double {
        Double(hash("difficulty", question).high >> 11) * 0x1.0p-53
    }

    /// Whether a model of `quality` answers `question` correctly on a call: `difficulty < quality`, except that
    /// with probability `noise` the outcome is a fresh Bernoulli(`quality`) draw. Draws from `rng` only when
    /// `noise` > 0 (one draw, and a second when the outcome is redrawn).
    public static func isCorrect(question: String, quality: Double, noise: Double = 0,
                                 rng: inout RandomSource) -> Bool {
        if noise > 0 && rng.uniform() < noise {
            return rng.uniform() < quality
        }
        return difficulty(question: question) < quality
    }

    /// The reply of a model of `quality` to `question`: the expected answer when correct, else the wrong one.
    public static func answer(question: String, quality: Double, noise: Double = 0, rng: inout RandomSource) -> String {
        isCorrect(question: question, quality: quality, noise: noise, rng: &rng)
            ? expectedAnswer(question: question) : wrongAnswer(question: question)
    }

    /// Whether `answer` (trimmed of white space at both ends) is `question`'s expected answer, the judge's rule.
    public static func isGood(answer: String, question: String) -> Bool {
        trimmed(answer) == expectedAnswer(question: question)
    }

    /// The words answers are made of: the mock's vocabulary without its function words (so normalizing scorers
    /// that drop articles see the same words).
    public static let answerVocabulary: [String] = {
        let function: Set<String> = ["the", "a", "is", "and", "to", "in", "for", "with", "you", "your", "we", "can",
                                     "are", "our", "will", "here"]
        return mockVocabulary.filter { !function.contains($0) }
    }()

    // MARK: - Internals

    static func answerWords(_ question: String) -> [String] {
        let digest = hash("answer", question)
        var rng = RandomSource(seed: digest.high)
        let count = 3 + Int(digest.low % 4)
        var words = answerVocabulary
        shuffle(&words, prefix: count, &rng)
        return Array(words.prefix(count))
    }

    /// A partial Fisher-Yates shuffle: the first `prefix` elements become a uniform random draw without
    /// replacement.
    static func shuffle<T>(_ items: inout [T], prefix: Int, _ rng: inout RandomSource) {
        for i in 0..<min(prefix, items.count) {
            let j = i + rng.int(below: items.count - i)
            items.swapAt(i, j)
        }
    }

    /// MD5 of "bakeoff-mock/PURPOSE\n" + the trimmed question (separate streams for answer, difficulty, ...).
    static func hash(_ purpose: String, _ question: String) -> MD5Digest {
        MD5.digest("bakeoff-mock/" + purpose + "\n" + trimmed(question))
    }

    static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        func space(_ u: Unicode.Scalar) -> Bool { u == " " || u == "\t" || u == "\n" || u == "\r" }
        guard let first = scalars.firstIndex(where: { !space($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !space($0) })!
        return String(scalars[first...last])
    }
}

// MARK: - Datasets

extension MockQuality {
    /// One request of a generated dataset.
    public struct DatasetItem: Sendable, Equatable {
        public var id: String
        public var question: String
        /// `expectedAnswer(question:)`.
        public var reference: String
        public var topic: String

        /// Its JSON Lines line (without the newline), as `EvalDataset` reads it:
        /// `{"id":...,"messages":[{"role":"user","content":...}],"reference":...,"metadata":{"topic":...}}`.
        public var jsonLine: String {
            "{\"id\":\(JSONWriter.quote(id)),\"messages\":[{\"role\":\"user\",\"content\":\(JSONWriter.quote(question))}],"
                + "\"reference\":\(JSONWriter.quote(reference)),\"metadata\":{\"topic\":\(JSONWriter.quote(topic))}}"
        }
    }

    /// The topics with their own question templates.
    public static let builtInTopics = ["billing", "shipping", "account", "returns", "technical"]

    /// `size` support-bot questions (unique texts, ids "q-0001", ...), each with a topic drawn from `topics`
    /// (built-in names get their own templates, other names generic ones) and its expected answer as the
    /// reference. The same seed and topics give the same items.
    public static func datasetItems(size: Int, seed: UInt64 = 1, topics: [String] = builtInTopics) -> [DatasetItem] {
        let topics = topics.isEmpty ? builtInTopics : topics
        var rng = RandomSource(seed: seed ^ 0x6D6F_636B_6461_7461)  // "mockdata"
        let width = max(4, String(size).count)
        var seen = Set<String>()
        var items: [DatasetItem] = []
        items.reserveCapacity(max(0, size))
        for i in 0..<max(0, size) {
            let topic = topics[rng.int(below: topics.count)]
            var question = ""
            var attempts = 0
            repeat {
                question = makeQuestion(topic: topic, &rng)
                attempts += 1
            } while seen.contains(question) && attempts < 50
            if seen.contains(question) { question += " (case \(i + 1))" }
            seen.insert(question)
            let number = String(i + 1)
            let id = "q-" + String(repeating: "0", count: max(0, width - number.count)) + number
            items.append(DatasetItem(id: id, question: question, reference: expectedAnswer(question: question), topic: topic))
        }
        return items
    }

    /// `datasetItems` as JSON Lines lines (without newlines).
    public static func dataset(size: Int, seed: UInt64 = 1, topics: [String] = builtInTopics) -> [String] {
        datasetItems(size: size, seed: seed, topics: topics).map(\.jsonLine)
    }

    static func makeQuestion(topic: String, _ rng: inout RandomSource) -> String {
        func pick(_ list: [String]) -> String { list[rng.int(below: list.count)] }
        let templates = questionTemplates[topic] ?? genericTemplates
        // One pass, left to right, each placeholder with its own draw (a topic's text is not expanded again).
        var text = ""
        var rest = Substring(pick(templates))
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            text += rest[..<open]
            switch rest[rest.index(after: open)..<close] {
            case "topic": text += topic
            case "n": text += String(10_000 + rng.int(below: 90_000))
            case "4": text += String(1_000 + rng.int(below: 9_000))
            case "k": text += String(2 + rng.int(below: 59))
            case "day": text += pick(days)
            case "place": text += pick(places)
            case "item": text += pick(items)
            case "device": text += pick(devices)
            case "email": text += "user\(rng.int(below: 100_000))@example.com"
            default: text += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return text + rest
    }

    static let questionTemplates: [String: [String]] = [
        "billing": [
            "Why was my card charged twice for order #{n}?",
            "How do I update the payment card ending in {4} on my account?",
            "Can you send a copy of invoice #{n} to {email}?",
            "My payment for order #{n} failed {day}. What should I do?",
            "When will the refund for order #{n} appear on my statement?",
            "I was billed for a subscription I cancelled {day}, reference #{n}. Can you fix it?",
        ],
        "shipping": [
            "Where is my order #{n}? It was due {day}.",
            "Can I change the delivery address for order #{n}?",
            "How long does shipping to {place} usually take for order #{n}?",
            "My package for order #{n} shows delivered but I never got it.",
            "Do you offer express delivery to {place} for a {item}?",
            "The tracking number for order #{n} has not updated since {day}. Is it lost?",
        ],
        "account": [
            "How do I reset my password? The link sent to {email} expired.",
            "I cannot log in to my account since {day}. Can you help? My customer number is {n}.",
            "How do I change the email on my account to {email}?",
            "Can I merge my two accounts, customer numbers {n} and {4}?",
            "How do I delete my account and my data? Customer number {n}.",
            "Why was my account {n} locked {day}?",
        ],
        "returns": [
            "How do I return the {item} from order #{n}?",
            "Is a return label included for order #{n}?",
            "Can I exchange the {item} from order #{n} for a different size?",
            "What is your return policy for a {item} bought {k} days ago?",
            "I sent back order #{n} {day}. When do I get my money back?",
            "The {item} in order #{n} arrived broken. Can I return it?",
        ],
        "technical": [
            "The app crashes when I open settings on my {device}. How do I fix it?",
            "Why does the app on my {device} not show order #{n}?",
            "How do I turn on two-factor login on my {device}?",
            "I get error {4} when I check out on my {device}. What does it mean?",
            "Notifications for order #{n} stopped on my {device} {day}. Why?",
            "The website logs me out every {k} minutes on my {device}. Is that a bug?",
        ],
    ]

    static let genericTemplates = [
        "I have a question about {topic} for order #{n}: what are my options?",
        "Who can help me with {topic}? My customer number is {n}.",
        "How long does it take to sort out a {topic} issue opened {day}, case #{n}?",
        "Is there a fee for {topic} on order #{n}?",
        "What do I need to send you about {topic} for order #{n}?",
    ]

    static let days = ["yesterday", "today", "on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday",
                       "last week", "two days ago"]
    static let places = ["Canada", "Germany", "Japan", "Brazil", "Australia", "Spain", "Kenya", "Norway", "Chile"]
    static let items = ["jacket", "pair of shoes", "backpack", "lamp", "phone case", "blender", "desk chair", "watch"]
    static let devices = ["iPhone", "Android phone", "iPad", "laptop", "Windows PC", "Mac", "tablet"]
}
