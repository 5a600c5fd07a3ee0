import BakeoffCore
import BakeoffEval
import Foundation
import Testing

/// Observations of `n` requests answered by every variant (first repetition; a second one when asked), the
/// answers naming their variant's index and the request only through `answer`.
func labelObservations(_ n: Int, variants: [String] = ["control", "treatment"], control: Int = 0, repetitions: Int = 1,
                       answer: (Int, Int) -> String = { i, v in "Answer \(v == 0 ? "one" : v == 1 ? "two" : "three") to question \(i)." },
                       failing: Set<Int> = []) -> EvalObservations {
    let items = (0..<n).map { i in
        EvalItem(id: "req-\(i)", messagesJSON: "[{\"role\":\"user\",\"content\":\"Question \(i)?\"}]", reference: i % 2 == 0 ? "Expected \(i)" : nil)
    }
    var answers: [EvalAnswer] = []
    for i in 0..<n {
        for r in 0..<repetitions {
            for v in variants.indices {
                if failing.contains(i) && v == 1 {
                    answers.append(EvalAnswer(item: i, variant: v, repetition: r, status: "timeout", error: "timed out"))
                } else {
                    answers.append(EvalAnswer(item: i, variant: v, repetition: r, status: "ok", text: r == 0 ? answer(i, v) : "later repetition"))
                }
            }
        }
    }
    return EvalObservations(items: items, variants: variants, control: control, repetitions: repetitions, answers: answers, judgments: [])
}

@Suite("Label sheets: blind side by side, seeded sides, the key")
struct LabelSheetTests {
    @Test func sidesAreDrawnPerItemAboutHalfEach() {
        let o = labelObservations(400)
        let sheet = LabelSheet.build(o, experiment: "support", seed: 11)
        #expect(sheet.items.count == 400)
        let left = sheet.key.entries.filter(\.variantIsLeft).count
        // Binomial(400, 1/2): sd 10; 4.5 sd either way.
        #expect(left > 155 && left < 245, "candidate on the left in \(left) of 400")
        // The answers are where the key says.
        for (item, entry) in zip(sheet.items, sheet.key.entries) {
            let i = Int(entry.requestID.dropFirst(4))!
            #expect(item.code == entry.code)
            #expect(item.left == (entry.variantIsLeft ? o.answers[i * 2 + 1].text : o.answers[i * 2].text))
            #expect(item.right == (entry.variantIsLeft ? o.answers[i * 2].text : o.answers[i * 2 + 1].text))
            #expect(item.question == "Question \(i)?")
            #expect(item.reference == (i % 2 == 0 ? "Expected \(i)" : nil))
            #expect(entry.variant == "treatment" && entry.control == "control")
        }
        // Shuffled: not in the dataset's order.
        #expect(sheet.key.entries.map(\.requestID) != o.items.map(\.id))
        #expect(Set(sheet.key.entries.map(\.requestID)) == Set(o.items.map(\.id)))
    }

    @Test func theSameSeedGivesTheSameSheetAndAnotherSeedAnother() {
        let o = labelObservations(60)
        let a = LabelSheet.build(o, experiment: "support", seed: 5), b = LabelSheet.build(o, experiment: "support", seed: 5)
        #expect(a.csv() == b.csv())
        #expect(a.html() == b.html())
        #expect(a.key == b.key)
        let c = LabelSheet.build(o, experiment: "support", seed: 6)
        #expect(c.csv() != a.csv())
        #expect(Set(c.items.map(\.code)).isDisjoint(with: a.items.map(\.code)))
        let sidesA = Dictionary(uniqueKeysWithValues: a.key.entries.map { ($0.requestID, $0.variantIsLeft) })
        let sidesC = Dictionary(uniqueKeysWithValues: c.key.entries.map { ($0.requestID, $0.variantIsLeft) })
        #expect(sidesA != sidesC)
    }

    @Test func anItemKeepsItsCodeAndSidesInASmallerSheet() {
        let all = LabelSheet.build(labelObservations(100), experiment: "support", seed: 9)
        let first = LabelSheet.build(labelObservations(30), experiment: "support", seed: 9)
        for entry in first.key.entries {
            let same = all.key.entries.first { $0.requestID == entry.requestID }
            #expect(same?.code == entry.code)
            #expect(same?.variantIsLeft == entry.variantIsLeft)
        }
    }

