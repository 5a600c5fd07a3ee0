import CMicroHTTPD
import CMicroHTTPDSupport
import Foundation
import Synchronization
import BakeoffCore

/// An HTTP/1.1 server on libmicrohttpd: one daemon per event loop (`EventLoop`, one thread each, sharing the
/// listening socket); a request waiting for its upstream is suspended, so a few threads carry thousands of
/// concurrent requests and streams. An upstream client on the same loops (`UpstreamClient(loops:)`) answers a
/// request on the thread that read it.
///
/// The handler is called once per request, when its whole body has arrived, on a server thread. It answers
/// through the `HTTPExchange`, right away or later from any thread (`respond`, or `startStream` then `write`
/// and `finish`).
public final class HTTPServer: Sendable {
    public struct Options: Sendable {
        public var host: String = "127.0.0.1"
        /// 0 picks a free port (see `port` after start).
        public var port: UInt16 = 0
        public var threads: Int = 2
        /// Bodies above this get 413 before they are read.
        public var maxBodyBytes: Int = 10 << 20
        /// A connection's request headers must be in within this of its opening (see `ConnectionDeadlines`).
        public var headerTimeoutMs: Int = 10_000
        /// A request's whole body must be in within this of its headers.
        public var bodyTimeoutMs: Int = 30_000
        /// A connection with no traffic either way for this long is closed (kept-alive ones between requests).
        public var idleTimeoutMs: Int = 75_000
        /// Connections open at once; more wait in the listen backlog. Checked against the open-files limit.
        public var maxConnections: Int = 16_384
        /// When the open-files limit cannot take `maxConnections`: accept fewer and say so (true), or refuse
        /// to start (false, for a limit the operator set).
        public var lowerConnectionsToFit = true
        /// Connections one client address may have open at once; 0 for no limit, nil for the default: none on
        /// a loopback listener (its clients all share loopback addresses), else a quarter of the connections.
        public var maxConnectionsPerAddress: Int? = nil
        /// Bytes all requests together may buffer (bodies, stream buffers, upstream answers); requests that
        /// would need more get 503 with Retry-After.
        public var memoryBudgetBytes: Int = 256 << 20
        public var eventLoop: PollMode = .epoll
        /// The loops to serve on (one daemon each); nil: `threads` loops of the server's own.
        package var loops: [EventLoop]? = nil
        /// Told the status of each request the server refuses itself (413, 503 over the budget).
        public var onRefusal: (@Sendable (_ status: Int) -> Void)? = nil
        /// How the server's own refusals read: the application's error shape (the gateway's is OpenAI's).
        public var refusalResponse: @Sendable (HTTPRefusal) -> HTTPRefusalResponse = HTTPRefusalResponse.plainText
        /// Serve HTTPS with this certificate and key (see `HTTPServerTLS.swift`); nil serves plain HTTP.
        public var tls: TLS? = nil
        public init() {}
    }

    /// How libmicrohttpd's threads wait for their sockets.
    public enum PollMode: Sendable {
        /// Work in proportion to the sockets that are ready.
        case epoll
        /// Every wait lists every open connection.
        case poll
    }

    public typealias Handler = @Sendable (HTTPExchange) -> Void

    public let options: Options
    let handler: Handler
    /// What `start` set up.
    struct Started {
        var port: UInt16 = 0
        /// One daemon per loop (external epoll), or one with its own threads (poll mode).
        var daemons: [(loop: EventLoop?, daemon: MHDDaemon, slot: DaemonSlot)] = []
        var ownLoops: [EventLoop] = []
        var listenSocket: Int32 = -1
        var maxConnections = 0
        var maxConnectionsPerAddress = 0
        var notes: [String] = []
    }
    private let started = Mutex(Started())
    /// Requests accepted and not yet completed (for a graceful stop). Changed and read sequentially
    /// consistently with `stopped`, so a stop waiting for zero and the completion that reaches it never
    /// both miss each other.
    let inFlight = Atomic<Int>(0)
    /// The exchanges in flight, so a stop can wake suspended ones (libmicrohttpd aborts if any remain).
    let live = Mutex<[ObjectIdentifier: HTTPExchange]>([:])
    let stopped = Atomic<Bool>(false)
    /// Signalled by a completion that leaves no request in flight, or no live exchange, once stopping.
    let quiet = DispatchSemaphore(value: 0)
    /// Signalled at stop, so the watcher ends without finishing its wait.
    private let watcherWake = DispatchSemaphore(value: 0)
    /// Buffered bytes of all requests together.
    public let budget: ByteBudget
    /// Open connections and their deadlines.
    let deadlines: ConnectionDeadlines
    /// libmicrohttpd's messages, with refused connections counted.
    let log = HTTPLog()
    /// How long streamed chunks waited between `write` and their hand-off to the client's socket.
    public let streamDelays = DelayHistogram()
    /// Memory libmicrohttpd gives each connection for its request's headers and its buffers (its default is
    /// 32 KiB; request headers rarely pass a few KiB, and streams hold their data in the exchange).
    static let connectionMemoryBytes = 16 << 10

    /// The bound port (useful when `options.port` was 0).
    public var port: UInt16 { started.withLock { $0.port } }
    /// The event loops the server runs on (empty in poll mode or before start).
    package var loops: [EventLoop] { started.withLock { $0.daemons.compactMap(\.loop) } }
    /// Connections accepted at once, after fitting `options.maxConnections` to the open-files limit.
    public var maxConnections: Int { started.withLock { $0.maxConnections } }
    /// Connections one address may have open (0: no limit).
    public var maxConnectionsPerAddress: Int { started.withLock { $0.maxConnectionsPerAddress } }
    /// What the start had to say to the operator (e.g. fewer connections than asked for); one line each.
    public var notes: [String] { started.withLock { $0.notes } }

