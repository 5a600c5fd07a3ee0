import BakeoffCore
import BakeoffGateway
import BakeoffStore
import Dispatch
import Foundation
import Synchronization

/// An event sink in memory: request events are kept at once; a feedback write is committed at once, refused,
/// or held until the test commits or fails it.
public final class MemoryEventSink: GatewayEventSink {
    /// What happens to a feedback write.
    public enum WriteMode: Sendable {
        case commit
        /// Refused with this message (as a store that cannot write).
        case fail(String)
        /// Held until `commitHeld` or `failHeld`.
        case hold
    }

    /// A write error, described as the store describes its own.
    public struct WriteError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    struct Held {
        var event: EventRecord
        var committed: @Sendable ((any Error)?) -> Void
    }
    struct State {
        var events: [EventRecord] = []
        var held: [Held] = []
        var mode = WriteMode.commit
        var health = StoreHealth.ok
        var dropped = 0
        var closed = false
    }
    private let state = Mutex(State())
    /// Signalled at every event kept, for `wait`.
    private let added = DispatchSemaphore(value: 0)

    public init(events: [EventRecord] = []) {
        state.withLock { $0.events = events }
    }

    /// The events written (enqueued or committed), in order.
    public var events: [EventRecord] { state.withLock { $0.events } }

    /// The events once there are at least `count` (a request's event follows its answer), or those there
    /// are after `seconds`.
    public func wait(for count: Int, seconds: Double = 10) -> [EventRecord] {
        let deadline = DispatchTime.now() + seconds
        while true {
            let now = events
            if now.count >= count { return now }
            if added.wait(timeout: deadline) == .timedOut { return events }
        }
    }
    public var requestEvents: [EventRecord] { events.filter { $0.kind == .request } }
    public var feedbackEvents: [EventRecord] { events.filter { $0.kind == .feedback } }

    /// Feedback writes waiting for `commitHeld` or `failHeld`.
    public var heldCount: Int { state.withLock { $0.held.count } }
    public var closed: Bool { state.withLock { $0.closed } }

    public var mode: WriteMode {
        get { state.withLock { $0.mode } }
        set { state.withLock { $0.mode = newValue } }
    }

    public var health: StoreHealth {
        get { state.withLock { $0.health } }
        set { state.withLock { $0.health = newValue } }
    }

    public func enqueue(_ event: EventRecord) {
        state.withLock { s in
            if s.closed { s.dropped += 1 } else { s.events.append(event) }
        }
        added.signal()
    }

    public func write(_ event: EventRecord, committed: @escaping @Sendable ((any Error)?) -> Void) {
        let error = state.withLock { s -> WriteError?? in
            switch s.mode {
            case .commit:
                s.events.append(event)
                added.signal()
                return .some(nil)
            case .fail(let message):
                s.dropped += 1
                return .some(WriteError(description: message))
            case .hold:
                s.held.append(Held(event: event, committed: committed))
                return nil
            }
        }
        if let error { committed(error) }
    }

    /// Commits the held writes (their completions run).
    public func commitHeld() {
        let held = state.withLock { s -> [Held] in
            defer { s.held = [] }
            s.events += s.held.map(\.event)
            return s.held
        }
        for _ in held { added.signal() }
        for h in held { h.committed(nil) }
    }

    /// Fails the held writes with `message`.
    public func failHeld(_ message: String) {
        let held = state.withLock { s -> [Held] in
            defer { s.held = [] }
            s.dropped += s.held.count
            return s.held
        }
        for h in held { h.committed(WriteError(description: message)) }
    }

    public func request(id: String) -> RequestInfo? {
        state.withLock { s in s.events.last { $0.kind == .request && $0.requestID == id }.map(Self.info) }
    }

    public func latestRequest(conversation: String) -> RequestInfo? {
        state.withLock { s in s.events.last { $0.kind == .request && $0.conversationID == conversation }.map(Self.info) }
    }

    public func feedbackCount(requestID: String, name: String) -> Int {
        state.withLock { s in s.events.filter { $0.kind == .feedback && $0.requestID == requestID && (name.isEmpty || $0.name == name) }.count }
    }

    public func feedbackCount(conversationID: String, name: String) -> Int {
        state.withLock { s in
            s.events.filter { $0.kind == .feedback && $0.requestID.isEmpty && $0.conversationID == conversationID && (name.isEmpty || $0.name == name) }.count
        }
    }

    public var counters: EventSinkCounters {
        state.withLock { s in
            var c = EventSinkCounters()
            c.queueDepth = s.held.count
            c.written = s.events.count
            c.dropped = s.dropped
            return c
        }
    }

    public func flush() {}
    public func close() { state.withLock { $0.closed = true } }

    static func info(_ e: EventRecord) -> RequestInfo {
        RequestInfo(experiment: e.experiment, variant: e.variant, userID: e.userID, conversationID: e.conversationID, requestID: e.requestID, qa: e.qa)
    }
}
