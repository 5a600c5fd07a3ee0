import BakeoffStatistics

/// Human formatting of report numbers: rates as percentages, latencies in ms or s, p-values as people read them.

package func formatP(_ p: Double) -> String {
    if p < 1e-16 { return "<1e-16" }
    if p < 0.0001 {
        // Two significant digits in scientific notation ("3.2e-05"), for plans with a tiny alpha.
        var exponent = 0
        var m = p
        while m < 1 { m *= 10; exponent -= 1 }
        var digits = fixed(m, 1)
        if digits == "10.0" { digits = "1.0"; exponent += 1 }
        return "\(digits)e-\(abs(exponent) < 10 ? "0" : "")\(abs(exponent))"
    }
    if p < 0.01 { return fixed(p, 4) }
    if p < 0.995 { return significant(p, 2) }
    return "1.00"
}

/// "p = 0.034" or "p < 1e-16".
package func formatPEquals(_ p: Double) -> String {
    let text = formatP(p)
    return text.hasPrefix("<") ? "p < " + text.dropFirst() : "p = " + text
}

/// Breaks prose into lines of at most `width` characters at spaces, for an 80-column terminal.
package func wrap(_ text: String, width: Int = 80, indent: String = "") -> String {
    var lines: [String] = []
    var line = ""
    for word in text.split(separator: " ", omittingEmptySubsequences: false) {
        if !line.isEmpty && line.count + 1 + word.count > width {
            lines.append(line)
            line = indent + word
        } else {
            line += (line.isEmpty ? "" : " ") + word
        }
    }
    if !line.isEmpty { lines.append(line) }
    return lines.joined(separator: "\n")
}

/// A plain number without trailing zeros (0.05, 0.8, 1e-05 stays readable).
package func formatNumber(_ x: Double) -> String {
    var s = fixed(x, 6)
    while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
    return s
}

package func fixed(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "n/a" : (x > 0 ? "inf" : "-inf") }
    // More than 15 decimals do not fit the integer arithmetic below: scientific notation instead.
    guard decimals <= 15 else { return scientific(x) }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = x < 0
    let r = (abs(x) * scale).rounded()
    if r >= 9e15 { return String(x) }
    let n = Int64(r)
    let whole = n / Int64(scale)
    var frac = String(n % Int64(scale))
    while frac.count < decimals { frac = "0" + frac }
    let s = decimals > 0 ? "\(whole).\(frac)" : "\(whole)"
    return negative && r != 0 ? "-" + s : s
}

/// "1.2e-17": two significant digits in scientific notation, for values too small for `fixed`.
package func scientific(_ x: Double) -> String {
    guard x != 0, x.isFinite else { return fixed(x, 1) }
    var exponent = 0
    var m = abs(x)
    while m >= 10 { m /= 10; exponent += 1 }
    while m < 1 { m *= 10; exponent -= 1 }
    var digits = fixed(m, 1)
    if digits == "10.0" { digits = "1.0"; exponent += 1 }
    return (x < 0 ? "-" : "") + digits + "e" + (exponent < 0 ? "-" : "+") + (abs(exponent) < 10 ? "0" : "") + String(abs(exponent))
}

package func significant(_ x: Double, _ digits: Int) -> String {
    guard x != 0, x.isFinite else { return fixed(x, digits) }
    var magnitude = 0
    var a = abs(x)
    while a >= 10 { a /= 10; magnitude += 1 }
    while a < 1 { a *= 10; magnitude -= 1 }
    return fixed(x, max(0, digits - 1 - magnitude))
}

/// A metric value: "71.3%" for a rate, "2.10 s" for a latency, "3.80" for a mean.
package func formatValue(_ x: Double?, _ metric: Metric, signed: Bool = false) -> String {
    guard let x, x.isFinite else { return "n/a" }
    let sign = signed && x > 0 ? "+" : ""
    switch metric.kind {
    case .proportion:
        return sign + fixed(x * 100, 1) + (signed ? " pp" : "%")
    case .quantile:
        if case .field(let f) = metric.source, f == .latencyMs || f == .ttftMs {
            return sign + (abs(x) >= 1000 ? fixed(x / 1000, 2) + " s" : fixed(x, 0) + " ms")
        }
        return sign + fixed(x, 1)
    case .mean:
        let a = abs(x)
        return sign + (a >= 100 ? fixed(x, 1) : a >= 1 ? fixed(x, 2) : significant(x, 3))
    }
}

/// The size of a difference, without sign: "3.5 pp" for a rate, "0.30" for a mean.
package func formatMagnitude(_ x: Double, _ metric: Metric) -> String {
    metric.kind == .proportion ? fixed(abs(x) * 100, 1) + " pp" : formatValue(abs(x), metric)
}