    public init(options: Options, handler: @escaping Handler) {
        self.options = options
        self.handler = handler
        budget = ByteBudget(limit: options.memoryBudgetBytes)
        deadlines = ConnectionDeadlines(headerTimeoutMs: options.headerTimeoutMs, bodyTimeoutMs: options.bodyTimeoutMs,
                                        idleTimeoutMs: options.idleTimeoutMs)
    }

    deinit { stop(graceSeconds: 0) }

    /// Connections open now.
    public var openConnections: Int { deadlines.open }
    /// Connections closed so far for sending their headers too slowly.
    public var headerTimeouts: Int { deadlines.closedInHeaders }
    /// Connections closed so far for sending their body too slowly.
    public var bodyTimeouts: Int { deadlines.closedInBody }
    /// Connections refused so far at `maxConnections` or the per-address limit.
    public var refusedConnections: Int { log.refusedConnections }
    /// Connections accepted so far (with `Options.tls`, each began with a TLS handshake).
    public var acceptedConnections: Int { deadlines.accepted }

    /// What a daemon's callbacks need: the server, and the place the accept policy took for the connection
    /// being added (libmicrohttpd calls the policy and then the connection's start on the daemon's thread).
    /// `@unchecked Sendable`: `pending` is touched only on the daemon's thread.
    final class DaemonSlot: @unchecked Sendable {
        unowned let server: HTTPServer
        let limits: ConnectionLimits
        /// The loop the daemon runs on (nil in poll mode).
        let loop: EventLoop?
        var pending: ConnectionLimits.Admission?

        init(server: HTTPServer, limits: ConnectionLimits, loop: EventLoop?) {
            self.server = server
            self.limits = limits
            self.loop = loop
        }

        /// Takes a place for a new connection; one taken for a connection that never started is given back.
        func admit(_ address: UnsafePointer<sockaddr>?) -> Bool {
            if let stale = pending { limits.release(stale) }
            pending = limits.admit(address)
            if pending == nil { server.log.refusedConnection() }
            return pending != nil
        }
    }

    /// Raises the open-files limit, binds and starts serving; throws with the address when it cannot, or
    /// when `maxConnections` does not fit the open-files limit and may not be lowered.
    public func start() throws(HTTPServerError) {
        let files = OpenFiles.raiseToHard()
        let maxConnections: Int
        var notes: [String] = []
        switch OpenFiles.fit(requested: options.maxConnections, lowerIfNeeded: options.lowerConnectionsToFit, openFiles: files) {
        case .success(let fitted):
            maxConnections = fitted.connections
            if let note = fitted.note { notes.append(note) }
        case .failure(let error):
            throw error
        }
        let maxConnectionsPerAddress = options.maxConnectionsPerAddress ?? (Self.isLoopback(options.host) ? 0 : max(1, maxConnections / 4))
        log.limitsText = "max_connections \(maxConnections), max_connections_per_address \(maxConnectionsPerAddress == 0 ? "off" : String(maxConnectionsPerAddress))"
        started.withLock { s in
            s.maxConnections = maxConnections
            s.maxConnectionsPerAddress = maxConnectionsPerAddress
            s.notes = notes
        }

        let fd = try Self.bind(host: options.host, port: options.port)
        let port = Self.boundPort(fd)
        started.withLock { $0.port = port }

        // epoll by default: with thousands of idle or trickling connections, poll lists them all at every
        // wake-up (see README, "Limits that protect it", for the measurements). epoll in libmicrohttpd 0.9.75
        // can miss a client that closes after part of a request; the sweep finds those (ConnectionDeadlines).
        // With epoll each daemon runs on an event loop of ours (MHD_run when its descriptor is ready), so
        // upstream calls share the thread; poll mode keeps libmicrohttpd's own threads.
        let limits = ConnectionLimits(maxConnections: maxConnections, maxPerAddress: maxConnectionsPerAddress)
        let external = options.eventLoop == .epoll
        var loops: [EventLoop?] = [nil]
        var ownLoops: [EventLoop] = []
        if external {
            if let given = options.loops, !given.isEmpty {
                loops = given
            } else {
                ownLoops = (0..<max(1, options.threads)).map { EventLoop(name: "bakeoff-http-\($0)") }
                loops = ownLoops
            }
        }
        let tls: TLSDaemonSettings
        do { tls = try TLSDaemonSettings(options.tls) } catch {
            for loop in ownLoops { loop.shutdown() }
            close(fd)
            throw error
        }
        let flags = (external ? MHD_USE_EPOLL.rawValue : MHD_USE_POLL_INTERNAL_THREAD.rawValue)
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue | tls.flag
        let me = Unmanaged.passUnretained(self).toOpaque()
        let logContext = Unmanaged.passUnretained(log).toOpaque()
        var daemons: [(loop: EventLoop?, daemon: MHDDaemon, slot: DaemonSlot)] = []
        for loop in loops {
            let slot = DaemonSlot(server: self, limits: limits, loop: loop)
            let slotPointer = Unmanaged.passUnretained(slot).toOpaque()
            var args: [CVarArg] = [
                // The logger first, so that no message goes to libmicrohttpd's own.
                CInt(MHD_OPTION.EXTERNAL_LOGGER.rawValue), unsafeBitCast(httpLogMessage as MHD_LogCallback, to: OpaquePointer.self), OpaquePointer(logContext),
                CInt(MHD_OPTION.LISTEN_SOCKET.rawValue), fd,
                CInt(MHD_OPTION.NOTIFY_COMPLETED.rawValue), unsafeBitCast(httpRequestCompleted as MHD_RequestCompletedCallback, to: OpaquePointer.self), OpaquePointer(me),
                CInt(MHD_OPTION.NOTIFY_CONNECTION.rawValue), unsafeBitCast(httpConnectionChanged as MHD_NotifyConnectionCallback, to: OpaquePointer.self), OpaquePointer(slotPointer),
                CInt(MHD_OPTION.CONNECTION_TIMEOUT.rawValue), CUnsignedInt(max(1, (options.idleTimeoutMs + 999) / 1000)),
                // The limits are the server's, over all daemons (`ConnectionLimits`, asked by the accept policy).
                CInt(MHD_OPTION.CONNECTION_LIMIT.rawValue), CUnsignedInt(maxConnections),
                CInt(MHD_OPTION.CONNECTION_MEMORY_LIMIT.rawValue), Int(HTTPServer.connectionMemoryBytes),
            ]
            // Poll mode: one thread is the daemon's own; a pool of one would only draw a warning.
            if !external && options.threads > 1 { args += [CInt(MHD_OPTION.THREAD_POOL_SIZE.rawValue), CUnsignedInt(options.threads)] }
            args += tls.arguments
            args.append(CInt(MHD_OPTION.END.rawValue))
            let daemon = withExtendedLifetime(tls) {
                withVaList(args) { va in
                    MHD_start_daemon_va(flags, 0, httpAcceptPolicy, slotPointer, httpAccessHandler, slotPointer, va)
                }
            }
            guard let daemon else {
                for started in daemons { Self.stopDaemon(started.daemon, on: started.loop) }
                for loop in ownLoops { loop.shutdown() }
                close(fd)
                throw HTTPServerError(message: "cannot start the HTTP server on \(options.host):\(port)" + tls.startFailureHint)
            }
            let handle = MHDDaemon(pointer: daemon)
            if let loop { loop.perform { loop.attach(daemon: handle.pointer) } }
            daemons.append((loop, handle, slot))
        }
        started.withLock {
            $0.daemons = daemons
            $0.ownLoops = ownLoops
            $0.listenSocket = fd
        }
        let wake = watcherWake
        let watcher = Thread { [weak self] in
            Thread.current.name = "bakeoff-watch"
            var tick = 0
            // Every 100 ms until the stop wakes it (or the server is gone).
            while Self.watch(self, tick: tick) {
                _ = wake.wait(timeout: .now() + .milliseconds(100))
                tick += 1
            }
        }
        watcher.name = "bakeoff-http-watch"
        watcher.start()
    }

