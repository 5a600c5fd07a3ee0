import BakeoffCore
import Foundation
import Testing
import BakeoffReport
import BakeoffSimulation

/// Names that came from clients or logs, printed in reports (issue 9, finding 9).
@Suite("Client text in reports")
struct ClientTextTests {
    @Test(arguments: [
        ("control", "control"),
        ("treatment_v2", "treatment\\_v2"),
        ("[x](https://evil.example)", "`[x](https://evil.example)`"),
        ("<img src=x onerror=alert(1)>", "`<img src=x onerror=alert(1)>`"),
        ("a|b", "`a\\|b`"),
        ("www.evil.example", "`www.evil.example`"),
        ("tick`s", "``tick`s``"),
        ("`edge`", "`` `edge` ``"),
        ("bell\u{07}", "`bell\u{FFFD}`"),
    ])
    func markdownNamesCannotBecomeMarkup(_ name: String, _ expected: String) {
        #expect(ClientText.markdownName(name) == expected)
    }

    @Test func proseEscapesMarkupAndTheTerminalLosesControlCharacters() {
        #expect(ClientText.markdownProse("variant [x](http://e) is *bold*") == "variant \\[x\\](http://e) is \\*bold\\*")
        #expect(ClientText.terminal("red\u{1B}[31m\u{202E}txt") == "red\u{FFFD}[31m\u{FFFD}txt")
        #expect(ClientText.terminal("plain é") == "plain é")
    }

    /// A whole report from a log whose names are hostile: Markdown holds no link, the table no escape byte,
    /// and JSON keeps the names as they are.
    @Test func reportsEscapeEveryClientName() throws {
        var lines: [String] = []
        for i in 0..<40 {
            let variant = i % 2 == 0 ? "control" : "[win](https://evil.example)"
            lines.append(#"{"event":"request","ts":"2026-12-01T00:00:00Z","experiment":"e\u001b[2J","variant":"\#(variant)","user_id":"u\#(i)","request_id":"r\#(i)","latency_ms":100}"#)
            lines.append(#"{"event":"feedback","ts":"2026-12-01T00:01:00Z","experiment":"e\u001b[2J","user_id":"u\#(i)","request_id":"r\#(i)","name":"<b>x</b>","value":1}"#)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("client-text-\(UUID().uuidString).jsonl").path
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try EventLog.aggregate(path: path, options: EventLog.Options())
        let report = try Analysis.run(data, plan: AnalysisPlan())
        let markdown = report.render(.markdown)
        #expect(!markdown.contains("[win](https://evil.example)") || markdown.contains("`[win](https://evil.example)`"))
        #expect(!markdown.replacingOccurrences(of: "`[win](https://evil.example)`", with: "").contains("](https://"))
        #expect(!markdown.contains("<b>x</b>") || markdown.contains("`<b>x</b>`"))
        #expect(!markdown.contains("\u{1B}"))
        let table = report.render(.table)
        #expect(!table.contains("\u{1B}"))
        #expect(report.render(.json).contains("[win](https://evil.example)"))
    }
}
