/// The text-overlap scores of the deterministic scorers, reimplemented to give the same numbers as their reference
/// implementations in Python (checked against them in Tests/BakeoffEvalTests/Fixtures/scorers.json):
///
/// - `squadTokenF1`: the official SQuAD v1.1 evaluation script's `f1_score(prediction, ground_truth)`.
/// - `rougeL`: Google's `rouge-score` package, `RougeScorer(["rougeL"], use_stemmer=False)`, its F-measure.
///
/// Both work on arrays of Unicode scalars, as Python works on code points: no Swift `String` indexing, and no
/// canonical equivalence ("é" precomposed and "e" + U+0301 are different tokens, as in Python).
public enum TextScores {
    // MARK: SQuAD token F1

    /// SQuAD v1.1 `f1_score`: the F1 of the bags of tokens of the normalized texts (`squadTokens`). When no token is
    /// shared, including when either text normalizes to nothing (two empty strings too), the F1 is 0, as in v1.1
    /// (SQuAD v2.0's script would give 1 to two empty texts).
    public static func squadTokenF1(prediction: String, reference: String) -> Double {
        let predicted = squadTokens(prediction), expected = squadTokens(reference)
        var counts: [[Unicode.Scalar]: Int] = [:]
        for token in expected { counts[token, default: 0] += 1 }
        var same = 0
        for token in predicted {
            if let c = counts[token], c > 0 {
                counts[token] = c - 1
                same += 1
            }
        }
        if same == 0 { return 0 }
        let precision = 1.0 * Double(same) / Double(predicted.count)
        let recall = 1.0 * Double(same) / Double(expected.count)
        return (2 * precision * recall) / (precision + recall)
    }

    /// SQuAD v1.1 `normalize_answer(s).split()`: Python's `str.lower()`; ASCII punctuation (`string.punctuation`)
    /// removed (not replaced: "don't" becomes "dont"); every whole word `a`, `an`, `the` replaced by a space (a word
    /// as Python's `re` sees `\b`: a run of letters, numbers and `_`); split on Python's white space.
    public static func squadTokens(_ text: String) -> [[Unicode.Scalar]] {
        let lowered = pythonLower(Array(text.unicodeScalars))
        let kept = lowered.filter { !($0.isASCII && isASCIIPunctuation(UInt8($0.value))) }
        var spaced: [Unicode.Scalar] = []
        spaced.reserveCapacity(kept.count)
        var i = 0
        while i < kept.count {
            guard isPythonWordCharacter(kept[i]) else {
                spaced.append(kept[i])
                i += 1
                continue
            }
            var j = i
            while j < kept.count && isPythonWordCharacter(kept[j]) { j += 1 }
            if isArticle(kept[i..<j]) { spaced.append(" ") } else { spaced.append(contentsOf: kept[i..<j]) }
            i = j
        }
        return pythonSplit(spaced)
    }

    static func isArticle(_ word: ArraySlice<Unicode.Scalar>) -> Bool {
        switch word.count {
        case 1: return word.first == "a"
        case 2: return word.elementsEqual(["a", "n"])
        case 3: return word.elementsEqual(["t", "h", "e"])
        default: return false
        }
    }

    // MARK: ROUGE-L

    /// `rouge_score`'s ROUGE-L F-measure: the longest common subsequence of the two token lists (`rougeTokens`),
    /// precision = LCS / prediction tokens, recall = LCS / reference tokens, F = 2PR / (P + R). 0 when either text
    /// has no token (two empty strings too), or nothing is shared. Symmetric in its two texts.
    public static func rougeL(prediction: String, reference: String) -> Double {
        let predicted = rougeTokens(prediction), expected = rougeTokens(reference)
        if predicted.isEmpty || expected.isEmpty { return 0 }
        // Tokens as small integers, then the LCS table row by row (O(n*m) time, O(m) memory).
        var ids: [[UInt8]: Int] = [:]
        let a = expected.map { token in ids[token] ?? { ids[token] = ids.count; return ids.count - 1 }() }
        let b = predicted.map { token in ids[token] ?? { ids[token] = ids.count; return ids.count - 1 }() }
        var previous = [Int](repeating: 0, count: b.count + 1)
        var current = previous
        for x in a {
            for j in 1...b.count {
                current[j] = x == b[j - 1] ? previous[j - 1] + 1 : max(previous[j], current[j - 1])
            }
            swap(&previous, &current)
        }
        let lcs = previous[b.count]
        let precision = Double(lcs) / Double(predicted.count)
        let recall = Double(lcs) / Double(expected.count)
        return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    }