    /// One round of the watcher; false once the server is stopped or gone.
    private static func watch(_ server: HTTPServer?, tick: Int) -> Bool {
        guard let server, !server.stopped.load(ordering: .relaxed) else { return false }
        // Connections waiting for headers can be thousands (idle or slowloris): looked at once a second.
        server.deadlines.sweep(watchHeaders: tick % 10 == 0)
        server.noticeDepartedClients()
        return true
    }

    /// libmicrohttpd does not watch suspended connections, so a client that hangs up while its request waits
    /// for an upstream would go unnoticed until the answer is written. This looks at their sockets (every
    /// 100 ms) and reports a closed one through `onClientGone`, so the upstream call is cancelled at once.
    /// Streams waiting for their next chunk are looked at too: a client that read a stream to [DONE] and left
    /// while the upstream's last bytes are late must be seen at once (its request ended at [DONE]).
    func noticeDepartedClients() {
        let waiting = live.withLock { $0.values.filter { $0.isSuspended } }
        guard !waiting.isEmpty else { return }
        var fds: [pollfd] = []
        var owners: [HTTPExchange] = []
        for exchange in waiting {
            let fd = exchange.state.withLock { s in s.suspended && !s.closed ? bakeoff_mhd_connection_fd(UnsafeMutableRawPointer(exchange.connection.pointer)) : -1 }
            guard fd >= 0 else { continue }
            fds.append(pollfd(fd: fd, events: pollReadHangUp, revents: 0))
            owners.append(exchange)
        }
        guard !fds.isEmpty, poll(&fds, nfds_t(fds.count), 0) > 0 else { return }
        for (i, p) in fds.enumerated() where p.revents & (pollReadHangUp | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
            owners[i].clientDeparted()
        }
    }

