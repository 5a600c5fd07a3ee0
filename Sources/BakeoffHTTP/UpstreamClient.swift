import CCurl
import Foundation
import Synchronization
import BakeoffCore

/// How an upstream call ended.
public enum UpstreamOutcome: Sendable, Equatable {
    /// The upstream answered completely with this HTTP status.
    case completed(status: Int)
    /// The call failed: no connection, a timeout, or the connection broke mid-response.
    case failed(UpstreamFailure, message: String)
    /// Cancelled by the gateway (the client went away).
    case cancelled
}

public enum UpstreamFailure: String, Sendable {
    case unreachable
    case timeout
    case brokenResponse
    /// The client (and so the call) was stopped.
    case shutdown
}

/// One call: what to send, and whom to tell. Its handlers are taken once, when it finishes, so nothing the
/// handlers hold outlives the call.
final class UpstreamCall: Sendable {
    let request: UpstreamRequest
    private let handlers: Mutex<UpstreamHandlers?>
    /// The engine (loop) the call runs on; -1 before it starts.
    let engine = Atomic<Int>(-1)

    init(_ request: UpstreamRequest, handlers: UpstreamHandlers) {
        self.request = request
        self.handlers = Mutex(handlers)
    }

    /// The handlers while the call has not finished.
    var current: UpstreamHandlers? { handlers.withLock { $0 } }

    /// Ends the call: its `onFinish` runs, unless it had already ended.
    func finish(_ outcome: UpstreamOutcome) {
        let taken = handlers.withLock { h -> UpstreamHandlers? in
            defer { h = nil }
            return h
        }
        taken?.onFinish(outcome)
    }
}

/// A call inside libcurl: its easy handle and what its callbacks collect. Not Sendable: created, used and
/// dropped by a `CurlEngine` on its loop's thread (libcurl runs the callbacks that reach it inside
/// `curl_multi_socket_action`, called only there).
final class CurlTransfer {
    let call: UpstreamCall
    let handle: UnsafeMutableRawPointer
    /// The call's handlers, taken when it was added, so a piece of data needs no lock of the call's.
    let handlers: UpstreamHandlers
    var headerList: UnsafeMutablePointer<curl_slist>?
    var responded = false
    var dataBytes = 0
    /// The response's headers (names lower-cased), when the request captures them.
    var headers: [(name: String, value: String)] = []

    /// The URL (and CA file) the handle is set to: its key among the idle handles.
    let url: String

    init(call: UpstreamCall, handle: UnsafeMutableRawPointer, handlers: UpstreamHandlers, url: String) {
        self.url = url
        self.call = call
        self.handle = handle
        self.handlers = handlers
    }

    func deliverResponseIfNeeded() {
        guard !responded else { return }
        responded = true
        var status = 0
        _ = bakeoff_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var type: UnsafeMutableRawPointer?
        _ = bakeoff_curl_get_pointer(handle, CURLINFO_CONTENT_TYPE, &type)
        let contentType = type.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
        handlers.onResponse(UpstreamResponseHead(status: status, contentType: contentType, headers: headers))
    }
}

/// Drives many concurrent upstream calls with libcurl's multi interface, on event loops; connections to each
/// upstream are kept alive and reused.
///
/// Each loop has its own multi handle (a `CurlEngine`), touched only on the loop's thread. A call started on
/// one of the client's loops (the gateway's server threads, where requests arrive) is sent right there and
/// its answer handled on the same thread: no hand-off, no wake-up of another thread. A call started anywhere
/// else goes to the next loop in turn.
public final class UpstreamClient: UpstreamTransport, Sendable {
    private let loops: [EventLoop]
    private let engines: [CurlEngine]
    /// Loops made by this client (ended by `shutdown`); a server's loops are the server's.
    private let ownsLoops: Bool
    private let next = Atomic<Int>(0)
    /// False once `shutdown` began: starts fail at once.
    private let accepting = Atomic<Bool>(true)
    private let finished = Atomic<Bool>(false)
    /// Calls started and not finished.
    private let counter = CallCounter()
    private var activeCalls: CallCounter { counter }

