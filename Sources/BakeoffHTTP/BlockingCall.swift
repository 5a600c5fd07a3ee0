import Dispatch
import Synchronization

/// A whole HTTP answer, for callers that wait for it (exporters, REST clients, tools) rather than stream it.
public struct HTTPAnswer: Sendable {
    /// The HTTP status; 0 when no answer came (`failure` says why).
    public var status: Int
    /// The answer's headers (names lower-cased).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Why the call gave no complete answer (unreachable, timeout, broken answer), nil when it did.
    public var failure: String?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], failure: String? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.failure = failure
    }

    /// The first header of that name (lower-case).
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// The body as text (invalid UTF-8 replaced), at most `limit` bytes of it: for error messages.
    public func text(limit: Int = 500) -> String { String(decoding: body.prefix(limit), as: UTF8.self) }
}

extension UpstreamTransport {
    /// Sends `request` and waits for the whole answer (the calling thread blocks; never call it on a thread the
    /// transport's callbacks need).
    public func send(_ request: UpstreamRequest) -> HTTPAnswer {
        let box = AnswerBox()
        var request = request
        request.capturesHeaders = true
        start(request, handlers: UpstreamHandlers(
            onResponse: { head in box.answer.withLock { $0.status = head.status; $0.headers = head.headers } },
            onData: { bytes in box.answer.withLock { $0.body.append(contentsOf: bytes) } },
            onFinish: { outcome in
                box.answer.withLock { a in
                    switch outcome {
                    case .completed: break
                    case .failed(_, let message): a.failure = message; a.status = 0
                    case .cancelled: a.failure = "cancelled"; a.status = 0
                    }
                }
                box.done.signal()
            }
        ))
        box.done.wait()
        return box.answer.withLock { $0 }
    }
}

/// What a blocking call's handlers fill in, and the signal that they are done.
private final class AnswerBox: Sendable {
    let answer = Mutex(HTTPAnswer(status: 0))
    let done = DispatchSemaphore(value: 0)
}