    /// Stops accepting, waits up to `graceSeconds` for requests in flight to finish, then stops.
    public func stop(graceSeconds: Double) {
        let daemons = started.withLock { $0.daemons }
        guard !daemons.isEmpty, !stopped.exchange(true, ordering: .sequentiallyConsistent) else { return }
        watcherWake.signal()
        // Every daemon shares the listening socket: each stops watching it, then it is closed once.
        var listening: Int32 = -1
        for (loop, daemon, _) in daemons {
            let fd = loop.map { loop in loop.perform { MHD_quiesce_daemon(daemon.pointer) } } ?? MHD_quiesce_daemon(daemon.pointer)
            if fd >= 0 { listening = fd }
        }
        if listening >= 0 { close(listening) }
        // Each completion that leaves none in flight signals `quiet`; a signal left from an earlier zero only
        // makes the loop look again.
        let deadline = DispatchTime.now() + max(0, graceSeconds)
        while inFlight.load(ordering: .sequentiallyConsistent) > 0 {
            if quiet.wait(timeout: deadline) == .timedOut { break }
        }
        // Whatever is still waiting ends now: 503 for an unanswered request, an aborted stream otherwise.
        let shuttingDown = options.refusalResponse(.shuttingDown)
        for exchange in live.withLock({ Array($0.values) }) { exchange.abandon(shuttingDown) }
        let hardDeadline = DispatchTime.now() + 2
        while !live.withLock({ $0.isEmpty }) {
            if quiet.wait(timeout: hardDeadline) == .timedOut { break }
        }
        for (loop, daemon, _) in daemons { Self.stopDaemon(daemon, on: loop) }
        let own = started.withLock { s -> [EventLoop] in
            s.daemons = []
            defer { s.ownLoops = [] }
            return s.ownLoops
        }
        for loop in own { loop.shutdown() }
    }

    /// Stops a daemon, on its loop's thread when it has one.
    private static func stopDaemon(_ daemon: MHDDaemon, on loop: EventLoop?) {
        if let loop {
            loop.perform { loop.stopDaemon(daemon.pointer) }
        } else {
            MHD_stop_daemon(daemon.pointer)
        }
    }

    /// A request is over: it leaves the live exchanges, `gone` (its client-gone callback, when the answer did
    /// not reach the client) runs, and it leaves the count in flight; a stop waiting for either to reach zero
    /// is woken.
    func completed(_ exchange: HTTPExchange, telling gone: (@Sendable () -> Void)?) {
        let noneLive = live.withLock { l -> Bool in
            l[ObjectIdentifier(exchange)] = nil
            return l.isEmpty
        }
        gone?()
        let noneInFlight = inFlight.subtract(1, ordering: .sequentiallyConsistent).newValue == 0
        if (noneInFlight || noneLive) && stopped.load(ordering: .sequentiallyConsistent) { quiet.signal() }
    }

    /// Requests accepted and not yet answered completely.
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    /// Whether `host` is a loopback address, whose clients are all on this machine (a local proxy, sidecars,
    /// tests): limiting them per address would limit them all together.
    package static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.")
    }

    /// A port that was free a moment ago (bound, then closed): for tests and tools that need one.
    package static func reserveClosedPort() throws(HTTPServerError) -> UInt16 {
        let fd = try bind(host: "127.0.0.1", port: 0)
        defer { close(fd) }
        return boundPort(fd)
    }

    static func boundPort(_ fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    static func bind(host: String, port: UInt16) throws(HTTPServerError) -> Int32 {
        let name = host == "localhost" ? "127.0.0.1" : host
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, name, &address.sin_addr) == 1 else {
            throw HTTPServerError(message: "listen address \(host):\(port): not an IPv4 address")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError(message: "cannot create a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HTTPServerError(message: "cannot listen on \(host):\(port): \(reason)")
        }
        if listen(fd, 4096) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HTTPServerError(message: "cannot listen on \(host):\(port): \(reason)")
        }
        return fd
    }
}

/// POLLRDHUP (Linux): the peer closed its end; Glibc exports it only under _GNU_SOURCE.
private let pollReadHangUp: Int16 = 0x2000

/// What a request still waiting at shutdown gets.
/// A request the server answers itself, before or instead of the handler.
public enum HTTPRefusal: Sendable, Equatable {
    /// The server is stopping (503).
    case shuttingDown
    /// The request's framing is malformed (400), e.g. Content-Length headers that differ.
    case badRequest(String)
    /// The body is over the server's limit (413).
    case payloadTooLarge(limit: Int)
    /// The memory budget has no room for the body now (503, retry shortly).
    case overBudget(limit: Int)

    public var status: Int {
        switch self {
        case .shuttingDown, .overBudget: 503
        case .badRequest: 400
        case .payloadTooLarge: 413
        }
    }
}

/// What a refusal sends: its headers and body, and what ends a stream cut off by shutdown.
public struct HTTPRefusalResponse: Sendable {
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Appended to an event stream that is cut off at shutdown, so the client reads why.
    public var streamEnding: [UInt8]

    public init(headers: [(String, String)], body: [UInt8], streamEnding: [UInt8] = []) {
        self.headers = headers
        self.body = body
        self.streamEnding = streamEnding
    }

    /// A plain-text refusal, for servers that have no error shape of their own.
    public static let plainText: @Sendable (HTTPRefusal) -> HTTPRefusalResponse = { refusal in
        let text: String
        switch refusal {
        case .shuttingDown: text = "the server is shutting down"
        case .badRequest(let message): text = message
        case .payloadTooLarge(let limit): text = "the request body is over the limit of \(limit) bytes"
        case .overBudget(let limit): text = "the server is busy: requests in progress fill its memory budget of \(limit) bytes; retry in a moment"
        }
        let retry: [(String, String)] = refusal.status == 503 ? [("Retry-After", "1")] : []
        return HTTPRefusalResponse(headers: [("Content-Type", "text/plain; charset=utf-8")] + retry, body: Array((text + "\n").utf8))
    }
}

