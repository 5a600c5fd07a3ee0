import BakeoffHTTP
import Dispatch
import Foundation
import Synchronization

/// An exchange in process: a request handed to a handler, and what it answered (a response, or a stream's
/// head, chunks and end). The client can leave (`departClient`); a memory budget can be set.
public final class FakeExchange: HTTPExchanging {
    public let request: HTTPRequest

    /// What the handler answered so far.
    public struct Answer: Sendable {
        public var status = 0
        public var headers: [(String, String)] = []
        /// The whole body, or everything written to the stream.
        public var body: [UInt8] = []
        public var streamed = false
        /// The stream's writes, one per call.
        public var chunks: [[UInt8]] = []
        /// Answered, or the stream finished.
        public var complete = false
        /// The stream was aborted (`finish(failed: true)`).
        public var failed = false

        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The first header of that name (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        /// The body as a JSON object (nil when it is not one).
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

        /// `error.code` of an OpenAI error body.
        public var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
    }

    struct State {
        var answer = Answer()
        var clientGone = false
        var onClientGone: (@Sendable () -> Void)?
        /// Bytes `reserveBuffer` may still charge.
        var budget: Int
        var reserved = 0
    }
    private let state: Mutex<State>
    private let completed = DispatchSemaphore(value: 0)

    public init(method: String = "POST", path: String, headers: [(String, String)] = [], body: [UInt8] = [],
                query: [String: String] = [:], budget: Int = .max) {
        request = HTTPRequest(method: method, path: path, query: query,
                              headers: headers.map { (name: $0.0.lowercased(), value: $0.1) }, body: body)
        state = Mutex(State(budget: budget))
    }

    public convenience init(method: String = "POST", path: String, headers: [(String, String)] = [], json: String, budget: Int = .max) {
        self.init(method: method, path: path, headers: headers, body: Array(json.utf8), budget: budget)
    }

    public var onClientGone: (@Sendable () -> Void)? {
        get { state.withLock { $0.onClientGone } }
        set { state.withLock { $0.onClientGone = newValue } }
    }

    public func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        let done = state.withLock { s -> Bool in
            guard !s.answer.complete, !s.answer.streamed else { return false }
            s.answer.status = status
            s.answer.headers = headers
            s.answer.body = body
            s.answer.complete = true
            s.onClientGone = nil
            return true
        }
        if done { completed.signal() }
    }

    public func startStream(status: Int, headers: [(String, String)]) {
        state.withLock { s in
            guard !s.answer.complete, !s.answer.streamed else { return }
            s.answer.status = status
            s.answer.headers = headers
            s.answer.streamed = true
        }
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        state.withLock { s in
            guard s.answer.streamed, !s.answer.complete, !s.clientGone else { return false }
            s.answer.body += bytes
            s.answer.chunks.append(bytes)
            return true
        }
    }

    public func finish(failed: Bool) {
        let done = state.withLock { s -> Bool in
            guard s.answer.streamed, !s.answer.complete else { return false }
            s.answer.complete = true
            s.answer.failed = failed
            s.onClientGone = nil
            return true
        }
        if done { completed.signal() }
    }

    public func reserveBuffer(_ bytes: Int) -> Bool {
        state.withLock { s in
            guard !s.answer.complete, bytes <= s.budget else { return false }
            s.budget -= bytes
            s.reserved += bytes
            return true
        }
    }

    /// Bytes charged with `reserveBuffer` so far.
    public var reservedBytes: Int { state.withLock { $0.reserved } }

    /// The client hangs up: its `onClientGone` runs once (as the server reports it) and writes fail.
    public func departClient() {
        let gone = state.withLock { s -> (@Sendable () -> Void)? in
            s.clientGone = true
            defer { s.onClientGone = nil }
            return s.answer.complete ? nil : s.onClientGone
        }
        gone?()
    }

    /// What was answered so far.
    public var answer: Answer { state.withLock { $0.answer } }

    /// Waits until the answer is complete (responded, or the stream finished); nil after `seconds`.
    public func wait(seconds: Double = 10) -> Answer? {
        if state.withLock({ $0.answer.complete }) { return answer }
        guard completed.wait(timeout: .now() + seconds) == .success else { return nil }
        completed.signal()  // later waits return at once
        return answer
    }
}
