/// Help texts made from the declarations: usage, prose, arguments and options in aligned columns, wrapped at 80.
package enum Help {
    package static let width = 80
    /// Labels longer than this put their help on the next line.
    static let longestLabel = 24

    /// A command's help.
    package static func text(for spec: CommandSpec) -> String {
        var lines = usageLines(spec)
        if !spec.about.isEmpty { lines += [""] + prose(spec.about) }
        // One column for the help of arguments and options alike.
        let arguments = spec.arguments.map { ($0.name, $0.help) }
        let options = spec.options.filter { !$0.hidden }.map { ($0.label, helpLine($0)) }
        let table = columns(arguments + options)
        if !arguments.isEmpty { lines += ["", "ARGUMENTS:"] + table.prefix { !$0.hasPrefix("  --") } }
        lines += ["", "OPTIONS:"] + table.drop { !$0.hasPrefix("  --") }
        if !spec.notes.isEmpty { lines += [""] + prose(spec.notes) }
        return lines.joined(separator: "\n")
    }

    /// "USAGE: bakeoff analyze EVENTS.jsonl [options]" and the other forms under it.
    package static func usageLines(_ spec: CommandSpec) -> [String] {
        spec.usage.enumerated().flatMap { index, form in
            let lead = index == 0 ? "USAGE: " : "       "
            return wrap("bakeoff \(spec.name) \(form)", width: width - lead.count).enumerated().map { i, line in
                (i == 0 ? lead : String(repeating: " ", count: lead.count + 2)) + line
            }
        }
    }

    /// `bakeoff --help`: the commands and the tool's own options.
    package static func general(commands: [CommandSpec], options: [Option]) -> String {
        var lines = ["bakeoff — A/B testing for fine-tuned LLMs", "", "USAGE: bakeoff <command> [options]", "", "COMMANDS:"]
        let rows = commands.map { ($0.name, $0.summary) } + [("help", "Show help for a command: bakeoff help analyze")]
        let table = columns(rows + options.map { ($0.label, $0.help) })
        lines += table.prefix { !$0.hasPrefix("  --") } + ["", "OPTIONS:"] + table.drop { !$0.hasPrefix("  --") }
        lines += ["", "Run 'bakeoff <command> --help' for a command's options."]
        return lines.joined(separator: "\n")
    }

    /// An option's help and its default.
    static func helpLine(_ option: Option) -> String {
        option.defaultValue.map { "\(option.help) (default: \($0))" } ?? option.help
    }

    /// Two columns: labels indented by two, help aligned after the longest label (up to `longestLabel`); a longer
    /// label has its help on the lines below.
    static func columns(_ rows: [(String, String)]) -> [String] {
        let labelWidth = rows.map(\.0.count).filter { $0 <= longestLabel }.max() ?? longestLabel
        let indent = 2 + labelWidth + 2
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        for (label, help) in rows {
            let wrapped = wrap(help, width: width - indent)
            if label.count > labelWidth {
                lines.append("  " + label)
                lines += wrapped.map { pad + $0 }
            } else {
                let first = "  " + label + String(repeating: " ", count: labelWidth - label.count + 2)
                lines += wrapped.enumerated().map { ($0 == 0 ? first : pad) + $1 }
            }
        }
        return lines
    }

    /// Paragraphs (separated by blank lines) wrapped at `width`; a line indented by two spaces is kept as it is.
    static func prose(_ text: String) -> [String] {
        var lines: [String] = []
        var paragraph: [Substring] = []
        func flush() {
            if !paragraph.isEmpty { lines += wrap(paragraph.joined(separator: " "), width: width) }
            paragraph = []
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                flush()
                lines.append("")
            } else if line.hasPrefix("  ") {
                flush()
                lines.append(String(line))
            } else {
                paragraph.append(line)
            }
        }
        flush()
        return lines
    }

    /// `text` in lines of at most `width` characters, broken between words (a longer word has a line to itself).
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        lines.append(line)
        return lines
    }
}