    /// libcurl's global set-up is not thread-safe: done once, before the first client.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// A client with one loop thread of its own.
    public convenience init() {
        self.init(loops: [EventLoop(name: "bakeoff-upstream")], owningLoops: true)
    }

    /// A client on the given loops (a server's: calls started on its threads stay on them).
    package convenience init(loops: [EventLoop]) {
        self.init(loops: loops, owningLoops: false)
    }

    private init(loops: [EventLoop], owningLoops: Bool) {
        Self.globalInit
        precondition(!loops.isEmpty, "an upstream client needs at least one event loop")
        self.loops = loops
        ownsLoops = owningLoops
        var engines: [CurlEngine] = []
        for (i, loop) in loops.enumerated() {
            let engine = CurlEngine(loop: loop, index: i, counter: counter)
            engines.append(engine)
            loop.perform { loop.engine = engine }
        }
        self.engines = engines
    }

    /// A call of this client, to cancel.
    struct Handle: UpstreamCallHandle {
        let client: UpstreamClient
        let call: UpstreamCall
        func cancel() { client.cancel(call) }
    }

    /// Starts a call and sends its request right away; its handlers follow on the client's threads, in order.
    @discardableResult
    public func start(_ request: UpstreamRequest, handlers: UpstreamHandlers) -> any UpstreamCallHandle {
        let call = UpstreamCall(request, handlers: handlers)
        start(call)
        return Handle(client: self, call: call)
    }

    /// Calls started and not finished.
    public var callsInProgress: Int { activeCalls.load() }

    /// Connections opened so far; each call on a kept-alive connection adds none.
    public var connectionsOpened: Int { counter.connections.load(ordering: .relaxed) }

    func start(_ call: UpstreamCall) {
        guard accepting.load(ordering: .acquiring) else {
            call.finish(Self.shutdownOutcome)
            return
        }
        activeCalls.add(1)
        for (i, loop) in loops.enumerated() where loop.isCurrent {
            call.engine.store(i, ordering: .releasing)
            engines[i].start(call)
            return
        }
        let i = loops.count == 1 ? 0 : next.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count
        call.engine.store(i, ordering: .releasing)
        let engine = engines[i]
        loops[i].post { engine.start(call) }
    }

    /// Cancels a call if it is still running; `onFinish(.cancelled)` follows.
    func cancel(_ call: UpstreamCall) {
        let i = call.engine.load(ordering: .acquiring)
        guard i >= 0 else { return }
        let engine = engines[i]
        if loops[i].isCurrent { engine.cancel(call) } else { loops[i].post { engine.cancel(call) } }
    }

    /// Cancels everything still running and refuses new calls; a client with loops of its own ends them.
    public func shutdown() {
        accepting.store(false, ordering: .releasing)
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for (i, loop) in loops.enumerated() {
            let engine = engines[i]
            loop.perform { engine.shutdownOnLoop() }
        }
        if ownsLoops { for loop in loops { loop.shutdown() } }
    }

    deinit {
        shutdown()
        for (i, loop) in loops.enumerated() {
            let engine = engines[i]
            if ownsLoops { engine.release() } else { loop.perform { if loop.engine === engine { loop.engine = nil }; engine.release() } }
        }
    }

    /// What a call gets when the client is shutting down.
    static let shutdownOutcome = UpstreamOutcome.failed(.shutdown, message: "the gateway is shutting down")
}

/// A count shared by a client and its engines.
final class CallCounter: Sendable {
    let value = Atomic<Int>(0)
    /// New connections the finished calls needed (libcurl's CURLINFO_NUM_CONNECTS, summed).
    let connections = Atomic<Int>(0)
    /// Counts are statistics (no ordering with other memory): relaxed.
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    func subtract(_ n: Int) { value.subtract(n, ordering: .relaxed) }
    func load() -> Int { value.load(ordering: .relaxed) }
}

