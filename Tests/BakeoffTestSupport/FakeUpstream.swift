import BakeoffHTTP
import Dispatch
import Synchronization

/// An upstream transport in process that answers each call from a script: JSON, an SSE stream, an error
/// status, a connection failure, a stream that breaks mid-way, or nothing until it is cancelled.
///
/// Answers are delivered in order on one serial queue (as the real client runs handlers on its thread), or
/// before `start` returns with `immediate`. Time passes upstream only when the script says so: `.advance`
/// moves the `ManualClock` given at init.
public final class FakeUpstream: UpstreamTransport {
    /// One thing the upstream does.
    public enum Step: Sendable {
        /// The status line and headers.
        case head(status: Int, contentType: String?, headers: [(name: String, value: String)])
        /// A piece of the body.
        case data([UInt8])
        /// Time passes (on the clock given at init).
        case advance(nanoseconds: UInt64)
        /// The end.
        case finish(UpstreamOutcome)
        /// Nothing more until the call is cancelled (then `.cancelled`) or the transport shuts down.
        case hang
    }

    /// What one call does.
    public struct Script: Sendable {
        public var steps: [Step]
        public init(_ steps: [Step]) { self.steps = steps }

        /// A complete JSON answer after `after` nanoseconds.
        public static func json(_ body: String, status: Int = 200, headers: [(name: String, value: String)] = [], after: UInt64 = 0) -> Script {
            Script([.advance(nanoseconds: after), .head(status: status, contentType: "application/json", headers: headers),
                    .data(Array(body.utf8)), .finish(.completed(status: status))])
        }

        /// An event stream: the first event after `firstAfter` nanoseconds, each next one `gap` later.
        public static func sse(_ events: [String], firstAfter: UInt64 = 0, gap: UInt64 = 0, headers: [(name: String, value: String)] = []) -> Script {
            var steps: [Step] = [.advance(nanoseconds: firstAfter), .head(status: 200, contentType: "text/event-stream", headers: headers)]
            for (i, event) in events.enumerated() {
                if i > 0 { steps.append(.advance(nanoseconds: gap)) }
                steps.append(.data(Array(event.utf8)))
            }
            steps.append(.finish(.completed(status: 200)))
            return Script(steps)
        }

        /// Some events, then the connection breaks.
        public static func brokenStream(_ events: [String], message: String = "the upstream's response broke off: Transferred a partial file") -> Script {
            var script = sse(events)
            script.steps[script.steps.count - 1] = .finish(.failed(.brokenResponse, message: message))
            return script
        }

        /// A failure before any answer: unreachable, a timeout...
        public static func failure(_ failure: UpstreamFailure, _ message: String = "cannot reach the upstream: Could not connect to server") -> Script {
            Script([.finish(.failed(failure, message: message))])
        }

        /// An answer that never comes (until the call is cancelled).
        public static let hang = Script([.hang])
    }

    /// One call, as the gateway made it.
    public struct Call: Sendable {
        public var request: UpstreamRequest
        public var cancelled: Bool
    }

    struct Pending {
        var request: UpstreamRequest
        var handlers: UpstreamHandlers?
        var cancelled = false
    }
    struct State {
        var calls: [Pending] = []
        var next = 0
        var shutDown = false
    }

    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "fake-upstream")
    private let script: @Sendable (UpstreamRequest, Int) -> Script
    private let clock: ManualClock?
    private let immediate: Bool

    /// `script` says what call number `n` (from 0) does.
    public init(clock: ManualClock? = nil, immediate: Bool = false, script: @escaping @Sendable (UpstreamRequest, Int) -> Script) {
        self.clock = clock
        self.immediate = immediate
        self.script = script
    }

    /// Every call answered the same way.
    public convenience init(clock: ManualClock? = nil, immediate: Bool = false, always: Script) {
        self.init(clock: clock, immediate: immediate) { _, _ in always }
    }

    /// The calls made so far, in order.
    public var calls: [Call] { state.withLock { $0.calls.map { Call(request: $0.request, cancelled: $0.cancelled) } } }

    struct Handle: UpstreamCallHandle {
        let upstream: FakeUpstream
        let index: Int
        func cancel() { upstream.cancel(index) }
    }

    public func start(_ request: UpstreamRequest, handlers: UpstreamHandlers) -> any UpstreamCallHandle {
        let (index, refused) = state.withLock { s -> (Int, Bool) in
            s.calls.append(Pending(request: request, handlers: s.shutDown ? nil : handlers))
            return (s.calls.count - 1, s.shutDown)
        }
        if refused {
            handlers.onFinish(.failed(.shutdown, message: "the gateway is shutting down"))
        } else {
            let steps = script(request, index).steps
            if immediate { run(steps, index) } else { queue.async { self.run(steps, index) } }
        }
        return Handle(upstream: self, index: index)
    }

    public var callsInProgress: Int { state.withLock { $0.calls.filter { $0.handlers != nil }.count } }

    public func shutdown() {
        let open = state.withLock { s -> [UpstreamHandlers] in
            s.shutDown = true
            return s.calls.indices.compactMap { i in
                defer { s.calls[i].handlers = nil }
                return s.calls[i].handlers
            }
        }
        for handlers in open { handlers.onFinish(.failed(.shutdown, message: "the gateway is shutting down")) }
    }

    /// The handlers of a call still open.
    private func handlers(_ index: Int) -> UpstreamHandlers? { state.withLock { $0.calls[index].handlers } }

    /// Takes a call's handlers, ending it: nil when it had ended.
    private func take(_ index: Int) -> UpstreamHandlers? {
        state.withLock { s in
            defer { s.calls[index].handlers = nil }
            return s.calls[index].handlers
        }
    }

    private func cancel(_ index: Int) {
        let handlers = state.withLock { s -> UpstreamHandlers? in
            guard s.calls[index].handlers != nil else { return nil }
            s.calls[index].cancelled = true
            defer { s.calls[index].handlers = nil }
            return s.calls[index].handlers
        }
        guard let handlers else { return }
        if immediate { handlers.onFinish(.cancelled) } else { queue.async { handlers.onFinish(.cancelled) } }
    }

    private func run(_ steps: [Step], _ index: Int) {
        var responded = false
        for step in steps {
            switch step {
            case .head(let status, let contentType, let headers):
                guard let h = handlers(index) else { return }
                responded = true
                h.onResponse(UpstreamResponseHead(status: status, contentType: contentType, headers: headers))
            case .data(let bytes):
                guard let h = handlers(index) else { return }
                bytes.withUnsafeBytes { h.onData($0) }
            case .advance(let ns):
                clock?.advance(nanoseconds: ns)
            case .finish(let outcome):
                guard let h = take(index) else { return }
                if case .completed(let status) = outcome, !responded {
                    h.onResponse(UpstreamResponseHead(status: status, contentType: nil))
                }
                h.onFinish(outcome)
            case .hang:
                return
            }
        }
    }
}
