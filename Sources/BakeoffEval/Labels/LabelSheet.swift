import BakeoffCore
import Foundation

/// What a labeler writes in the sheet's `label` column: which side's answer is better, or neither.
///
/// Accepted spellings, any case, spaces around ignored: `left` or `l`, `right` or `r`, `tie` or `t`. Nothing
/// else: `a`/`b`/`c` (MT-Bench's letters) and words such as "both" are refused, since the sheet names the sides
/// Left and Right and a guess at what a labeler meant would be a label nobody gave.
public enum LabelChoice: String, Sendable, CaseIterable, Equatable {
    case left, right, tie

    /// The choice written as `text`; nil when it is not one of the accepted spellings (blank included).
    public static func parse(_ text: String) -> LabelChoice? {
        switch text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() {
        case "left", "l": return .left
        case "right", "r": return .right
        case "tie", "t": return .tie
        default: return nil
        }
    }
}

/// A human verdict on a candidate variant's answer against the control's: as the judge's per-request score,
/// win 1, tie 0.5, loss 0.
public enum LabelVerdict: String, Sendable, CaseIterable, Equatable {
    case win, tie, loss

    public var score: Double {
        switch self {
        case .win: return 1
        case .tie: return 0.5
        case .loss: return 0
        }
    }

    /// The verdict a per-request score in [0, 1] stands for: above one half a win, one half a tie, below a loss
    /// (as `WinRate` counts wins, ties and losses).
    public init(score: Double) {
        self = score > 0.5 ? .win : score < 0.5 ? .loss : .tie
    }
}

/// One item of a blind label sheet: a request and two anonymous answers, on sides chosen at random.
public struct LabelItem: Sendable, Equatable {
    /// Opaque: names the item in the sheet and the key, and says nothing of the variants or the sides.
    public var code: String
    public var question: String
    public var reference: String?
    public var left: String
    public var right: String

    public init(code: String, question: String, reference: String?, left: String, right: String) {
        self.code = code
        self.question = question
        self.reference = reference
        self.left = left
        self.right = right
    }
}

