import BakeoffCore
import Foundation

/// One request of an offline evaluation: what every variant is sent, and what a good answer looks like.
public struct EvalItem: Sendable, Equatable {
    /// Unique within the dataset; names the request in results, caches and reports.
    public var id: String
    /// The conversation so far, as compact JSON (`[{"role": ..., "content": ...}, ...]`), for chat variants.
    public var messagesJSON: String?
    /// The prompt, for completion variants (a dataset line has `messages` or `prompt`, not both).
    public var prompt: String?
    /// The expected answer, for scorers that compare against one (exact match, token F1, ROUGE-L).
    public var reference: String?
    /// Strata such as `topic`, in the line's order: string values only, so they can name groups.
    public var metadata: [(key: String, value: String)]
    /// The 1-based line of the dataset it came from.
    public var line: Int

    public init(id: String, messagesJSON: String? = nil, prompt: String? = nil, reference: String? = nil,
                metadata: [(key: String, value: String)] = [], line: Int = 0) {
        self.id = id
        self.messagesJSON = messagesJSON
        self.prompt = prompt
        self.reference = reference
        self.metadata = metadata
        self.line = line
    }

    public static func == (a: EvalItem, b: EvalItem) -> Bool {
        a.id == b.id && a.messagesJSON == b.messagesJSON && a.prompt == b.prompt && a.reference == b.reference
            && a.metadata.map(\.key) == b.metadata.map(\.key) && a.metadata.map(\.value) == b.metadata.map(\.value) && a.line == b.line
    }
}

/// A dataset line that cannot be used: where (line, field) and why.
public struct EvalDatasetError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    /// 1-based line; nil for problems of the whole file.
    public var line: Int?
    public var field: String?
    public var message: String

    public init(source: String, line: Int? = nil, field: String? = nil, message: String) {
        self.source = source
        self.line = line
        self.field = field
        self.message = message
    }

    /// Control characters from the file (a hostile dataset's terminal escapes) are shown as U+FFFD.
    public var description: String {
        ClientText.terminal("\(source)" + (line.map { ":\($0)" } ?? "") + ": " + (field.map { "\"\($0)\" " } ?? "") + message)
    }
}

/// The requests of an offline evaluation, read from JSON Lines: one object per line with `id`, `messages` (or
/// `prompt`), and optionally `reference` and `metadata`. Blank lines are skipped.
public enum EvalDataset {
    /// The fields a line may have; anything else is refused, so a misspelt `referense` is not silently lost.
    public static let fields: Set<String> = ["id", "messages", "prompt", "reference", "metadata"]

    /// Reads the dataset at `path` line by line (the first `limit` requests only, when given: the rest of the file
    /// is not read).
    public static func read(path: String, limit: Int? = nil) throws(EvalDatasetError) -> [EvalItem] {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        guard exists, !isDirectory.boolValue else {
            throw EvalDatasetError(source: path, message: !exists ? "no such file" : "is a directory")
        }
        var reader: LineReader
        do { reader = try LineReader(path: path) } catch { throw EvalDatasetError(source: path, message: error.message) }
        var collector = Collector(source: path, limit: limit)
        do {
            try reader.forEachLine { (line, number) throws(Collector.Stop) in try collector.add(Array(line), number: number) }
        } catch {
            switch error {
            case .file(let e): throw EvalDatasetError(source: path, message: e.message)
            case .body(.problem(let e)): throw e
            case .body(.enough): break
            }
        }
        return try collector.finish()
    }