/// One loop's libcurl multi handle and its calls. Used only on its loop's thread (`@unchecked Sendable` so
/// work posted to the loop can carry it).
///
/// libcurl must not be re-entered from its own callbacks, and a call's handlers (run inside them) may start
/// and cancel calls: those wait in `deferredStarts` / `deferredCancels` until libcurl has returned.
final class CurlEngine: @unchecked Sendable {
    unowned let loop: EventLoop
    let index: Int
    /// The client's count of calls in progress.
    private let counter: CallCounter
    private let multi: UnsafeMutableRawPointer
    /// Easy handles between calls, by the URL they were last set to: a call to the same URL (the gateway's
    /// calls go to a few upstream URLs) keeps the options that do not change, so libcurl neither resets its
    /// settings nor parses the URL again.
    private var idleHandles: [String: [UnsafeMutableRawPointer]] = [:]
    private var idleCount = 0
    private static let maxIdleHandles = 1024
    private var active: [ObjectIdentifier: CurlTransfer] = [:]
    private var watched: Set<Int32> = []
    private var dispatching = false
    private var deferredStarts: [UpstreamCall] = []
    private var deferredCancels: [UpstreamCall] = []
    private var running = true
    private var released = false
    /// When libcurl wants `socket_action(TIMEOUT)` next (monotonic ns); nil for never.
    private var timerDeadline: UInt64?
    private var stillRunning: Int32 = 0