/// The secret half of a label sheet: which request each item is and which variant is on which side. It must
/// not be shown to the labelers (`bakeoff eval export-labels` writes it with mode 0600).
public struct LabelKey: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var code: String
        public var requestID: String
        /// The candidate variant's name (at export).
        public var variant: String
        /// The control's name (at export).
        public var control: String
        /// Whether the candidate's answer is on the left (the control's then on the right).
        public var variantIsLeft: Bool
        /// Where the verdict is kept in the eval cache: a hash of what makes the two answers what they are
        /// (see `bakeoff eval export-labels`); empty when the caller gave none.
        public var labelKey: String

        public init(code: String, requestID: String, variant: String, control: String, variantIsLeft: Bool, labelKey: String) {
            self.code = code
            self.requestID = requestID
            self.variant = variant
            self.control = control
            self.variantIsLeft = variantIsLeft
            self.labelKey = labelKey
        }

        public var left: String { variantIsLeft ? variant : control }
        public var right: String { variantIsLeft ? control : variant }

        /// The candidate's verdict against the control, from a labeler's choice of side.
        public func verdict(_ choice: LabelChoice) -> LabelVerdict {
            switch choice {
            case .tie: return .tie
            case .left: return variantIsLeft ? .win : .loss
            case .right: return variantIsLeft ? .loss : .win
            }
        }
    }

    /// The key file's `format`.
    public static let format = "bakeoff.labels-key/1"

    public var experiment: String
    /// The sheet's identifier (also in its HTML page).
    public var sheet: String
    public var seed: UInt64
    /// Where the requests came from (the dataset's path), for people.
    public var dataset: String?
    /// In the sheet's order.
    public var entries: [Entry]

    public init(experiment: String, sheet: String, seed: UInt64, dataset: String?, entries: [Entry]) {
        self.experiment = experiment
        self.sheet = sheet
        self.seed = seed
        self.dataset = dataset
        self.entries = entries
    }

    /// The entry of an item code (codes are matched without regard to case: a spreadsheet may change it).
    public func entry(code: String) -> Entry? {
        let code = code.trimmingCharacters(in: .whitespaces).lowercased()
        return entries.first { $0.code == code }
    }

    /// The key as JSON (`bakeoff.labels-key/1`):
    ///
    ///     {"format": "bakeoff.labels-key/1", "experiment": "support", "sheet": "8c1f...", "seed": "42",
    ///      "dataset": "requests.jsonl",
    ///      "items": [{"item": "i7k2m9q3xz", "request": "q-0001", "variant": "treatment", "control": "control",
    ///                 "left": "treatment", "right": "control", "label_key": "5e0b..."}, ...]}
    ///
    /// `seed` is a string (a 64-bit number does not fit a JSON double); `left`/`right` are the variants' names.
    public func json() -> String {
        var s = "{\n  \"format\": \(JSONWriter.quote(Self.format)),\n  \"experiment\": \(JSONWriter.quote(experiment)),\n"
        s += "  \"sheet\": \(JSONWriter.quote(sheet)),\n  \"seed\": \"\(seed)\",\n"
        if let dataset { s += "  \"dataset\": \(JSONWriter.quote(dataset)),\n" }
        s += "  \"items\": ["
        for (i, e) in entries.enumerated() {
            s += i == 0 ? "\n" : ",\n"
            s += "    {\"item\": \(JSONWriter.quote(e.code)), \"request\": \(JSONWriter.quote(e.requestID)), "
            s += "\"variant\": \(JSONWriter.quote(e.variant)), \"control\": \(JSONWriter.quote(e.control)), "
            s += "\"left\": \(JSONWriter.quote(e.left)), \"right\": \(JSONWriter.quote(e.right)), \"label_key\": \(JSONWriter.quote(e.labelKey))}"
        }
        s += entries.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return s
    }

    /// Reads a key written by `json()`.
    public static func parse(_ bytes: [UInt8], source: String) throws(LabelError) -> LabelKey {
        func fail(_ message: String, line: Int? = nil) -> LabelError { LabelError(source: source, line: line, message: message) }
        let document: JSONDocument
        do throws(JSONSyntaxError) { document = try JSONValue.parse(bytes, trailingCommas: false) } catch {
            throw fail("not a label key: not valid JSON (\(error.position): \(error.message))")
        }
        guard let root = document.root.object else { throw fail("not a label key: a JSON object was expected") }
        guard root["format"]?.string == format else {
            throw fail("not a label key: \"format\" must be \"\(format)\" (the labels.key.json that bakeoff eval export-labels wrote)")
        }
        guard let experiment = root["experiment"]?.string, let sheet = root["sheet"]?.string,
              let seedText = root["seed"]?.string, let seed = UInt64(seedText) else {
            throw fail("the label key lacks \"experiment\", \"sheet\" or \"seed\"")
        }
        guard let list = root["items"]?.array else { throw fail("the label key lacks its \"items\"") }
        var entries: [Entry] = []
        var seen: Set<String> = []
        for value in list {
            guard let o = value.object, let code = o["item"]?.string, let request = o["request"]?.string,
                  let variant = o["variant"]?.string, let control = o["control"]?.string,
                  let left = o["left"]?.string, let right = o["right"]?.string, let labelKey = o["label_key"]?.string,
                  (left == variant && right == control) || (left == control && right == variant), variant != control else {
                throw fail("an item of the label key lacks one of item, request, variant, control, left, right, label_key, or its sides are not its variant and control", line: value.line)
            }
            guard seen.insert(code).inserted else { throw fail("item \(code) appears twice in the label key", line: value.line) }
            entries.append(Entry(code: code, requestID: request, variant: variant, control: control, variantIsLeft: left == variant, labelKey: labelKey))
        }
        return LabelKey(experiment: experiment, sheet: sheet, seed: seed, dataset: root["dataset"]?.string, entries: entries)
    }
}

/// A label file or key that cannot be used: where (line, column) and why.
public struct LabelError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    /// 1-based line where the record starts; nil for problems of the whole file.
    public var line: Int?
    public var column: String?
    public var message: String

    public init(source: String, line: Int? = nil, column: String? = nil, message: String) {
        self.source = source
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        source + (line.map { ":\($0)" } ?? "") + ": " + (column.map { "column \"\($0)\": " } ?? "") + message
    }
}