public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A request as the handler sees it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query string.
    public var path: String
    public var query: [String: String]
    /// Header names lower-cased, in arrival order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The connection's socket (-1 when the request did not come over one), for `remoteAddress`.
    package var socket: Int32 = -1

    public init(method: String, path: String, query: [String: String] = [:], headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The client's address (numeric, without the port), or nil when unknown. Looked up when asked (a system
    /// call), while the request is being handled.
    public var remoteAddress: String? {
        guard socket >= 0 else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(socket, $0, &length) }
        }
        guard got == 0 else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let named = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard named == 0 else { return nil }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// libmicrohttpd's daemon. `@unchecked Sendable`: libmicrohttpd's daemon calls may come from any thread;
/// the server makes them only in `start` and, once, in `stop` (guarded by `stopped`).
struct MHDDaemon: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// libmicrohttpd's connection of one exchange. `@unchecked Sendable`: it is used only under the exchange's
/// state lock while `closed` is false (suspend on the connection's own thread, resume from any thread, as
/// libmicrohttpd allows with MHD_ALLOW_SUSPEND_RESUME), and in the access handler on the connection's thread.
struct MHDConnection: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One request and its answer; safe to answer from any thread, once.
public final class HTTPExchange: HTTPExchanging {
    /// The request; its body is complete by the time the handler gets the exchange.
    public var request: HTTPRequest { state.withLock { $0.request } }
    /// Called once if the client goes away before the answer is complete (from a server thread).
    public var onClientGone: (@Sendable () -> Void)? {
        get { state.withLock { $0.onClientGone } }
        set { state.withLock { $0.onClientGone = newValue } }
    }

    enum Phase { case receiving, handling, answered, streaming, done }
    /// How the request's body is being read (on the connection's thread, before the handler).
    struct Upload {
        /// Refused for its size (or its framing): the rest is not read and the connection closes after the answer.
        var bodyTooLarge = false
        /// The memory budget had no room: the rest is read and dropped, then answered 503.
        var overBudget = false
        var receivedBytes = 0
        /// Body bytes charged to the budget so far (as they arrived).
        var bodyCharged = 0
    }
    struct State {
        var request: HTTPRequest
        var upload = Upload()
        var phase: Phase = .receiving
        /// The connection is suspended, waiting for an answer or for stream data.
        var suspended = false
        /// The connection is gone: never touch it again.
        var closed = false
        var status = 200
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        var bodyOffset = 0
        var streamFinished = false
        var streamFailed = false
        /// Stream bytes not yet handed to the socket: where each write ended in `body`, and when it came.
        var marks: [(end: Int, at: UInt64)] = []
        var responseQueued = false
        var onClientGone: (@Sendable () -> Void)?
    }

    let state: Mutex<State>
    let connection: MHDConnection
    /// The connection's deadlines (nil if libmicrohttpd gave none).
    let entry: ConnectionDeadlines.Entry?
    package let budget: ByteBudget
    /// Bytes charged to `budget` for this exchange, given back as they are freed or when it completes.
    let charged = Atomic<Int>(0)

    /// The loop whose daemon has the connection (nil in poll mode).
    let loop: EventLoop?

    /// Where the delays of streamed chunks are counted (the server's).
    let delays: DelayHistogram?

    init(connection: OpaquePointer, request: HTTPRequest, entry: ConnectionDeadlines.Entry?, budget: ByteBudget, loop: EventLoop?,
         delays: DelayHistogram? = nil) {
        self.loop = loop
        self.delays = delays
        self.connection = MHDConnection(pointer: connection)
        self.state = Mutex(State(request: request))
        self.entry = entry
        self.budget = budget
    }

    /// Charges `bytes` this exchange buffers (e.g. an upstream's answer) to the server's memory budget until
    /// the exchange completes; false, with nothing charged, when the budget has no room for them or the
    /// exchange is over.
    public func reserveBuffer(_ bytes: Int) -> Bool {
        // Under the state lock: a charge made before `complete` is given back by `releaseBuffers` after it.
        state.withLock { s in reserve(bytes, &s) }
    }

    private func reserve(_ bytes: Int, _ s: inout State) -> Bool {
        guard !s.closed, budget.tryReserve(bytes) else { return false }
        charged.add(bytes, ordering: .relaxed)
        return true
    }

    /// What to do with a piece of the request's body (on the connection's thread).
    enum UploadStep {
        /// Kept (or dropped, for a request already refused).
        case taken
        /// Over `maxBodyBytes`: answer 413 now.
        case tooLarge
    }

    /// Takes a piece of the body: counted against `maxBodyBytes`, charged to the budget as it arrives
    /// (without room, the rest is read and dropped, then answered 503), appended to the request.
    func receive(_ piece: UnsafeRawBufferPointer?, count: Int, maxBodyBytes: Int) -> UploadStep {
        state.withLock { s in
            s.upload.receivedBytes += count
            if s.upload.receivedBytes > maxBodyBytes {
                // Refuse now rather than read (and drop) a body without end; the connection is then closed.
                s.request.body = []
                guard !s.upload.bodyTooLarge else { return .taken }
                s.upload.bodyTooLarge = true
                s.phase = .handling
                return .tooLarge
            }
            if s.upload.overBudget { return .taken }
            if s.upload.receivedBytes > s.upload.bodyCharged {
                // libmicrohttpd cannot answer in the middle of a body.
                let more = s.upload.receivedBytes - s.upload.bodyCharged
                guard reserve(more, &s) else {
                    s.upload.overBudget = true
                    s.request.body = []
                    // Given back at once: the request is refused, nothing of it is kept.
                    budget.release(charged.exchange(0, ordering: .relaxed))
                    return .taken
                }
                s.upload.bodyCharged += more
            }
            if let piece { s.request.body.append(contentsOf: piece) }
            return .taken
        }
    }

