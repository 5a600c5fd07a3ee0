import BakeoffCore

extension EvalItem {
    /// What a judge is shown as the user's question: the prompt, or the conversation without its system
    /// messages (the variants' system prompts differ; the judge compares answers to what the user asked).
    /// A single user turn is shown as it is; a longer conversation with its speakers.
    public var judgeQuestion: String {
        if let prompt { return prompt }
        guard let messagesJSON, let document = try? JSONValue.parse(Array(messagesJSON.utf8)), let messages = document.root.array else { return "" }
        var turns: [(role: String, text: String)] = []
        for m in messages {
            guard let o = m.object, let role = o["role"]?.string, role != "system", role != "developer" else { continue }
            turns.append((role, Self.text(of: o["content"])))
        }
        if turns.count == 1 { return turns[0].text }
        return turns.map { "\($0.role == "assistant" ? "Assistant" : $0.role == "user" ? "User" : $0.role.capitalized): \($0.text)" }
            .joined(separator: "\n\n")
    }

    /// A message's text: a string, or the text parts of a list of parts.
    static func text(of content: JSONValue?) -> String {
        guard let content else { return "" }
        if let s = content.string { return s }
        guard let parts = content.array else { return "" }
        return parts.compactMap { $0.object?["text"]?.string }.joined(separator: "\n")
    }
}
