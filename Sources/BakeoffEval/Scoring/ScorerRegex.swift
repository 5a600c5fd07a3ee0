/// A regular expression of the `regex` scorer and of JSON Schema's `pattern`, compiled once.
///
/// Dialect: Swift Regex (the standard library's `Regex`, built from a string at run time), which reads the usual
/// Perl/PCRE/ICU syntax: classes, `\d \w \s \b`, `\p{...}` properties, groups `(?:...)`, named groups
/// `(?<name>...)` and `(?P<name>...)`, back references, lookahead `(?=...)` `(?!...)`, lazy and possessive
/// quantifiers, inline options such as `(?i)` `(?s)` `(?m)` `(?x)`. Lookbehind is not supported (an error).
/// Matching is set up to behave like Python's `re`, ICU or ECMAScript with the `u` flag rather than Swift's
/// defaults:
/// - it works on Unicode code points, not grapheme clusters (`.` matches one code point; `e` is found in "é"
///   written as "e" + U+0301);
/// - `\b` is the simple boundary between a `\w` and a non-`\w` character (not Unicode's word segmentation, under
///   which "don't" is one word);
/// - `\w`, `\d`, `\s` are Unicode-aware (as in Python 3);
/// - without `(?m)`, `^` and `$` match only at the very start and end of the text (`$` does not match before a
///   final line break, unlike Python); without `(?s)`, `.` does not match a line break.
/// Matching backtracks: a pattern such as `(a+)+b` can take exponential time on long answers; keep patterns simple.
///
/// Sendable by hand: `Regex<AnyRegexOutput>` is not declared Sendable (its output type holds `Any`), but a regex is
/// immutable apart from the matching program it compiles lazily, which the library stores atomically and which
/// `init` makes it compile before the value is shared; the outputs of matches are not kept.
public struct ScorerRegex: @unchecked Sendable {
    /// Why a pattern does not compile: Swift Regex's message ("expected ')'").
    public struct PatternError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let pattern: String
    /// The whole text must match (as Python's `re.fullmatch`), not just a part of it (`re.search`).
    public let fullMatch: Bool
    public let caseSensitive: Bool
    let regex: Regex<AnyRegexOutput>

    public init(pattern: String, fullMatch: Bool = false, caseSensitive: Bool = true) throws(PatternError) {
        let compiled: Regex<AnyRegexOutput>
        do { compiled = try Regex(pattern) } catch { throw PatternError(message: "\(error)") }
        var regex = compiled.matchingSemantics(.unicodeScalar).wordBoundaryKind(.simple)
        if !caseSensitive { regex = regex.ignoresCase() }
        self.pattern = pattern
        self.fullMatch = fullMatch
        self.caseSensitive = caseSensitive
        self.regex = regex
        _ = "".contains(regex)  // compiles the matching program now
    }

    public func matches(_ text: String) -> Bool {
        fullMatch ? text.wholeMatch(of: regex) != nil : text.contains(regex)
    }
}