    init(loop: EventLoop, index: Int, counter: CallCounter) {
        self.loop = loop
        self.index = index
        self.counter = counter
        multi = curl_multi_init()!
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = bakeoff_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, 1024)
        _ = bakeoff_curl_multi_set_socket_function(multi, upstreamSocket)
        _ = bakeoff_curl_multi_set_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = bakeoff_curl_multi_set_timer_function(multi, upstreamTimer)
        _ = bakeoff_curl_multi_set_pointer(multi, CURLMOPT_TIMERDATA, me)
    }

    /// Frees the handles (the engine is done).
    func release() {
        guard !released else { return }
        released = true
        for h in idleHandles.values.joined() { curl_easy_cleanup(h) }
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
    }

    private var activeCalls: CallCounter { counter }

    func start(_ call: UpstreamCall) {
        guard running else { return refuse(call) }
        if dispatching {
            deferredStarts.append(call)
            return
        }
        dispatch {
            add(call)
            _ = curl_multi_socket_action(multi, CURL_SOCKET_BAD, 0, &stillRunning)
        }
    }

    func cancel(_ call: UpstreamCall) {
        if dispatching {
            deferredCancels.append(call)
            return
        }
        dispatch { finish(call, .cancelled) }
    }

    /// Milliseconds until libcurl's timer is due (at most 1000).
    func timeoutMs() -> Int32 {
        guard let deadline = timerDeadline else { return 1000 }
        let now = MonotonicClock.now()
        return deadline <= now ? 0 : Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
    }

    func socketReady(_ fd: Int32, events: UInt32) {
        var flags: Int32 = 0
        if events & EPOLLIN.rawValue != 0 { flags |= CURL_CSELECT_IN }
        if events & EPOLLOUT.rawValue != 0 { flags |= CURL_CSELECT_OUT }
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { flags |= CURL_CSELECT_ERR }
        dispatch { _ = curl_multi_socket_action(multi, fd, flags, &stillRunning) }
    }

    func timersDue() {
        guard let deadline = timerDeadline, deadline <= MonotonicClock.now() else { return }
        timerDeadline = nil
        dispatch { _ = curl_multi_socket_action(multi, CURL_SOCKET_BAD, 0, &stillRunning) }
    }

    /// Ends every call (the client is shutting down); later starts are refused.
    func shutdownOnLoop() {
        guard running else { return }
        running = false
        dispatching = true
        for transfer in Array(active.values) { finish(transfer.call, UpstreamClient.shutdownOutcome) }
        let stranded = deferredStarts
        deferredStarts.removeAll()
        for call in stranded { refuse(call) }
        dispatching = false
    }

    /// Finishes a counted call that will never start: the client is shutting down.
    private func refuse(_ call: UpstreamCall) {
        activeCalls.subtract(1)
        call.finish(UpstreamClient.shutdownOutcome)
    }

    /// Runs `body` (which calls into libcurl) and then whatever it deferred, and collects finished calls.
    private func dispatch(_ body: () -> Void) {
        dispatching = true
        body()
        collectFinished()
        while !deferredStarts.isEmpty || !deferredCancels.isEmpty {
            let starts = deferredStarts, cancels = deferredCancels
            deferredStarts.removeAll()
            deferredCancels.removeAll()
            for call in cancels { finish(call, .cancelled) }
            for call in starts {
                if running { add(call) } else { refuse(call) }
            }
            if !starts.isEmpty { _ = curl_multi_socket_action(multi, CURL_SOCKET_BAD, 0, &stillRunning) }
            collectFinished()
        }
        dispatching = false
    }

    /// libcurl's socket callback: which sockets to watch, for what.
    fileprivate func watch(_ fd: Int32, what: Int32) {
        let epoll = loop.epoll
        if what == CURL_POLL_REMOVE {
            if watched.remove(fd) != nil { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
            return
        }
        var mask: UInt32 = 0
        if what == CURL_POLL_IN || what == CURL_POLL_INOUT { mask |= EPOLLIN.rawValue }
        if what == CURL_POLL_OUT || what == CURL_POLL_INOUT { mask |= EPOLLOUT.rawValue }
        var event = epoll_event(events: mask, data: epoll_data_t(u64: UInt64(UInt32(bitPattern: fd))))
        if watched.insert(fd).inserted {
            if epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0 && errno == EEXIST { epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) }
        } else {
            if epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) != 0 && errno == ENOENT { epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) }
        }
    }

    /// libcurl's timer callback: when it next wants `socket_action(TIMEOUT)`.
    fileprivate func setTimer(_ milliseconds: Int) {
        timerDeadline = milliseconds < 0 ? nil : MonotonicClock.now() + UInt64(milliseconds) * 1_000_000
    }

    private func collectFinished() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            var privatePointer: UnsafeMutableRawPointer?
            _ = bakeoff_curl_get_pointer(easy, CURLINFO_PRIVATE, &privatePointer)
            guard let privatePointer else { continue }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(privatePointer).takeUnretainedValue()
            let code = message.pointee.data.result
            finish(transfer.call, outcome(code: code, transfer: transfer))
        }
    }

    private func add(_ call: UpstreamCall) {
        // A call cancelled before it was added has finished already (and been counted out).
        guard let handlers = call.current else { return }
        let request = call.request
        let h: UnsafeMutableRawPointer
        // Handles are kept per URL and CA file: what is set only on a new handle.
        let key = request.caFile.map { request.url + "\u{0}" + $0 } ?? request.url
        if let reused = idleHandles[key]?.popLast() {
            h = reused
            idleCount -= 1
        } else {
            h = curl_easy_init()!
            _ = bakeoff_curl_set_string(h, CURLOPT_URL, request.url)
            _ = bakeoff_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
            _ = bakeoff_curl_set_long(h, CURLOPT_TCP_NODELAY, 1)
            // libcurl's receive buffer, per handle (so per open stream): 8 KiB instead of 16 holds any SSE chunk
            // and most whole answers in one read.
            _ = bakeoff_curl_set_long(h, CURLOPT_BUFFERSIZE, 8 << 10)
            if let caFile = request.caFile {
                // Its CAs instead of the system's (the bundle and the directory).
                _ = bakeoff_curl_set_string(h, CURLOPT_CAINFO, caFile)
                _ = bakeoff_curl_set_string(h, CURLOPT_CAPATH, nil)
            }
        }
        let transfer = CurlTransfer(call: call, handle: h, handlers: handlers, url: key)
        _ = bakeoff_curl_set_long(h, CURLOPT_TIMEOUT_MS, max(0, request.timeoutMs))
        _ = bakeoff_curl_set_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, request.connectTimeoutMs))
        if request.method == "GET" {
            _ = bakeoff_curl_set_long(h, CURLOPT_HTTPGET, 1)
        } else {
            _ = bakeoff_curl_set_long(h, CURLOPT_POST, 1)
            _ = bakeoff_curl_set_long(h, CURLOPT_POSTFIELDSIZE, request.body.count)
            request.body.withUnsafeBytes { raw in
                // COPYPOSTFIELDS copies, so the body need not outlive this call.
                _ = bakeoff_curl_set_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        // Handles are reused: a method other than GET or POST is set on each call and cleared after.
        _ = bakeoff_curl_set_string(h, CURLOPT_CUSTOMREQUEST, request.method == "GET" || request.method == "POST" ? nil : request.method)
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for line in request.headers { list = curl_slist_append(list, line) }
        // No "Expect: 100-continue" round trip for large bodies.
        list = curl_slist_append(list, "Expect:")
        transfer.headerList = list
        _ = bakeoff_curl_set_slist(h, CURLOPT_HTTPHEADER, list)
        _ = bakeoff_curl_set_data_callback(h, CURLOPT_WRITEFUNCTION, upstreamWrite)
        // libcurl holds the transfer until `finish` takes it back.
        let me = Unmanaged.passRetained(transfer).toOpaque()
        if request.capturesHeaders {
            _ = bakeoff_curl_set_data_callback(h, CURLOPT_HEADERFUNCTION, upstreamHeader)
            _ = bakeoff_curl_set_pointer(h, CURLOPT_HEADERDATA, me)
        } else {
            _ = bakeoff_curl_set_data_callback(h, CURLOPT_HEADERFUNCTION, nil)
            _ = bakeoff_curl_set_pointer(h, CURLOPT_HEADERDATA, nil)
        }
        _ = bakeoff_curl_set_pointer(h, CURLOPT_WRITEDATA, me)
        _ = bakeoff_curl_set_pointer(h, CURLOPT_PRIVATE, me)
        active[ObjectIdentifier(call)] = transfer
        let added = curl_multi_add_handle(multi, h)
        if added != CURLM_OK {
            finish(call, .failed(.unreachable, message: "cannot start the upstream request: \(String(cString: curl_multi_strerror(added)))"))
        }
    }

    private func outcome(code: CURLcode, transfer: CurlTransfer) -> UpstreamOutcome {
        let request = transfer.call.request
        if code == CURLE_OK {
            var status = 0
            _ = bakeoff_curl_get_long(transfer.handle, CURLINFO_RESPONSE_CODE, &status)
            return .completed(status: status)
        }
        let text = String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            var connected = 0.0
            _ = bakeoff_curl_get_double(transfer.handle, CURLINFO_CONNECT_TIME, &connected)
            if connected == 0 && !transfer.responded {
                return .failed(.unreachable, message: "cannot connect to the upstream within \(request.connectTimeoutMs) ms")
            }
            return .failed(.timeout, message: "the upstream did not answer within \(request.timeoutMs) ms")
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            // The upstream's address stays out of the message: clients see it.
            return .failed(.unreachable, message: "cannot reach the upstream: \(text)")
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CONNECT_ERROR:
            var verifyResult = 0
            _ = bakeoff_curl_get_long(transfer.handle, CURLINFO_SSL_VERIFYRESULT, &verifyResult)
            return .failed(.unreachable, message: UpstreamTLSProblem(code: code, verifyResult: verifyResult).message)
        default:
            if !transfer.responded && transfer.dataBytes == 0 && (code == CURLE_GOT_NOTHING || code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR) {
                return .failed(.unreachable, message: "the upstream closed the connection without answering: \(text)")
            }
            return .failed(.brokenResponse, message: "the upstream's response broke off: \(text)")
        }
    }

    /// Ends a call (on the loop's thread): its handle goes back to the pool, its connection stays in the cache.
    private func finish(_ call: UpstreamCall, _ outcome: UpstreamOutcome) {
        guard call.current != nil else { return }
        if let transfer = active.removeValue(forKey: ObjectIdentifier(call)) {
            if case .completed = outcome { transfer.deliverResponseIfNeeded() }
            var connects = 0
            _ = bakeoff_curl_get_long(transfer.handle, CURLINFO_NUM_CONNECTS, &connects)
            counter.connections.add(connects, ordering: .relaxed)
            curl_multi_remove_handle(multi, transfer.handle)
            // The options a call sets are all set again by the next call on this handle.
            _ = bakeoff_curl_set_slist(transfer.handle, CURLOPT_HTTPHEADER, nil)
            if let list = transfer.headerList { curl_slist_free_all(list); transfer.headerList = nil }
            if idleCount < Self.maxIdleHandles {
                idleHandles[transfer.url, default: []].append(transfer.handle)
                idleCount += 1
            } else {
                curl_easy_cleanup(transfer.handle)
            }
            Unmanaged.passUnretained(transfer).release()
        }
        activeCalls.subtract(1)
        call.finish(outcome)
    }
}


