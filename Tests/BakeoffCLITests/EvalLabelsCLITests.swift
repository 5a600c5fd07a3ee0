import BakeoffCLI
import BakeoffCore
import BakeoffDevTools
import BakeoffEval
import BakeoffEvalRunner
import BakeoffGateway
import BakeoffHTTP
import BakeoffStatistics
import BakeoffStore
import Foundation
import Testing

/// A mock upstream with graded models (support-v1 right half the time, support-v2 85%) and an MT-Bench judge
/// that says "[[A]]" a fifth of the time whatever the answers; a config evaluating them; a dataset.
private final class LabelsWorld {
    let mock: MockUpstream
    let directory: String
    let configPath: String
    let datasetPath: String
    let cachePath: String
    let configText: String

    init(requests: Int = 40) throws {
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.jitterMs = 0
        options.tokensPerSecond = 0
        options.quality = ["support-v1": 0.5, "support-v2": 0.85]
        options.judgeModels = ["gpt-judge"]
        options.judgePositionBias = 0.2
        mock = MockUpstream(options: options)
        try mock.start()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-labels-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configText = """
            {"experiments": [{"name": "support", "model": "support-bot",
              "variants": [
                {"name": "control", "weight": 0.5, "upstream": {"base_url": "\(mock.baseURL)", "model": "support-v1"}},
                {"name": "treatment", "weight": 0.5, "upstream": {"base_url": "\(mock.baseURL)", "model": "support-v2"}, "system_prompt": "Be brief."}],
              "eval": {"judge": {"upstream": {"base_url": "\(mock.baseURL)", "model": "gpt-judge"}},
                       "scorers": [{"type": "judge_pairwise", "name": "preference"}], "stream": false, "retries": 1}}]}
            """
        configPath = directory + "/bakeoff.json"
        try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
        datasetPath = directory + "/requests.jsonl"
        try MockQuality.dataset(size: requests, seed: 3).map { $0 + "\n" }.joined().write(toFile: datasetPath, atomically: true, encoding: .utf8)
        cachePath = directory + "/eval.db"
    }