    /// Gives back what is still charged (the exchange is over).
    func releaseBuffers() {
        budget.release(charged.exchange(0, ordering: .relaxed))
    }

    /// Answers with a complete response.
    public func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        state.withLock { s in
            guard s.phase == .handling || s.phase == .receiving else { return }
            s.phase = .answered
            s.status = status
            s.headers = headers
            s.body = body
            resumeIfSuspended(&s)
        }
    }

    /// Starts a streamed response (chunked, e.g. server-sent events); then `write` and `finish`.
    public func startStream(status: Int, headers: [(String, String)]) {
        state.withLock { s in
            guard s.phase == .handling else { return }
            s.phase = .streaming
            s.status = status
            s.headers = headers
            resumeIfSuspended(&s)
        }
    }

    /// Stream bytes a client may leave unread before its stream is aborted (memory stays bounded).
    public static let maxBufferedBytes = 8 << 20
    /// Unread stream bytes that need no room in the memory budget: a stream whose client keeps up is never
    /// cut off because others fill the budget; one that lags further needs room, or is aborted.
    public static let unbudgetedStreamBytes = 64 << 10

    /// Appends bytes to a started stream; false when the client is gone, or reads so slowly that more than
    /// `maxBufferedBytes` would wait for it (the stream is then aborted).
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        state.withLock { s in
            guard s.phase == .streaming, !s.closed, !s.streamFinished else { return false }
            let backlog = s.body.count - s.bodyOffset + bytes.count
            var fits = backlog <= Self.maxBufferedBytes
            if fits && !budget.tryReserve(bytes.count) {
                if backlog <= Self.unbudgetedStreamBytes { budget.reserve(bytes.count) } else { fits = false }
            }
            guard fits else {
                s.streamFinished = true
                s.streamFailed = true
                resumeIfSuspended(&s)
                return false
            }
            charged.add(bytes.count, ordering: .relaxed)
            if s.bodyOffset > 0 && s.bodyOffset == s.body.count {
                s.body.removeAll(keepingCapacity: true)
                s.bodyOffset = 0
            }
            s.body.append(contentsOf: bytes)
            if delays != nil { s.marks.append((s.body.count, MonotonicClock.now())) }
            resumeIfSuspended(&s)
            return true
        }
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { write($0) } }

    /// Ends a started stream; `failed` aborts the connection instead of ending the chunked body cleanly.
    public func finish(failed: Bool = false) {
        state.withLock { s in
            guard s.phase == .streaming, !s.streamFinished else { return }
            s.streamFinished = true
            s.streamFailed = failed
            resumeIfSuspended(&s)
        }
    }

    var isSuspended: Bool { state.withLock { $0.suspended } }

    /// The client hung up while the connection was suspended: tell the handler once.
    func clientDeparted() {
        let gone = state.withLock { s -> (@Sendable () -> Void)? in
            guard s.suspended, !s.closed else { return nil }
            let callback = s.onClientGone
            s.onClientGone = nil
            return callback
        }
        gone?()
    }

    /// Ends the exchange at shutdown: 503 if unanswered, an aborted stream if streaming.
    func abandon(_ shuttingDown: HTTPRefusalResponse) {
        state.withLock { s in
            switch s.phase {
            case .receiving, .handling:
                s.phase = .answered
                s.status = 503
                s.headers = shuttingDown.headers
                s.body = shuttingDown.body
            case .streaming:
                // An event stream ends with what the application says clients understand.
                if !shuttingDown.streamEnding.isEmpty,
                   s.headers.contains(where: { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("text/event-stream") }) {
                    s.body += shuttingDown.streamEnding
                    budget.reserve(shuttingDown.streamEnding.count)
                    charged.add(shuttingDown.streamEnding.count, ordering: .relaxed)
                } else {
                    s.streamFailed = true
                }
                s.streamFinished = true
            case .answered, .done:
                break
            }
            resumeIfSuspended(&s)
        }
    }

    private func resumeIfSuspended(_ s: inout State) {
        if s.suspended && !s.closed {
            s.suspended = false
            MHD_resume_connection(connection.pointer)
            // On the loop's own thread its daemon runs next anyway.
            if let loop, !loop.isCurrent { loop.nudge() }
        }
    }

    /// Queues the answer if there is one, else suspends. Called on the server thread in the access handler.
    func queueOrSuspend() -> MHD_Result {
        state.withLock { s in
            switch s.phase {
            case .answered:
                guard !s.responseQueued else { return .YES }
                s.responseQueued = true
                let response = s.body.withUnsafeMutableBytes {
                    MHD_create_response_from_buffer($0.count, $0.baseAddress, .RESPMEM_MUST_COPY)
                }
                addHeaders(response, s.headers)
                let result = MHD_queue_response(connection.pointer, UInt32(s.status), response)
                MHD_destroy_response(response)
                s.body = []
                return result
            case .streaming:
                guard !s.responseQueued else { return .YES }
                s.responseQueued = true
                let me = Unmanaged.passUnretained(self).toOpaque()
                // libmicrohttpd writes a chunked body through the connection's own buffer; the response's block
                // is allocated per stream and barely used, so it is kept small (memory per open stream).
                let response = MHD_create_response_from_callback(UInt64.max, 2 * 1024, httpStreamReader, me, nil)
                addHeaders(response, s.headers)
                let result = MHD_queue_response(connection.pointer, UInt32(s.status), response)
                MHD_destroy_response(response)
                return result
            case .receiving, .handling, .done:
                s.suspended = true
                MHD_suspend_connection(connection.pointer)
                return .YES
            }
        }
    }

    /// Copies queued stream bytes into libmicrohttpd's buffer, or suspends until there are some.
    func readStream(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        state.withLock { s in
            let available = s.body.count - s.bodyOffset
            if available > 0 {
                let n = min(available, max)
                s.body.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + s.bodyOffset, byteCount: n)
                }
                s.bodyOffset += n
                if let delays, let first = s.marks.first, first.end <= s.bodyOffset {
                    let now = MonotonicClock.now()
                    var handed = 0
                    for mark in s.marks {
                        guard mark.end <= s.bodyOffset else { break }
                        delays.observe(nanoseconds: now &- mark.at)
                        handed += 1
                    }
                    s.marks.removeFirst(handed)
                }
                charged.subtract(n, ordering: .relaxed)
                budget.release(n)
                return n
            }
            if s.streamFinished { return s.streamFailed ? -2 : -1 }
            s.suspended = true
            MHD_suspend_connection(connection.pointer)
            return 0
        }
    }

    /// The request is over (answered, failed or abandoned); returns `onClientGone` when the answer did not
    /// reach the client, to run outside the lock.
    func complete(delivered: Bool) -> (@Sendable () -> Void)? {
        state.withLock { s in
            s.closed = true
            let finishedStream = s.phase == .streaming && s.streamFinished && s.bodyOffset == s.body.count
            let answered = s.phase == .answered && s.responseQueued
            let ok = delivered && (answered || finishedStream)
            let gone = ok ? nil : s.onClientGone
            s.onClientGone = nil
            s.phase = .done
            return gone
        }
    }
}