    /// Parses a whole dataset in memory.
    public static func parse(_ bytes: [UInt8], source: String) throws(EvalDatasetError) -> [EvalItem] {
        var collector = Collector(source: source, limit: nil)
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = Array(bytes[start..<lineEnd])
            start = end + 1
            do { try collector.add(line, number: lineNumber) } catch {
                if case .problem(let e) = error { throw e }
                break
            }
        }
        return try collector.finish()
    }

    /// The requests read so far, their ids checked for uniqueness.
    struct Collector {
        enum Stop: Error { case enough, problem(EvalDatasetError) }
        let source: String
        let limit: Int?
        var items: [EvalItem] = []
        var firstLine: [String: Int] = [:]

        mutating func add(_ line: [UInt8], number: Int) throws(Stop) {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            let item: EvalItem
            do { item = try EvalDataset.parseLine(line, number: number, source: source) } catch { throw .problem(error) }
            if let earlier = firstLine[item.id] {
                throw .problem(EvalDatasetError(source: source, line: number, field: "id", message: "\"\(item.id)\" is also the id of line \(earlier); ids must be unique"))
            }
            firstLine[item.id] = number
            items.append(item)
            if let limit, items.count >= limit { throw .enough }
        }

        func finish() throws(EvalDatasetError) -> [EvalItem] {
            guard !items.isEmpty else { throw EvalDatasetError(source: source, message: "no requests: the dataset is empty") }
            return items
        }
    }

    static func parseLine(_ line: [UInt8], number: Int, source: String) throws(EvalDatasetError) -> EvalItem {
        func fail(_ field: String?, _ message: String) -> EvalDatasetError {
            EvalDatasetError(source: source, line: number, field: field, message: message)
        }
        let document: JSONDocument
        do throws(JSONSyntaxError) { document = try JSONValue.parse(line, trailingCommas: false) } catch {
            throw fail(nil, "not valid JSON: column \(error.position.column): \(error.message)")
        }
        guard let object = document.root.object else { throw fail(nil, "must be a JSON object, got \(document.root.described)") }
        if let repeated = object.repeatedMembers.first { throw fail(repeated.key, "appears twice") }
        if let unknown = object.keys.first(where: { !fields.contains($0) }) {
            let guess = closestName(unknown, among: fields.sorted())
            throw fail(unknown, "is not a dataset field" + (guess.map { "; did you mean \"\($0)\"?" } ?? "") + " (fields: id, messages, prompt, reference, metadata)")
        }
        guard let idValue = object["id"] else { throw fail("id", "is required: a unique name for the request") }
        let id: String
        if let s = idValue.string {
            id = s
        } else if let n = idValue.number, n == n.rounded(), abs(n) < 1e15 {
            id = JSONWriter.number(n)  // a whole number is a name too
        } else {
            throw fail("id", "must be a string or a whole number, got \(idValue.described)")
        }
        guard !id.isEmpty else { throw fail("id", "must not be empty") }

        var item = EvalItem(id: id, line: number)
        switch (object["messages"], object["prompt"]) {
        case (nil, nil): throw fail("messages", "is required (or \"prompt\" for completion variants)")
        case (.some, .some): throw fail("prompt", "and \"messages\" are both given: a request has one of them")
        case (let messages?, nil):
            guard let list = messages.array else { throw fail("messages", "must be an array of {\"role\", \"content\"} objects, got \(messages.described)") }
            guard !list.isEmpty else { throw fail("messages", "must not be empty") }
            for (i, message) in list.enumerated() {
                guard let m = message.object else { throw fail("messages[\(i)]", "must be an object, got \(message.described)") }
                guard m["role"]?.string?.isEmpty == false else { throw fail("messages[\(i)].role", "is required: a string such as \"user\"") }
                guard let content = m["content"], content.string != nil || content.array != nil else {
                    throw fail("messages[\(i)].content", "is required: a string (or an array of content parts)")
                }
            }
            item.messagesJSON = messages.jsonText
        case (nil, let prompt?):
            guard let text = prompt.string else { throw fail("prompt", "must be a string, got \(prompt.described)") }
            item.prompt = text
        }
        if let reference = object["reference"], !reference.isNull {
            guard let text = reference.string else { throw fail("reference", "must be a string (the expected answer), got \(reference.described)") }
            item.reference = text
        }
        if let metadata = object["metadata"], !metadata.isNull {
            guard let strata = metadata.object else { throw fail("metadata", "must be an object such as {\"topic\": \"billing\"}, got \(metadata.described)") }
            for key in strata.keys {
                let value = strata[key]!
                if let s = value.string {
                    item.metadata.append((key, s))
                } else if value.number != nil || value.bool != nil {
                    item.metadata.append((key, value.jsonText))
                } else {
                    throw fail("metadata.\(key)", "must be a string, number or true/false (it names a group), got \(value.described)")
                }
            }
        }
        return item
    }
}