    deinit {
        mock.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func export(_ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(["eval", "export-labels", "--config", configPath, "--dataset", datasetPath, "--cache", cachePath,
                     "--output-dir", directory + "/sheet"] + extra)
    }

    func read(_ name: String) throws -> String {
        try String(contentsOfFile: directory + "/sheet/" + name, encoding: .utf8)
    }

    /// The sheet's rows: item, question, reference, left, right, label, note.
    func rows() throws -> [[String]] {
        var reader = CSVReader(Array(try read("labels.csv").utf8))
        var rows: [[String]] = []
        while let record = try reader.next() { rows.append(record.fields.map(\.text)) }
        #expect(rows.first == ["item", "question", "reference", "left", "right", "label", "note"])
        return Array(rows.dropFirst())
    }

    /// The sheet filled by someone who knows the expected answers (the better side, or tie when both or neither
    /// are right), with `change` applied to each row's label.
    func filled(_ change: (Int, String) -> String) throws -> String {
        var out = "item,question,reference,left,right,label,note\r\n"
        for (i, row) in try rows().enumerated() {
            let goodLeft = MockQuality.isGood(answer: row[3], question: row[1])
            let goodRight = MockQuality.isGood(answer: row[4], question: row[1])
            let label = change(i, goodLeft == goodRight ? "tie" : goodLeft ? "left" : "right")
            out += [row[0], row[1], row[2], row[3], row[4], label, i == 5 ? "close call, \"really\"" : ""].map(LabelSheet.csvField).joined(separator: ",") + "\r\n"
        }
        return out
    }

    func write(_ text: String, _ name: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func importLabels(_ path: String, _ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(["eval", "import-labels", "--key", directory + "/sheet/labels.key.json", "--labels", path, "--cache", cachePath] + extra)
    }
}

@Suite("bakeoff eval export-labels and import-labels")
struct EvalLabelsCLITests {
    @Test func exportWritesABlindSheetAndAPrivateKeyFromTheAnswersAlone() throws {
        let world = try LabelsWorld()
        let r = try world.export(["--seed", "7"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("40 items (40 requests x 1 candidate against control)"))
        #expect(r.stderr.contains("labels.key.json says which variant is on which side: keep it to import the labels, and do not show it to labelers"))
        // Answers only: 40 requests x 2 variants, no judge.
        #expect(world.mock.requestsReceived == 80)
        #expect(!world.mock.recentRequests.contains { $0.bodyText.contains("gpt-judge") })
        let key = try LabelKey.parse(Array(try world.read("labels.key.json").utf8), source: "key")
        #expect(key.entries.count == 40 && key.seed == 7 && key.experiment == "support")
        let attributes = try FileManager.default.attributesOfItem(atPath: world.directory + "/sheet/labels.key.json")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let csv = try world.read("labels.csv"), html = try world.read("labels.html")
        for secret in ["control", "treatment", "support-v1", "support-v2", "Be brief.", "q-0001"] {
            #expect(!csv.contains(secret) && !html.contains(secret), "\(secret) shown to labelers")
        }
        let rows = try world.rows()
        #expect(rows.count == 40)
        #expect(Set(rows.map { $0[0] }) == Set(key.entries.map(\.code)))
        let left = key.entries.filter(\.variantIsLeft).count
        #expect(left > 8 && left < 32)
        // The answers are the graded models', where the key says.
        for (row, entry) in zip(rows, key.entries) {
            #expect(row[0] == entry.code)
            let expected = MockQuality.expectedAnswer(question: row[1]), wrong = MockQuality.wrongAnswer(question: row[1])
            #expect([row[3], row[4]].allSatisfy { $0 == expected || $0 == wrong })
            // support-v2 is right wherever support-v1 is (the difficulty is the question's).
            let candidate = entry.variantIsLeft ? row[3] : row[4], control = entry.variantIsLeft ? row[4] : row[3]
            #expect(control != expected || candidate == expected)
        }

        // Again: the key is not replaced without --force; with it (and the seed), the same files and no call.
        let again = try world.export(["--seed", "7"])
        #expect(again.status == 2)
        #expect(again.stderr.contains("labels.key.json exists"))
        let forced = try world.export(["--seed", "7", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(world.mock.requestsReceived == 80)
        #expect(try world.read("labels.csv") == csv && world.read("labels.html") == html)
        #expect(forced.stderr.contains("80 answers from the cache"))
    }

    @Test func importedLabelsAgreeWithTheJudgeAsKappaSays() throws {
        let world = try LabelsWorld()
        #expect(try world.export(["--seed", "11"]).status == 0)
        // A labeler who knows the answers, leaves three blank, writes labels their own way, gets one wrong and
        // calls a few ties.
        let filled = try world.filled { i, label in
            if i < 3 { return "" }
            if i == 3 { return label == "left" ? "right" : "left" }  // one plain disagreement, whatever the draws
            if i % 9 == 0 { return "Tie" }
            return ["left": i % 2 == 0 ? "L" : "left", "right": i % 2 == 0 ? "RIGHT" : "r", "tie": "t"][label]!
        }
        let path = try world.write(filled, "ann.csv")
        let imported = try world.importLabels(path)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("37 labels read, 3 blank skipped, 0 rejected; stored as ann.csv's labels of support"))

        // The eval with its judge (the answers from the cache), then the agreement.
        let eval = try CLI.run(["eval", "--config", world.configPath, "--dataset", world.datasetPath, "--cache", world.cachePath, "--format", "json"])
        #expect(eval.status == 0, "\(eval.stderr)")
        let calls = world.mock.requestsReceived
        let config = try GatewayConfig.load(path: world.configPath)
        let experiment = config.experiments[0]
        let items = try EvalDataset.read(path: world.datasetPath)
        let cache = try EvalCache(path: world.cachePath)
        defer { try? cache.close() }
        let transport = UpstreamClient()
        defer { transport.shutdown() }
        let (o, _) = EvalRunner(experiment: experiment, eval: experiment.eval!, items: items, transport: transport, cache: cache).run()
        #expect(world.mock.requestsReceived == calls)
        let labels = try storedHumanLabels(cache, experiment: experiment, items: items)
        #expect(labels.count == 37)
        #expect(labels.allSatisfy { $0.variant == "treatment" && $0.control == "control" && $0.labeler == "ann.csv" })
        #expect(labels.filter { $0.note != nil }.map(\.note) == ["close call, \"really\""])
        let agreements = EvalAnalysis.humanAgreement(o, plan: experiment.eval!.plan, labels: labels)
        #expect(agreements.count == 1)
        let a = try #require(agreements.first)
        #expect(a.scorer == "preference" && a.variant == "treatment" && a.requests == 37 && a.labelers == 1)
        let kappa = try #require(a.kappa)
        #expect(kappa.kappa == CohenKappa(table: a.confusion)?.kappa)
        #expect(kappa.count == 37)
        // The judge knows the answers too but says [[A]] a fifth of the time (a flip, a tie); the labeler calls a
        // few ties: they agree well, not perfectly.
        #expect(kappa.kappa > 0.4 && kappa.kappa < 1, "kappa \(kappa.kappa), confusion \(a.confusion)")
        #expect(abs(a.percentAgreement! - Double((0..<3).reduce(0) { $0 + a.confusion[$1][$1] }) / 37) < 1e-15)
        let human = try #require(a.human)
        #expect(human.winRate > 0.5 && human.wins > human.losses)

        // Renaming a variant keeps its labels; another prompt makes other answers, which have none.
        let renamed = try GatewayConfig.parse(Data(world.configText.replacingOccurrences(of: "\"treatment\"", with: "\"finetuned\"").utf8), source: "b.json", environment: [:])
        let relabelled = try storedHumanLabels(cache, experiment: renamed.experiments[0], items: items)
        #expect(relabelled.count == 37 && relabelled.allSatisfy { $0.variant == "finetuned" })
        let changed = try GatewayConfig.parse(Data(world.configText.replacingOccurrences(of: "Be brief.", with: "Be thorough.").utf8), source: "b.json", environment: [:])
        #expect(try storedHumanLabels(cache, experiment: changed.experiments[0], items: items).isEmpty)

        // The same labeler again replaces; another adds.
        #expect(try world.importLabels(path).status == 0)
        #expect(try world.importLabels(path, ["--labeler", "bob"]).status == 0)
        let both = try storedHumanLabels(cache, experiment: experiment, items: items)
        #expect(both.count == 74, "\(both.count) \(Set(both.map(\.labeler)))")
    }

    @Test func aFileWithBadRowsIsRejectedWhole() throws {
        let world = try LabelsWorld(requests: 6)
        #expect(try world.export().status == 0)
        var filled = try world.filled { i, label in i == 1 ? "maybe" : label }
        filled += "izzzzzzzzz,,,,,left,\r\n"
        let path = try world.write(filled, "bad.csv")
        let r = try world.importLabels(path)
        #expect(r.status == 1)
        #expect(r.stderr.contains("bakeoff: \(path):3: column \"label\": \"maybe\" is not a label: write left, right or tie (or l, r, t)"), "\(r.stderr)")
        #expect(r.stderr.contains("\(path):8: column \"item\": \"izzzzzzzzz\" is not an item of this sheet's key"))
        #expect(r.stderr.contains("5 labels read, 0 blank skipped, 2 rejected: nothing stored; correct the rejected rows and import again"))
        let cache = try EvalCache(path: world.cachePath)
        defer { try? cache.close() }
        #expect(try cache.labels().isEmpty)
        // Not a sheet at all.
        let notASheet = try world.importLabels(try world.write("id,answer\n1,2\n", "other.csv"))
        #expect(notASheet.status == 1)
        #expect(notASheet.stderr.contains("the header has no \"item\" column"))
        // A key that is not one.
        let badKey = try CLI.run(["eval", "import-labels", "--key", world.configPath, "--labels", path, "--cache", world.cachePath])
        #expect(badKey.status == 1 && badKey.stderr.contains("not a label key"))
    }

    @Test(arguments: [
        (["help", "eval", "export-labels"], "USAGE: bakeoff eval export-labels --config FILE"),
        (["eval", "export-labels", "--help"], "USAGE: bakeoff eval export-labels --config FILE"),
        (["help", "eval", "import-labels"], "USAGE: bakeoff eval import-labels --key DIR/labels.key.json"),
        (["eval", "import-labels", "-h"], "USAGE: bakeoff eval import-labels --key DIR/labels.key.json"),
        (["help", "eval"], "USAGE: bakeoff eval --config FILE"),
    ])
    func twoWordCommandsHaveTheirHelp(_ arguments: [String], _ start: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix(start), "\(r.stdout)")
    }

    @Test func theGeneralHelpListsThem() throws {
        let help = try CLI.run(["--help"]).stdout
        #expect(help.contains("\n\nMORE COMMANDS:\n  eval export-labels  A blind side-by-side sheet"))
        #expect(help.contains("\n  eval import-labels  Read people's filled label sheets"))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 80 })
    }

    @Test(arguments: [
        (["eval", "export-label"], "bakeoff: unknown command \"eval export-label\"; did you mean \"eval export-labels\"?", "see 'bakeoff eval --help'"),
        (["eval", "import-labels"], "bakeoff: give the key the sheet was made with: --key DIR/labels.key.json", "see 'bakeoff eval import-labels --help'"),
        (["eval", "import-labels", "--key", "k.json"], "bakeoff: give the filled sheet: --labels FILLED.csv", "see 'bakeoff eval import-labels --help'"),
        (["eval", "export-labels", "--dataset", "d"], "bakeoff: give the config", "see 'bakeoff eval export-labels --help'"),
        (["eval", "export-labels", "--bogus"], "bakeoff: unknown option --bogus for 'bakeoff eval export-labels'", "USAGE: bakeoff eval export-labels"),
        (["eval", "export-labels", "--config", "c", "--dataset", "d", "--seed", "x"], "bakeoff: --seed needs a whole number", "bakeoff eval export-labels"),
        (["help", "eval", "export"], "bakeoff: no help on \"eval export\"", "(commands: analyze,"),
    ])
    func usageMistakesNameTheTwoWordCommand(_ arguments: [String], _ message: String, _ hint: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix(message), "\(r.stderr)")
        #expect(r.stderr.contains(hint), "\(r.stderr)")
    }

    @Test func missingFilesAreNamed() throws {
        let r = try CLI.run(["eval", "import-labels", "--key", "/nonexistent/labels.key.json", "--labels", "x.csv"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("bakeoff: --key /nonexistent/labels.key.json: no such file"))
    }
}