/// A difference in the metric's unit with its sign ("+7.6 pp", "-0.30").
package func formatSigned(_ x: Double?, _ metric: Metric) -> String { formatValue(x, metric, signed: true) }

/// A relative change as a signed percentage ("+10.7%").
package func formatPercent(_ x: Double?) -> String {
    guard let x, x.isFinite else { return "n/a" }
    let v = x * 100
    let text = abs(v) >= 100 ? fixed(v, 0) : fixed(v, 1)
    return (v > 0 && text != "0.0" ? "+" : "") + text + "%"
}

package func formatPercentBare(_ x: Double) -> String {
    guard x.isFinite else { return x > 0 ? "+inf" : "-inf" }
    let v = x * 100
    let text = abs(v) >= 100 ? fixed(v, 0) : fixed(v, 1)
    return (v > 0 ? "+" : "") + text
}

package func formatInterval(_ ci: ConfidenceInterval?, _ metric: Metric) -> String {
    guard let ci else { return "" }
    return "[\(formatSigned(ci.lower, metric)), \(formatSigned(ci.upper, metric))]"
}

/// Pads to a width (by characters), left or right aligned.
package func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let n = s.count
    if n >= width { return s }
    let fill = String(repeating: " ", count: width - n)
    return right ? fill + s : s + fill
}

/// An aligned plain-text table: first column left, the others right-aligned.
package func renderTable(_ header: [String], _ rows: [[String]], leftAligned: Set<Int> = [0]) -> String {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in pad(c, widths[i], right: !leftAligned.contains(i)) }
            .joined(separator: "  ").replacingTrailingSpaces()
    }
    var out = line(header) + "\n"
    out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
    for row in rows { out += line(row) + "\n" }
    return out
}

package extension String {
    func replacingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// A Markdown table: the `leftAligned` columns left, the others right (numbers).
package func markdownTable(_ header: [String], _ rows: [[String]], leftAligned: Set<Int> = [0]) -> String {
    var out = "| " + header.joined(separator: " | ") + " |\n"
    out += "|" + header.indices.map { leftAligned.contains($0) ? "---|" : "---:|" }.joined() + "\n"
    for r in rows { out += "| " + r.joined(separator: " | ") + " |\n" }
    return out
}

/// Text that came from events or clients (experiment, variant and feedback names, ids), made safe to print.
///
/// Why: a feedback name such as `[x](https://evil.example)` would otherwise become a link in a report pasted
/// into a pull request, and control characters could rewrite a terminal.
package enum ClientText {
    /// Control characters (C0, C1, DEL) and bidirectional overrides become U+FFFD.
    package static func terminal(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isUnsafe) else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.map { isUnsafe($0) ? "\u{FFFD}" : $0 }))
    }

    /// A name for Markdown: as it is when it is plain words (letters, digits, spaces, `-`, `.`, `_`, the
    /// underscores escaped), otherwise an inline code span, in which nothing is a link or markup.
    package static func markdownName(_ s: String) -> String {
        let clean = terminal(s)
        let plain = !clean.isEmpty && !clean.lowercased().contains("www.") && clean.unicodeScalars.allSatisfy {
            $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == " " || $0 == "-" || $0 == "." || $0 == "_"
        }
        if plain { return clean.replacingOccurrences(of: "_", with: "\\_") }
        // A code span holds any text but backticks; a run of backticks longer than any inside delimits it.
        var longest = 0, run = 0
        for c in clean.unicodeScalars { run = c == "`" ? run + 1 : 0; longest = max(longest, run) }
        let fence = String(repeating: "`", count: longest + 1)
        let body = clean.replacingOccurrences(of: "|", with: "\\|")
        return fence + (body.hasPrefix("`") || body.hasSuffix("`") || body.isEmpty ? " \(body) " : body) + fence
    }

    /// A sentence of our own with names in it, for Markdown: markup characters are escaped, so none of it
    /// becomes a link, an image, HTML or emphasis.
    package static func markdownProse(_ s: String) -> String {
        var out = ""
        for c in terminal(s).unicodeScalars {
            if "\\`*_[]<>|#!~".unicodeScalars.contains(c) { out += "\\" }
            out.unicodeScalars.append(c)
        }
        return out
    }

    static func isUnsafe(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F...0x9F).contains(u.value) || (0x202A...0x202E).contains(u.value)
            || (0x2066...0x2069).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }
}

/// A whole number with thousands separators: 12,345.
package func group(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// Text for HTML element content or a quoted attribute value: `& < > " '` as entities (every report page and
/// label sheet goes through it).
package func escapeHTML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        // Control characters (a model's or a dataset's) are not text: shown as U+FFFD, line breaks and tabs kept.
        case "\n", "\t", "\r": out.unicodeScalars.append(c)
        case _ where ClientText.isUnsafe(c): out += "\u{FFFD}"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}
