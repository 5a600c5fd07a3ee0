import BakeoffCore
import BakeoffEval
import Foundation
import Testing

@Suite("bakeoff sample", .serialized)
struct SampleCLITests {
    static func request(_ id: String, user: String, variant: String = "control", day: Int = 1, messages: String? = nil,
                        prompt: String? = nil, experiment: String = "e", extra: String = "") -> String {
        var line = #"{"event":"request","ts":"2026-11-0\#(day)T10:00:00Z","experiment":"\#(experiment)","variant":"\#(variant)","user_id":"\#(user)","request_id":"\#(id)","latency_ms":5"#
        line += extra
        if let prompt { line += #","prompt":"# + JSONWriter.quote(prompt) + #","response":"live answer""# }
        if let messages { line += #","messages":"# + messages }
        return line + "}"
    }

    static func chat(_ text: String) -> String {
        #"[{"role":"system","content":"You are terse."},{"role":"user","content":"# + JSONWriter.quote(text) + "}]"
    }

    /// A store: 40 users on two arms over two days, one of them heavy (300 requests); QA, failed and content-less
    /// requests; another experiment.
    static func store(_ dir: URL) throws -> String {
        var lines: [String] = []
        for u in 0..<40 {
            let variant = u % 4 == 0 ? "treatment" : "control"
            let count = u == 0 ? 300 : 2
            for r in 0..<count {
                lines.append(request("req-\(u)-\(r)", user: "user-\(u)", variant: variant, day: 1 + r % 2, messages: chat("question \(u).\(r)"), prompt: "You are terse.\nquestion \(u).\(r)"))
            }
        }
        lines.append(request("old-1", user: "user-1", prompt: "logged before messages"))
        lines.append(request("qa-1", user: "admin", messages: chat("qa"), extra: #","qa":true"#))
        lines.append(request("fail-1", user: "user-2", messages: chat("failed"), extra: #","status":"upstream_error""#))
        lines.append(request("plain-1", user: "user-3"))
        lines.append(request("tool-1", user: "user-5", messages: #"[{"role":"assistant","content":null,"tool_calls":[]}]"#))
        lines.append(request("f-1", user: "user-9", prompt: "other", experiment: "f"))
        lines.append(request("n-1", user: "user-9", experiment: "nocontent"))
        let log = dir.appendingPathComponent("log.jsonl").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let db = dir.appendingPathComponent("events.db").path
        let imported = try CLI.run(["import", "--db", db, log])
        #expect(imported.status == 0, "\(imported.stderr)")
        return db
    }

    static func directory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-sample-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func writesADatasetTheEvalReaderTakes() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try Self.store(dir)
        let out = dir.appendingPathComponent("sample.jsonl").path
        let run = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "20", "--seed", "3", "--output", out])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        // 40 users; 300 + 39 × 2 chat requests, the old prompt-only one and the tool call have content too.
        #expect(run.stderr.contains("sampled 20 requests from 20 of 40 users (experiment e, 380 requests with content) -> \(out)"), "\(run.stderr)")
        #expect(run.stderr.contains("left out: 1 QA request (--include-qa), 1 failed request (--include-failed)"), "\(run.stderr)")
        let items = try EvalDataset.read(path: out)
        #expect(items.count == 20)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(!text.contains("user-"), "no user ids in the dataset")
        #expect(!text.contains("live answer"), "no live answers in the dataset")
        for item in items {
            #expect(item.id.hasPrefix("req-") || item.id == "old-1")
            if item.id == "old-1" {
                #expect(item.prompt == "logged before messages" && item.messagesJSON == nil)
                continue
            }
            let messages = try #require(item.messagesJSON)
            #expect(messages.hasPrefix(#"[{"role":"system","content":"You are terse."},{"role":"user","content":"question "#))
            let keys = item.metadata.map(\.key)
            #expect(keys == ["live_variant", "day"])
            let user = Int(item.id.split(separator: "-")[1])!
            #expect(item.metadata[0].value == (user % 4 == 0 ? "treatment" : "control"))
            #expect(["2026-11-01", "2026-11-02"].contains(item.metadata[1].value))
        }
        // One request per user: at most one of the heavy user's.
        #expect(items.filter { $0.id.hasPrefix("req-0-") }.count <= 1)

        // The same seed writes the same bytes, to stdout too.
        let again = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "20", "--seed", "3"])
        #expect(again.status == 0 && again.stdout == text)
        #expect(again.stderr.contains("-> stdout"))
        #expect(try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "20", "--seed", "4"]).stdout != text)
    }

    @Test func roundsStrataAndRefusalsAreReported() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try Self.store(dir)
        let many = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "100"])
        #expect(many.status == 0, "\(many.stderr)")
        #expect(many.stderr.contains("--size exceeds the number of users: the draw went round again, up to"), "\(many.stderr)")
        #expect(many.stderr.contains("passed over 1 request the dataset reader would refuse"), "\(many.stderr)")
        #expect(try EvalDataset.parse(Array(many.stdout.utf8), source: "stdout").count == 100)

        let strata = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "20", "--stratify", "variant"])
        #expect(strata.status == 0, "\(strata.stderr)")
        // 30 control users and 10 treatment users: 15 and 5.
        #expect(strata.stderr.contains("by variant: control 15 (30 users), treatment 5 (10 users)"), "\(strata.stderr)")
        let items = try EvalDataset.parse(Array(strata.stdout.utf8), source: "stdout")
        #expect(items.filter { $0.metadata.first?.value == "treatment" }.count == 5)

        let qa = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", "1000", "--include-qa", "--include-failed"])
        #expect(qa.status == 0, "\(qa.stderr)")
        #expect(qa.stdout.contains("\"id\":\"qa-1\"") && qa.stdout.contains("\"id\":\"fail-1\""))
        #expect(qa.stderr.contains("asked for 1,000: the experiment has no more requests with distinct content"), "\(qa.stderr)")
    }

    @Test func errorsSayWhatToDo() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try Self.store(dir)
        let missing = try CLI.run(["sample", "--db", dir.appendingPathComponent("none.db").path, "--size", "5"])
        #expect(missing.status == 1 && missing.stderr.contains("cannot open the event store"), "\(missing.stderr)")
        let unknown = try CLI.run(["sample", "--db", db, "--experiment", "nocontnet", "--size", "5"])
        #expect(unknown.status == 1 && unknown.stderr.contains("experiment \"nocontnet\" not found") && unknown.stderr.contains("did you mean \"nocontent\"?"), "\(unknown.stderr)")
        let several = try CLI.run(["sample", "--db", db, "--size", "5"])
        #expect(several.status == 1 && several.stderr.contains("(--experiment NAME)"), "\(several.stderr)")
        let none = try CLI.run(["sample", "--db", db, "--experiment", "nocontent", "--size", "5"])
        #expect(none.status == 1 && none.stderr.contains("turn on \"log_content\""), "\(none.stderr)")
        for size in ["0", "-3", "many"] {
            let bad = try CLI.run(["sample", "--db", db, "--experiment", "e", "--size", size])
            #expect(bad.status == 2 && bad.stderr.contains("--size"), "\(bad.stderr)")
        }
        let noSize = try CLI.run(["sample", "--db", db, "--experiment", "e"])
        #expect(noSize.status == 2 && noSize.stderr.contains("--size N is required"), "\(noSize.stderr)")
        #expect(try CLI.run(["sample", "--help"]).stdout.contains("uniformly over users"))
    }
}