    @Test(arguments: [
        ["control", "treatment"],
        ["support-v1", "support-v2-finetune"],
        ["baseline", "candidate", "distilled"],
        ["Control", "Treatment"],
    ])
    func noVariantNameAnywhereInTheCSVOrThePage(_ names: [String]) {
        let o = labelObservations(25, variants: names)
        let sheet = LabelSheet.build(o, experiment: "secret-experiment", seed: 3)
        #expect(sheet.items.count == 25 * (names.count - 1))
        let csv = sheet.csv().lowercased(), html = sheet.html().lowercased()
        for name in names + ["secret-experiment"] {
            #expect(!csv.contains(name.lowercased()), "\(name) in the CSV")
            #expect(!html.contains(name.lowercased()), "\(name) in the page")
        }
        for id in o.items.map(\.id) {
            #expect(!html.contains("\"\(id)\"") && !csv.contains(id + ","), "request id \(id) shown")
        }
        // The key has them.
        #expect(sheet.key.entries.allSatisfy { names.contains($0.variant) && $0.control == names[0] })
    }

    @Test func pairsWithoutBothAnswersAreLeftOutAndCounted() {
        let o = labelObservations(10, repetitions: 2, failing: [2, 7])
        let sheet = LabelSheet.build(o, experiment: "support", seed: 1)
        #expect(sheet.items.count == 8)
        #expect(sheet.missingAnswers == 2)
        #expect(!sheet.key.entries.contains { $0.requestID == "req-2" || $0.requestID == "req-7" })
        // Only the first repetition is shown.
        #expect(sheet.items.allSatisfy { $0.left != "later repetition" && $0.right != "later repetition" })
    }

    @Test func theKeyRoundTripsThroughItsJSON() throws {
        let sheet = LabelSheet.build(labelObservations(12, variants: ["a \"quoted\" name", "b\\slash"]), experiment: "exp\nx", dataset: "d.jsonl", seed: .max) {
            item, v, c in "\(item.id)|\(v)|\(c)"
        }
        let parsed = try LabelKey.parse(Array(sheet.key.json().utf8), source: "labels.key.json")
        #expect(parsed == sheet.key)
        #expect(parsed.seed == .max)
        #expect(parsed.entries.first?.labelKey.contains("|") == true)
        #expect(parsed.entry(code: parsed.entries[3].code.uppercased()) == parsed.entries[3])
    }

    @Test(arguments: [
        ("{}", "\"format\" must be"),
        ("[1]", "a JSON object was expected"),
        ("{\"format\": \"bakeoff.labels-key/1\", \"experiment\": \"e\", \"sheet\": \"s\", \"seed\": 4}", "lacks \"experiment\", \"sheet\" or \"seed\""),
        ("{\"format\": \"bakeoff.labels-key/1\", \"experiment\": \"e\", \"sheet\": \"s\", \"seed\": \"4\", \"items\": [{\"item\": \"i1\"}]}", "an item of the label key lacks"),
        ("not json", "not valid JSON"),
    ])
    func aBadKeyIsRefused(_ text: String, _ message: String) {
        #expect {
            _ = try LabelKey.parse(Array(text.utf8), source: "k.json")
        } throws: { error in
            (error as? LabelError)?.description.contains(message) == true
        }
    }

    @Test func theCodesSayNothingAndLookLikeNoNumber() {
        let sheet = LabelSheet.build(labelObservations(300), experiment: "support", seed: 2)
        #expect(Set(sheet.items.map(\.code)).count == 300)
        for code in sheet.items.map(\.code) {
            #expect(code.count == 10 && code.hasPrefix("i"))
            #expect(code.dropFirst().allSatisfy { "0123456789abcdefghjkmnpqrstvwxyz".contains($0) })
        }
    }
}

@Suite("Label sheets as CSV and HTML, and filled sheets read back")
struct LabelCSVTests {
    static let awkward = [
        "plain", "with, comma", "with \"quotes\"", "two\nlines", "windows\r\nline", "  leading spaces", "trailing tab\t",
        "#not a comment", "", "émoji 🎉 and ünïcode", "\"", ",", "a\rb", "</script><script>alert(1)</script>", "<b>&amp;</b>",
    ]