/// A blind side-by-side label sheet: for each request (its first repetition) and each candidate variant, the
/// candidate's and the control's answers on sides drawn at random per item, under an opaque item code, in an
/// order shuffled from the seed; and the key that undoes it.
///
/// Everything follows from the seed: the same observations and seed give the same codes, sides and order. An
/// item's code and sides depend only on the seed, its request id and the variant, so a sheet of the first N
/// requests agrees with a larger one on the items they share.
public struct LabelSheet: Sendable {
    /// The sheet's identifier: a hash of the seed and the item codes.
    public var id: String
    public var items: [LabelItem]
    public var key: LabelKey
    /// Pairs left out because the variant or the control has no answer to the request.
    public var missingAnswers: Int

    /// The sheet of an eval's answers. `labelKey` gives the cache key of a request's pair (the request, the
    /// candidate's name, the control's name); by default "request/variant/control".
    public static func build(_ o: EvalObservations, experiment: String, dataset: String? = nil, seed: UInt64,
                             labelKey: (EvalItem, String, String) -> String = { "\($0.id)/\($1)/\($2)" }) -> LabelSheet {
        let k = o.variants.count
        var firstAnswer = [String?](repeating: nil, count: o.items.count * k)
        for a in o.answers where a.repetition == 0 && a.ok && firstAnswer[a.item * k + a.variant] == nil {
            firstAnswer[a.item * k + a.variant] = a.text
        }
        let control = o.variants[o.control]
        var items: [LabelItem] = []
        var entries: [LabelKey.Entry] = []
        var codes: Set<String> = []
        var missing = 0
        for (i, item) in o.items.enumerated() {
            for v in 0..<k where v != o.control {
                guard let candidateAnswer = firstAnswer[i * k + v], let controlAnswer = firstAnswer[i * k + o.control] else {
                    missing += 1
                    continue
                }
                let name = o.variants[v]
                var codeRandom = LabelRandom(seed: seed, parts: ["code", item.id, name])
                var code = codeRandom.code()
                while !codes.insert(code).inserted { code = codeRandom.code() }
                var sideRandom = LabelRandom(seed: seed, parts: ["side", item.id, name])
                let variantIsLeft = sideRandom.next() >> 63 == 0
                items.append(LabelItem(code: code, question: item.judgeQuestion, reference: item.reference,
                                       left: variantIsLeft ? candidateAnswer : controlAnswer,
                                       right: variantIsLeft ? controlAnswer : candidateAnswer))
                entries.append(LabelKey.Entry(code: code, requestID: item.id, variant: name, control: control,
                                              variantIsLeft: variantIsLeft, labelKey: labelKey(item, name, control)))
            }
        }
        // The labelers' order: shuffled (Fisher-Yates), so neighbouring items do not give a variant away.
        var order = Array(items.indices)
        var shuffle = LabelRandom(seed: seed, parts: ["order"])
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(shuffle.next() % UInt64(i + 1)))
            }
        }
        items = order.map { items[$0] }
        entries = order.map { entries[$0] }
        var idHash = LabelRandom(seed: seed, parts: ["sheet"] + items.map(\.code))
        let id = String(idHash.next(), radix: 16)
        let key = LabelKey(experiment: experiment, sheet: id, seed: seed, dataset: dataset, entries: entries)
        return LabelSheet(id: id, items: items, key: key, missingAnswers: missing)
    }
}

/// SplitMix64 seeded by the sheet's seed and an FNV-1a hash of some strings: deterministic draws per item.
/// (Blinding needs no cryptography: the labelers do not have the seed.)
struct LabelRandom {
    private var generator: SplitMix64

    init(seed: UInt64, parts: [String]) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for b in part.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0xff) &* 0x100_0000_01b3  // a separator no UTF-8 text holds
        }
        generator = SplitMix64(seed: seed ^ h)
    }

    mutating func next() -> UInt64 { generator.next() }

    /// "i" and nine characters of Crockford's base 32 (lower case, no i, l, o, u): 45 bits, and nothing a
    /// spreadsheet takes for a number or a date.
    mutating func code() -> String {
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        var x = next()
        var s = "i"
        for _ in 0..<9 {
            s.append(alphabet[Int(x & 31)])
            x >>= 5
        }
        return s
    }
}