private func addHeaders(_ response: OpaquePointer?, _ headers: [(String, String)]) {
    for (name, value) in headers { _ = MHD_add_response_header(response, name, value) }
}

// C callbacks are global functions, not closures: a C function pointer cannot capture context (the server or
// exchange travels in the callback's `cls` pointer), and Swift 6 would check a closure's isolation.

private func collectHeader(_ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> MHD_Result {
    guard let cls, let key else { return .YES }
    let list = cls.assumingMemoryBound(to: [(name: String, value: String)].self)
    list.pointee.append((String(cString: key).lowercased(), value.map { String(cString: $0) } ?? ""))
    return .YES
}

private func collectArgument(_ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> MHD_Result {
    guard let cls, let key else { return .YES }
    let map = cls.assumingMemoryBound(to: [String: String].self)
    map.pointee[String(cString: key)] = value.map { String(cString: $0) } ?? ""
    return .YES
}

private func httpAccessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?, _ uploadData: UnsafePointer<CChar>?,
    _ uploadSize: UnsafeMutablePointer<Int>?, _ context: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let context, let uploadSize else { return .NO }
    let slot = Unmanaged<HTTPServer.DaemonSlot>.fromOpaque(cls).takeUnretainedValue()
    let server = slot.server
    if context.pointee == nil {
        // First call: headers only. Set up the exchange; answering here would make libmicrohttpd close
        // keep-alive connections, so the answer waits for a later call.
        var headers: [(name: String, value: String)] = []
        _ = withUnsafeMutablePointer(to: &headers) { MHD_get_connection_values(connection, .HEADER_KIND, collectHeader, $0) }
        var query: [String: String] = [:]
        _ = withUnsafeMutablePointer(to: &query) { MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, collectArgument, $0) }
        var request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "GET",
            path: url.map { String(cString: $0) } ?? "/",
            query: query, headers: headers, body: []
        )
        request.socket = bakeoff_mhd_connection_fd(UnsafeMutableRawPointer(connection))
        let entry = connectionEntry(connection)
        if let entry { server.deadlines.headersReceived(entry) }
        let exchange = HTTPExchange(connection: connection, request: request, entry: entry, budget: server.budget, loop: slot.loop,
                                    delays: server.streamDelays)
        server.inFlight.add(1, ordering: .relaxed)
        server.live.withLock { $0[ObjectIdentifier(exchange)] = exchange }
        context.pointee = Unmanaged.passRetained(exchange).toOpaque()
        if server.stopped.load(ordering: .relaxed) {
            // Stopping: a new request on a kept-alive connection is refused and the connection closed.
            exchange.state.withLock { $0.phase = .handling }
            let refusal = server.options.refusalResponse(.shuttingDown)
            exchange.respond(status: 503, headers: refusal.headers + [("Connection", "close")], body: refusal.body)
            return exchange.queueOrSuspend()
        }
        // One Content-Length, a plain non-negative number: two that differ are how requests get smuggled past
        // a proxy that reads the other one.
        let lengths = Set(request.headers.filter { $0.name == "content-length" }.map(\.value))
        if lengths.count > 1 || lengths.contains(where: { v in v.isEmpty || v.utf8.count > 18 || !v.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }) {
            // The body is not read: the connection is closed after the answer.
            exchange.state.withLock { $0.upload.bodyTooLarge = true; $0.phase = .handling }
            server.options.onRefusal?(400)
            let refusal = server.options.refusalResponse(.badRequest(lengths.count > 1 ? "the request has several Content-Length headers that differ" : "Content-Length must be a non-negative whole number"))
            exchange.respond(status: 400, headers: refusal.headers + [("Connection", "close")], body: refusal.body)
            return exchange.queueOrSuspend()
        }
        let declared = lengths.first.flatMap(Int.init) ?? 0
        if declared > server.options.maxBodyBytes {
            // Refuse before reading; libmicrohttpd then closes the connection, which is what we want here.
            exchange.state.withLock { $0.upload.bodyTooLarge = true; $0.phase = .handling }
            respondTooLarge(exchange, server)
            return exchange.queueOrSuspend()
        }
        if declared > 0 {
            // A body is charged to the memory budget as its bytes arrive, not on its declared length: a client
            // that declares large bodies and sends nothing must not hold the budget every other client needs.
            guard server.budget.hasRoom(for: min(declared, 64 << 10)) else {
                exchange.state.withLock { $0.upload.overBudget = true; $0.phase = .handling }
                respondOverBudget(exchange, server)
                return exchange.queueOrSuspend()
            }
            exchange.state.withLock { $0.request.body.reserveCapacity(min(declared, 64 << 10)) }
        }
        return .YES
    }
    let exchange = Unmanaged<HTTPExchange>.fromOpaque(context.pointee!).takeUnretainedValue()
    if uploadSize.pointee > 0 {
        let n = uploadSize.pointee
        uploadSize.pointee = 0
        let piece = uploadData.map { UnsafeRawBufferPointer(start: $0, count: n) }
        switch exchange.receive(piece, count: n, maxBodyBytes: server.options.maxBodyBytes) {
        case .taken:
            return .YES
        case .tooLarge:
            respondTooLarge(exchange, server)
            return exchange.queueOrSuspend()
        }
    }
    let first = exchange.state.withLock { s -> HTTPExchange.Upload? in
        guard s.phase == .receiving else { return nil }
        s.phase = .handling
        return s.upload
    }
    if let upload = first {
        if let entry = exchange.entry { server.deadlines.requestReceived(entry) }
        if upload.bodyTooLarge {
            respondTooLarge(exchange, server)
        } else if upload.overBudget {
            respondOverBudget(exchange, server)
        } else {
            server.handler(exchange)
        }
    }
    return exchange.queueOrSuspend()
}

