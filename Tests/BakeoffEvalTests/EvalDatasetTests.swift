import BakeoffEval
import Foundation
import Testing

@Suite("Offline eval datasets (JSON Lines)")
struct EvalDatasetTests {
    static func parse(_ text: String) throws(EvalDatasetError) -> [EvalItem] {
        try EvalDataset.parse(Array(text.utf8), source: "requests.jsonl")
    }

    @Test func readsChatAndCompletionRequestsWithReferencesAndStrata() throws {
        let items = try Self.parse("""
            {"id": "r1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund?"}], "reference": "Yes, within 30 days.", "metadata": {"topic": "billing", "tier": 2}}

            {"id": 7, "prompt": "Translate: chat", "metadata": {"topic": "language"}}\r
            """)
        #expect(items.count == 2)
        #expect(items[0].id == "r1" && items[0].line == 1)
        #expect(items[0].messagesJSON == #"[{"role":"system","content":"Be brief."},{"role":"user","content":"Refund?"}]"#)
        #expect(items[0].reference == "Yes, within 30 days.")
        #expect(items[0].metadata.map(\.key) == ["topic", "tier"] && items[0].metadata.map(\.value) == ["billing", "2"])
        #expect(items[1].id == "7" && items[1].prompt == "Translate: chat" && items[1].messagesJSON == nil && items[1].line == 3)
    }

    @Test(arguments: [
        (#"{"messages": [{"role": "user", "content": "a"}]}"#, "requests.jsonl:1: \"id\" is required"),
        (#"{"id": "a"}"#, "requests.jsonl:1: \"messages\" is required (or \"prompt\""),
        (#"{"id": "a", "prompt": "x", "messages": [{"role": "user", "content": "a"}]}"#, "\"prompt\" and \"messages\" are both given"),
        (#"{"id": "a", "messages": "hi"}"#, "\"messages\" must be an array"),
        (#"{"id": "a", "messages": []}"#, "\"messages\" must not be empty"),
        (#"{"id": "a", "messages": [{"content": "x"}]}"#, "\"messages[0].role\" is required"),
        (#"{"id": "a", "messages": [{"role": "user"}]}"#, "\"messages[0].content\" is required"),
        (#"{"id": "a", "prompt": "x", "referense": "y"}"#, "\"referense\" is not a dataset field; did you mean \"reference\"?"),
        (#"{"id": "a", "prompt": "x", "reference": 3}"#, "\"reference\" must be a string"),
        (#"{"id": "a", "prompt": "x", "metadata": {"topic": ["a"]}}"#, "\"metadata.topic\" must be a string, number or true/false"),
        (#"{"id": "a", "id": "b", "prompt": "x"}"#, "\"id\" appears twice"),
        (#"{"id": 1.5, "prompt": "x"}"#, "\"id\" must be a string or a whole number"),
        (#"{"id": "a", "prompt": "x",}"#, "requests.jsonl:1: not valid JSON"),
        (#"["a"]"#, "must be a JSON object, got an array"),
        ("{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"a\", \"prompt\": \"y\"}", "requests.jsonl:2: \"id\" \"a\" is also the id of line 1"),
        ("\n  \n", "requests.jsonl: no requests: the dataset is empty"),
    ])
    func errorsNameTheLineAndTheField(text: String, expected: String) {
        do {
            _ = try Self.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func aMissingFileOrADirectoryIsSaidPlainly() {
        #expect(throws: EvalDatasetError(source: "/nonexistent/requests.jsonl", message: "no such file")) {
            try EvalDataset.read(path: "/nonexistent/requests.jsonl")
        }
        #expect(throws: EvalDatasetError(source: "/tmp", message: "is a directory")) { try EvalDataset.read(path: "/tmp") }
    }
}