    /// One request per awkward text: its question, reference and answers all awkward.
    static func awkwardSheet() -> LabelSheet {
        let n = awkward.count
        let items = (0..<n).map { i in EvalItem(id: "r\(i)", prompt: awkward[i], reference: awkward[(i + 1) % n]) }
        var answers: [EvalAnswer] = []
        for i in 0..<n {
            answers.append(EvalAnswer(item: i, variant: 0, repetition: 0, status: "ok", text: awkward[(i + 2) % n]))
            answers.append(EvalAnswer(item: i, variant: 1, repetition: 0, status: "ok", text: awkward[(i + 3) % n] + "!"))
        }
        let o = EvalObservations(items: items, variants: ["control", "treatment"], control: 0, repetitions: 1, answers: answers, judgments: [])
        return LabelSheet.build(o, experiment: "e", seed: 4)
    }

    @Test func everyFieldRoundTripsThroughTheCSVReader() throws {
        let sheet = Self.awkwardSheet()
        let csv = sheet.csv()
        #expect(csv.hasPrefix("item,question,reference,left,right,label,note\r\n"))
        var reader = CSVReader(Array(csv.utf8))
        let header = try #require(try reader.next())
        #expect(header.fields.map(\.text) == LabelSheet.csvColumns)
        for item in sheet.items {
            let record = try #require(try reader.next())
            #expect(record.fields.map(\.text) == [item.code, item.question, item.reference ?? "", item.left, item.right, "", ""])
        }
        #expect(try reader.next() == nil)
    }

    @Test(arguments: [
        ("plain", "plain"), ("a,b", "\"a,b\""), ("say \"hi\"", "\"say \"\"hi\"\"\""), ("x\ny", "\"x\ny\""), ("x\r\ny", "\"x\r\ny\""),
        (" lead", "\" lead\""), ("trail ", "\"trail \""), ("#hash", "\"#hash\""), ("mid#hash", "mid#hash"), ("", ""),
    ])
    func fieldsAreQuotedWhenTheyMustBe(_ text: String, _ written: String) {
        #expect(LabelSheet.csvField(text) == written)
    }

    @Test func aFilledSheetReadsBack() throws {
        let sheet = Self.awkwardSheet()
        var labels: [String: (choice: LabelChoice, note: String?)] = [:]
        let choices: [LabelChoice] = [.left, .right, .tie]
        for (i, item) in sheet.items.enumerated() where i % 5 != 4 {
            labels[item.code] = (choices[i % 3], i % 2 == 0 ? "note, with \"quotes\"\nand a line" : nil)
        }
        let filled = try FilledLabels.parse(Array(sheet.csv(labels: labels).utf8), source: "f.csv", key: sheet.key)
        #expect(filled.problems.isEmpty)
        #expect(filled.blank == sheet.items.count - labels.count)
        #expect(filled.rows.count == labels.count)
        for row in filled.rows {
            #expect(row.choice == labels[row.code]?.choice)
            #expect(row.note == labels[row.code]?.note)
        }
        // Joined with the key: the candidate's verdict.
        let joined = sheet.key.humanLabels(filled, labeler: "ann")
        #expect(joined.count == labels.count)
        for (entry, label) in joined {
            let choice = labels[entry.code]!.choice
            let expected: LabelVerdict = choice == .tie ? .tie : (choice == .left) == entry.variantIsLeft ? .win : .loss
            #expect(label.verdict == expected)
            #expect(label.requestID == entry.requestID && label.variant == "treatment" && label.control == "control" && label.labeler == "ann")
            #expect(label.variantWasLeft == entry.variantIsLeft)
        }
    }

    @Test(arguments: [
        ("left", LabelChoice.left), ("L", .left), (" Left ", .left), ("RIGHT", .right), ("r", .right), ("tie", .tie), ("T", .tie), ("Tie\n", .tie),
    ])
    func labelsAreReadInAnyCase(_ text: String, _ choice: LabelChoice) {
        #expect(LabelChoice.parse(text) == choice)
    }

    @Test(arguments: ["a", "b", "c", "both", "left!", "1", "lr", "none"])
    func otherLabelsAreNot(_ text: String) {
        #expect(LabelChoice.parse(text) == nil)
    }

    /// A small sheet, its codes, and a filled CSV from rows after the header.
    static func small() -> (LabelSheet, [String]) {
        let sheet = LabelSheet.build(labelObservations(4), experiment: "e", seed: 1)
        return (sheet, sheet.items.map(\.code))
    }

