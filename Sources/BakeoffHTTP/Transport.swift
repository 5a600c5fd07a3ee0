/// What an application needs of HTTP, as two small protocols: the server side of one exchange, and an
/// upstream transport that sends requests and reports their answers. `HTTPExchange` and `UpstreamClient`
/// conform; tests give fakes that run in process.

/// One request and its answer, as a handler sees it. Answer once, from any thread: `respond`, or
/// `startStream` then `write`s and `finish`.
public protocol HTTPExchanging: AnyObject, Sendable {
    /// The request, with its whole body.
    var request: HTTPRequest { get }
    /// Answers with a complete response.
    func respond(status: Int, headers: [(String, String)], body: [UInt8])
    /// Starts a streamed response; then `write` and `finish`.
    func startStream(status: Int, headers: [(String, String)])
    /// Appends bytes to a started stream; false when the client is gone or too far behind (the stream is
    /// then over).
    @discardableResult func write(_ bytes: [UInt8]) -> Bool
    /// Ends a started stream; `failed` aborts it instead of ending it cleanly.
    func finish(failed: Bool)
    /// Charges bytes the application buffers for this exchange to the server's memory budget until the
    /// exchange is over; false, with nothing charged, when there is no room.
    func reserveBuffer(_ bytes: Int) -> Bool
    /// Called once if the client goes away before its answer is complete.
    var onClientGone: (@Sendable () -> Void)? { get set }
}

extension HTTPExchanging {
    /// Ends a started stream cleanly.
    public func finish() { finish(failed: false) }
}

/// A request to an upstream server: a POST unless another method is named.
public struct UpstreamRequest: Sendable {
    public var url: String
    /// "POST" (the model servers'), "PUT" (with the body) or "GET" (the body is not sent).
    public var method = "POST"
    /// "Name: value" lines.
    public var headers: [String]
    public var body: [UInt8]
    /// The whole call, connection included; 0 for no limit.
    public var timeoutMs: Int
    public var connectTimeoutMs: Int
    /// Whether the response's headers are collected for `UpstreamResponseHead.headers`.
    public var capturesHeaders: Bool
    /// For an https:// URL: a PEM file of the CAs its certificate must chain to, trusted instead of the system's
    /// (an upstream with a private CA or a self-signed certificate); nil trusts the system's CAs.
    public var caFile: String? = nil

    public init(url: String, headers: [String], body: [UInt8], timeoutMs: Int, connectTimeoutMs: Int, capturesHeaders: Bool = false) {
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.capturesHeaders = capturesHeaders
    }
}

/// The status line and headers of an upstream's answer.
public struct UpstreamResponseHead: Sendable {
    public var status: Int
    public var contentType: String?
    /// Names lower-cased, in arrival order; empty unless the request `capturesHeaders`.
    public var headers: [(name: String, value: String)]

    public init(status: Int, contentType: String?, headers: [(name: String, value: String)] = []) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
    }
}

/// What a call reports, in order and one at a time: `onResponse` once before any data (for a call that
/// completes, at the latest just before `onFinish`), `onData` per piece as it arrives, `onFinish` once.
public struct UpstreamHandlers: Sendable {
    public var onResponse: @Sendable (UpstreamResponseHead) -> Void
    public var onData: @Sendable (UnsafeRawBufferPointer) -> Void
    public var onFinish: @Sendable (UpstreamOutcome) -> Void

    public init(onResponse: @escaping @Sendable (UpstreamResponseHead) -> Void = { _ in },
                onData: @escaping @Sendable (UnsafeRawBufferPointer) -> Void = { _ in },
                onFinish: @escaping @Sendable (UpstreamOutcome) -> Void) {
        self.onResponse = onResponse
        self.onData = onData
        self.onFinish = onFinish
    }
}

extension UpstreamTransport {
    /// A transport that does not count its connections (a fake) reports none.
    public var connectionsOpened: Int { 0 }
}

/// A call in progress.
public protocol UpstreamCallHandle: Sendable {
    /// Stops the call if it is still running; `onFinish(.cancelled)` follows. Safe from any thread, also
    /// from the call's own handlers.
    func cancel()
}

/// Sends requests to upstream servers.
public protocol UpstreamTransport: Sendable {
    /// Starts a call. Its handlers may run before this returns (e.g. `onFinish` at once while shutting down).
    @discardableResult
    func start(_ request: UpstreamRequest, handlers: UpstreamHandlers) -> any UpstreamCallHandle
    /// Calls started and not finished.
    var callsInProgress: Int { get }
    /// Connections opened so far (each one TLS handshake for an https:// upstream): far fewer than the calls
    /// while connections are kept alive and reused.
    var connectionsOpened: Int { get }
    /// Ends every call still running (`.failed(.shutdown)`) and refuses new ones.
    func shutdown()
}