private func upstreamSocket(_ easy: UnsafeMutableRawPointer?, _ fd: curl_socket_t, _ what: Int32, _ context: UnsafeMutableRawPointer?, _ socketContext: UnsafeMutableRawPointer?) -> Int32 {
    guard let context else { return 0 }
    Unmanaged<CurlEngine>.fromOpaque(context).takeUnretainedValue().watch(fd, what: what)
    return 0
}

private func upstreamTimer(_ multi: UnsafeMutableRawPointer?, _ milliseconds: Int, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let context else { return 0 }
    Unmanaged<CurlEngine>.fromOpaque(context).takeUnretainedValue().setTimer(milliseconds)
    return 0
}

private func upstreamWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    transfer.deliverResponseIfNeeded()
    transfer.dataBytes += n
    if let data, n > 0 { transfer.handlers.onData(UnsafeRawBufferPointer(start: data, count: n)) }
    return n
}

private func upstreamHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let context, let data, n > 0 else { return n }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    let line = UnsafeRawBufferPointer(start: data, count: n)
    if n >= 5 && line[0] == 0x48 && line[1] == 0x54 && line[2] == 0x54 && line[3] == 0x50 && line[4] == 0x2F {  // "HTTP/"
        transfer.headers.removeAll()  // a new response (after 100 Continue or a redirect)
    } else if let header = parseHeaderLine(line) {
        transfer.headers.append(header)
    }
    return n
}

/// "Name: value\r\n" as (lower-cased name, trimmed value); nil for a line without a colon.
package func parseHeaderLine(_ line: UnsafeRawBufferPointer) -> (name: String, value: String)? {
    guard let colon = line.firstIndex(of: 0x3A) else { return nil }
    func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
    var start = colon + 1, end = line.count
    while start < end && isSpace(line[start]) { start += 1 }
    while end > start && isSpace(line[end - 1]) { end -= 1 }
    let name = String(unsafeUninitializedCapacity: colon) { out in
        for i in 0..<colon {
            let b = line[i]
            out[i] = b >= 0x41 && b <= 0x5A ? b + 32 : b
        }
        return colon
    }
    return (name, String(decoding: UnsafeRawBufferPointer(rebasing: line[start..<end]), as: UTF8.self))
}