    @Test func spreadsheetsMayReorderDropColumnsAndUseLF() throws {
        let (sheet, c) = Self.small()
        let text = "\u{FEFF}Note,Label,ITEM\n,left,\(c[0])\nfine,  R ,\(c[1].uppercased())\n,,\(c[2])\n,,\n"
        let filled = try FilledLabels.parse(Array(text.utf8), source: "f.csv", key: sheet.key)
        #expect(filled.problems.isEmpty)
        #expect(filled.rows.map(\.code) == [c[0], c[1]])
        #expect(filled.rows.map(\.choice) == [.left, .right])
        #expect(filled.rows.map(\.note) == [nil, "fine"])
        #expect(filled.rows.map(\.line) == [2, 3])
        #expect(filled.blank == 1)
    }

    @Test func unusableRowsAreProblemsNamingLineAndColumn() throws {
        let (sheet, c) = Self.small()
        let text = """
            item,label,note
            \(c[0]),maybe,
            izzzzzzzzz,left,
            \(c[1]),left,
            \(c[1]),right,
            ,tie,
            \(c[2]),left,note,extra
            \(c[3]),a,

            """
        let filled = try FilledLabels.parse(Array(text.utf8), source: "f.csv", key: sheet.key)
        #expect(filled.rows.map(\.code) == [c[1]])
        let problems = filled.problems.map(\.description)
        #expect(problems == [
            "f.csv:2: column \"label\": \"maybe\" is not a label: write left, right or tie (or l, r, t)",
            "f.csv:3: column \"item\": \"izzzzzzzzz\" is not an item of this sheet's key (is it a sheet from another export?)",
            "f.csv:5: column \"item\": \(c[1]) is also on line 4: each item is labelled once per file",
            "f.csv:6: column \"item\": is blank: every row names its item, as in the sheet",
            "f.csv:7: 4 fields but the header has 3: a field with a comma or a line break must be quoted",
            "f.csv:8: column \"label\": \"a\" is not a label: write left, right or tie (or l, r, t)",
        ])
    }

    @Test(arguments: [
        ("", "f.csv: empty"),
        ("item,note\nx,y\n", "f.csv:1: the header has no \"label\" column"),
        ("question,label\nx,left\n", "f.csv:1: the header has no \"item\" column"),
        ("item,label,label\n", "f.csv:1: column \"label\": appears 2 times in the header"),
        ("item,label\n\"x,left\n", "f.csv:2: column \"item\": a quoted field is not closed"),
        ("item,label\nx\"y,left\n", "f.csv:2: column \"item\": a quote inside unquoted field 1"),
    ])
    func aFileThatIsNoSheetIsRefused(_ text: String, _ message: String) {
        let (sheet, _) = Self.small()
        #expect {
            _ = try FilledLabels.parse(Array(text.utf8), source: "f.csv", key: sheet.key)
        } throws: { error in
            (error as? LabelError)?.description.hasPrefix(message) == true
        }
    }

    @Test func thePageEscapesEveryText() throws {
        let sheet = Self.awkwardSheet()
        let html = sheet.html()
        #expect(html.components(separatedBy: "<script").count - 1 == 2)  // the data and the code, nothing from the answers
        #expect(!html.contains("<b>"))
        #expect(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("&lt;b&gt;&amp;amp;&lt;/b&gt;"))
        #expect(html.contains("default-src 'none'"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        // The embedded data is the items exactly.
        let start = try #require(html.range(of: "<script type=\"application/json\" id=\"sheet-data\">"))
        let end = try #require(html.range(of: "</script>", range: start.upperBound..<html.endIndex))
        let json = String(html[start.upperBound..<end.lowerBound])
        #expect(!json.contains("<") && !json.contains(">") && !json.contains("&"))
        let data = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(data["sheet"] as? String == sheet.id)
        #expect(data["columns"] as? [String] == LabelSheet.csvColumns)
        let items = try #require(data["items"] as? [[String: String]])
        #expect(items.count == sheet.items.count)
        for (d, item) in zip(items, sheet.items) {
            #expect(d == ["item": item.code, "question": item.question, "reference": item.reference ?? "", "left": item.left, "right": item.right])
        }
        // One set of radio buttons and a note per item.
        for item in sheet.items {
            #expect(html.components(separatedBy: "name=\"c-\(item.code)\"").count - 1 == 3)
            #expect(html.contains("id=\"n-\(item.code)\""))
        }
    }
}