    /// `rouge_score`'s default tokenizer without stemming: Python's `str.lower()`, then every run of characters
    /// other than ASCII `a-z` and `0-9` is a separator. Letters outside ASCII are dropped ("Zürich" gives "z" and
    /// "rich"), except where lower-casing gives ASCII (U+0130 "İ" gives "i", the Kelvin sign gives "k").
    public static func rougeTokens(_ text: String) -> [[UInt8]] {
        var tokens: [[UInt8]] = []
        var token: [UInt8] = []
        for s in pythonLower(Array(text.unicodeScalars)) {
            let v = s.value
            if (0x61...0x7A).contains(v) || (0x30...0x39).contains(v) {
                token.append(UInt8(v))
            } else if !token.isEmpty {
                tokens.append(token)
                token.removeAll(keepingCapacity: true)
            }
        }
        if !token.isEmpty { tokens.append(token) }
        return tokens
    }

    // MARK: Python's string functions, on code points

    /// Python's `str.lower()`: each code point's full lower-case mapping (U+0130 "İ" becomes "i" + U+0307), and
    /// capital sigma becomes final sigma "ς" after a cased letter and not before one (case-ignorable code points
    /// skipped), as CPython does. (Swift's `lowercased()` has no final sigma.)
    static func pythonLower(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        for (i, s) in scalars.enumerated() {
            if s.isASCII {
                out.append((0x41...0x5A).contains(s.value) ? Unicode.Scalar(s.value + 0x20)! : s)
            } else if s.value == 0x3A3 {
                out.append(isFinalSigma(scalars, at: i) ? "\u{3C2}" : "\u{3C3}")
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    static func isFinalSigma(_ scalars: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && scalars[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && scalars[j].properties.isCased else { return false }
        j = i + 1
        while j < scalars.count && scalars[j].properties.isCaseIgnorable { j += 1 }
        return j == scalars.count || !scalars[j].properties.isCased
    }

    /// Python's `str.isspace()`, what `str.split()` splits on: the Unicode white space plus the ASCII separators
    /// U+001C to U+001F.
    static func isPythonWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// Python's `str.split()`: the runs of non-white-space code points.
    static func pythonSplit(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var i = 0
        while i < scalars.count {
            while i < scalars.count && isPythonWhitespace(scalars[i]) { i += 1 }
            var j = i
            while j < scalars.count && !isPythonWhitespace(scalars[j]) { j += 1 }
            if j > i { words.append(Array(scalars[i..<j])) }
            i = j
        }
        return words
    }

    /// The number of words of `str.split()`, without building them.
    static func pythonWordCount(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for s in text.unicodeScalars {
            if isPythonWhitespace(s) { inWord = false } else if !inWord { inWord = true; count += 1 }
        }
        return count
    }

    /// A word character of Python's `re` (str patterns): `str.isalnum()` (a letter, category L*, or a character with
    /// a numeric value) or `_`.
    static func isPythonWordCharacter(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII {
            let v = s.value
            return (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || v == 0x5F
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return s.properties.numericType != nil
        }
    }

    /// Python's `string.punctuation`: ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
    static func isASCIIPunctuation(_ b: UInt8) -> Bool {
        (0x21...0x2F).contains(b) || (0x3A...0x40).contains(b) || (0x5B...0x60).contains(b) || (0x7B...0x7E).contains(b)
    }
}