/// 413 with the body limit.
private func respondTooLarge(_ exchange: HTTPExchange, _ server: HTTPServer) {
    server.options.onRefusal?(413)
    let refusal = server.options.refusalResponse(.payloadTooLarge(limit: server.options.maxBodyBytes))
    exchange.respond(status: 413, headers: refusal.headers, body: refusal.body)
}

/// 503 with Retry-After: the memory budget has no room for this request's body.
private func respondOverBudget(_ exchange: HTTPExchange, _ server: HTTPServer) {
    server.options.onRefusal?(503)
    let refusal = server.options.refusalResponse(.overBudget(limit: server.budget.limit))
    exchange.respond(status: 503, headers: refusal.headers, body: refusal.body)
}

/// The deadlines entry libmicrohttpd keeps for a connection.
private func connectionEntry(_ connection: OpaquePointer) -> ConnectionDeadlines.Entry? {
    guard let context = bakeoff_mhd_socket_context(UnsafeMutableRawPointer(connection)) else { return nil }
    return Unmanaged<ConnectionDeadlines.Entry>.fromOpaque(context).takeUnretainedValue()
}

/// Whether to accept a connection: the server's limits over all its daemons.
private func httpAcceptPolicy(_ cls: UnsafeMutableRawPointer?, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> MHD_Result {
    guard let cls else { return .YES }
    return Unmanaged<HTTPServer.DaemonSlot>.fromOpaque(cls).takeUnretainedValue().admit(address) ? .YES : .NO
}

/// A connection opened or closed: its deadlines entry is made (holding its place under the limits), or
/// dropped (giving it back).
private func httpConnectionChanged(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ code: MHD_ConnectionNotificationCode
) {
    guard let cls, let connection, let socketContext else { return }
    let slot = Unmanaged<HTTPServer.DaemonSlot>.fromOpaque(cls).takeUnretainedValue()
    let server = slot.server
    if code == .CONNECTION_NOTIFY_STARTED {
        let admission = slot.pending
        slot.pending = nil
        let fd = bakeoff_mhd_connection_fd(UnsafeMutableRawPointer(connection))
        guard fd >= 0 else {
            if let admission { slot.limits.release(admission) }
            return
        }
        socketContext.pointee = Unmanaged.passRetained(server.deadlines.opened(fd: fd, admission: admission)).toOpaque()
    } else if let pointer = socketContext.pointee {
        socketContext.pointee = nil
        let entry = Unmanaged<ConnectionDeadlines.Entry>.fromOpaque(pointer).takeRetainedValue()
        server.deadlines.closed(entry)
        if let admission = entry.admission { slot.limits.release(admission) }
    }
}

private func httpRequestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ context: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode
) {
    guard let cls, let context, let pointer = context.pointee else { return }
    context.pointee = nil
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
    let exchange = Unmanaged<HTTPExchange>.fromOpaque(pointer).takeRetainedValue()
    let gone = exchange.complete(delivered: code == .REQUEST_TERMINATED_COMPLETED_OK)
    exchange.releaseBuffers()
    if let entry = exchange.entry { server.deadlines.answered(entry) }
    server.completed(exchange, telling: gone)
}

private func httpStreamReader(_ cls: UnsafeMutableRawPointer?, _ position: UInt64, _ buffer: UnsafeMutablePointer<CChar>?, _ max: Int) -> Int {
    guard let cls, let buffer else { return -2 }
    let exchange = Unmanaged<HTTPExchange>.fromOpaque(cls).takeUnretainedValue()
    return exchange.readStream(into: buffer, max: max)
}
