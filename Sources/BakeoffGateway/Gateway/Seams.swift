import BakeoffCore
import BakeoffStore

/// What the gateway needs of its event store. `EventStore` serves it (`StoreEventSink`); tests give an
/// in-memory one.
public protocol GatewayEventSink: Sendable {
    /// Enqueues a request's event without waiting for the disk (dropped, and counted, when it cannot be taken).
    func enqueue(_ event: EventRecord)
    /// Writes a feedback event; `committed` runs once it is durable (nil), or with why it could not be written.
    func write(_ event: EventRecord, committed: @escaping @Sendable ((any Error)?) -> Void)
    /// A request event, by its request id.
    func request(id: String) -> RequestInfo?
    /// The latest request event of a conversation.
    func latestRequest(conversation: String) -> RequestInfo?
    /// Feedback events named `name` (any name for "") on one request.
    func feedbackCount(requestID: String, name: String) -> Int
    /// Feedback events named `name` (any name for "") on a conversation as a whole.
    func feedbackCount(conversationID: String, name: String) -> Int
    /// Whether writes succeed (for /healthz and /metrics).
    var health: StoreHealth { get }
    /// What /metrics shows of the store.
    var counters: EventSinkCounters { get }
    /// Blocks until what was enqueued before is written (a report reads the store after it).
    func flush()
    /// Writes what is left and closes.
    func close()
    /// Whether other gateways write to the same store: a request this one has not served may be theirs, and
    /// reach the store up to a flush interval after its answer.
    var isShared: Bool { get }
    /// Other live gateways of a shared store that run a different plan, one sentence each.
    var replicaProblems: [String] { get }
    /// Whether the last look-up could not reach a shared store: "not found" may then mean "not reachable".
    var lookupsFailing: Bool { get }
    /// The latest request of a conversation for the request path, which must not wait on a shared store for
    /// more than a moment (nil then).
    func latestRequestQuickly(conversation: String) -> RequestInfo?
}

extension GatewayEventSink {
    public var isShared: Bool { false }
    public var replicaProblems: [String] { [] }
    public var lookupsFailing: Bool { false }
    public func latestRequestQuickly(conversation: String) -> RequestInfo? { latestRequest(conversation: conversation) }
}

/// The store's counters shown by /metrics.
public struct EventSinkCounters: Sendable, Equatable {
    public var queueDepth = 0
    public var written = 0
    public var dropped = 0
    public var writeErrors = 0
    public var writeRetries = 0
    public var deleted = 0
    public init() {}
}

/// The gateway's clocks: monotonic for durations, wall-clock for the timestamps of events and tokens.
public protocol GatewayClock: Sendable {
    /// Nanoseconds on a clock that never goes back.
    func monotonicNanoseconds() -> UInt64
    /// Microseconds since 1970.
    func wallMicroseconds() -> Int64
}

/// The system's clocks.
public struct SystemClock: GatewayClock {
    public init() {}
    public func monotonicNanoseconds() -> UInt64 { MonotonicClock.now() }
    public func wallMicroseconds() -> Int64 { WallClock.microseconds() }
}

/// The embedded SQLite store as the gateway's event sink.
struct StoreEventSink: GatewayEventSink {
    let store: EventStore

    func enqueue(_ event: EventRecord) { store.append(event) }

    func write(_ event: EventRecord, committed: @escaping @Sendable ((any Error)?) -> Void) {
        store.appendDurably(event) { error in committed(error) }
    }

    func request(id: String) -> RequestInfo? { store.request(id: id) }
    func latestRequest(conversation: String) -> RequestInfo? { store.latestRequest(conversation: conversation) }
    func feedbackCount(requestID: String, name: String) -> Int { store.feedbackCount(requestID: requestID, name: name) }
    func feedbackCount(conversationID: String, name: String) -> Int { store.feedbackCount(conversationID: conversationID, name: name) }
    var health: StoreHealth { store.health }

    var counters: EventSinkCounters {
        var c = EventSinkCounters()
        c.queueDepth = store.queueDepth
        c.written = store.eventsWritten
        c.dropped = store.eventsDropped
        c.writeErrors = store.writeErrors
        c.writeRetries = store.writeRetries
        c.deleted = store.eventsDeleted
        return c
    }

    func flush() { store.flush() }
    func close() { store.close() }

    var isShared: Bool { store.isShared }
    var lookupsFailing: Bool { store.lookupsFailing }
    func latestRequestQuickly(conversation: String) -> RequestInfo? { store.latestRequest(conversation: conversation, answerWithin: 0.5) }
    var replicaProblems: [String] { GatewayPages.replicaProblems(store.options.replica?.differing ?? [], mine: store.options.replica?.plans ?? [:]) }
}
