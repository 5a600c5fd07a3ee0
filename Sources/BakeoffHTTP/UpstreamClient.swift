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
/// dropped by the `UpstreamClient` under its lock (libcurl runs the callbacks that reach it inside
/// `curl_multi_socket_action`, which is called only under that lock).
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

    init(call: UpstreamCall, handle: UnsafeMutableRawPointer, handlers: UpstreamHandlers) {
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

/// Drives many concurrent upstream calls with libcurl's multi interface; connections to each upstream are
/// kept alive and reused.
///
/// A call is sent from the thread that starts it (no hand-off to another thread before the request goes
/// out, which saves a thread wake-up per request); one event thread then waits on every socket (epoll) and
/// drives the answers. All libcurl calls happen under one lock, as the multi handle requires.
///
/// `@unchecked Sendable`: every `var` below and every libcurl call are under `lock`, a recursive lock
/// because libcurl's callbacks (run inside `curl_multi_socket_action`, under it) and the calls' handlers
/// they run may start and cancel calls; `multi`, `epoll` and `wake` are set in `init` and never change.
public final class UpstreamClient: UpstreamTransport, @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private let lock = NSRecursiveLock()
    private let epoll: Int32
    private let wake: Int32
    private let done = DispatchSemaphore(value: 0)

    // Guarded by `lock`.
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var active: [ObjectIdentifier: CurlTransfer] = [:]
    private var watched: Set<Int32> = []
    /// Inside libcurl (socket_action and the callbacks it runs): starts and cancels wait in the lists below.
    private var dispatching = false
    private var deferredStarts: [UpstreamCall] = []
    private var deferredCancels: [UpstreamCall] = []
    private var running = true
    /// When libcurl wants `socket_action(TIMEOUT)` next (monotonic ns); nil for never.
    private var timerDeadline: UInt64?
    /// Until when the event thread sleeps, so a start that needs an earlier timer can wake it.
    private var sleepingUntil: UInt64 = 0
    /// Where libcurl writes its count of running transfers (unused, but it must point somewhere).
    private var stillRunning: Int32 = 0

    /// Calls started while another thread was inside libcurl: the lock holder or the event thread sends them.
    private let inbox = Mutex<[UpstreamCall]>([])
    /// False once `shutdown` began: starts fail at once instead of waiting in the inbox for nobody.
    private let accepting = Atomic<Bool>(true)

    /// Calls started and not finished.
    private let activeCalls = Atomic<Int>(0)
    /// New connections the finished calls needed (libcurl's CURLINFO_NUM_CONNECTS, summed).
    private let openedConnections = Atomic<Int>(0)

    /// libcurl's global set-up is not thread-safe: done once, before the first client.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public init() {
        Self.globalInit
        multi = curl_multi_init()!
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = bakeoff_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, 1024)
        _ = bakeoff_curl_multi_set_socket_function(multi, upstreamSocket)
        _ = bakeoff_curl_multi_set_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = bakeoff_curl_multi_set_timer_function(multi, upstreamTimer)
        _ = bakeoff_curl_multi_set_pointer(multi, CURLMOPT_TIMERDATA, me)
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "bakeoff-upstream"
        thread.stackSize = 1 << 20
        thread.start()
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
    public var callsInProgress: Int { activeCalls.load(ordering: .relaxed) }

    /// Connections opened so far; each call on a kept-alive connection adds none.
    public var connectionsOpened: Int { openedConnections.load(ordering: .relaxed) }

    func start(_ call: UpstreamCall) {
        guard accepting.load(ordering: .acquiring) else {
            call.finish(Self.shutdownOutcome)
            return
        }
        activeCalls.add(1, ordering: .relaxed)
        guard lock.try() else {
            // Busy: rather than queue up behind the lock (slow under load), leave it for whoever holds it, and
            // wake the event thread in case the holder is already on its way out.
            inbox.withLock { $0.append(call) }
            signalWake()
            return
        }
        guard running else {
            lock.unlock()
            refuse(call)
            return
        }
        if dispatching {
            // Started from a callback: libcurl may not be re-entered; the dispatch loop picks it up.
            deferredStarts.append(call)
            lock.unlock()
            return
        }
        add(call)
        dispatch { _ = curl_multi_socket_action(multi, CURL_SOCKET_BAD, 0, &stillRunning) }
        let wakeNeeded = timerDeadline.map { $0 < sleepingUntil } ?? false
        lock.unlock()
        if wakeNeeded { signalWake() }
    }

    /// Cancels a call if it is still running; `onFinish(.cancelled)` follows.
    func cancel(_ call: UpstreamCall) {
        lock.lock()
        defer { lock.unlock() }
        if dispatching {
            deferredCancels.append(call)
            return
        }
        dispatch { finish(call, .cancelled) }
    }

    /// Cancels everything still running and stops the event thread.
    public func shutdown() {
        accepting.store(false, ordering: .releasing)
        lock.lock()
        let wasRunning = running
        running = false
        lock.unlock()
        guard wasRunning else { return }
        signalWake()
        done.wait()
    }

    deinit {
        shutdown()
        for h in idleHandles { curl_easy_cleanup(h) }
        curl_multi_cleanup(multi)
        close(epoll)
        close(wake)
    }

    /// What a call gets when the client is shutting down.
    private static let shutdownOutcome = UpstreamOutcome.failed(.shutdown, message: "the gateway is shutting down")

    /// Finishes a counted call that will never start: the client is shutting down.
    private func refuse(_ call: UpstreamCall) {
        activeCalls.subtract(1, ordering: .relaxed)
        call.finish(Self.shutdownOutcome)
    }

    /// The calls left in the inbox by starts that found the lock busy; the inbox is left empty.
    private func takeInbox() -> [UpstreamCall] {
        inbox.withLock { waiting in
            defer { waiting.removeAll() }
            return waiting
        }
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    /// Runs `body` (which calls into libcurl) and then whatever it deferred, and collects finished calls.
    /// Called with the lock held.
    private func dispatch(_ body: () -> Void) {
        dispatching = true
        body()
        collectFinished()
        deferredStarts += takeInbox()
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
            deferredStarts += takeInbox()
        }
        dispatching = false
    }

    private func run() {
        // Touched only on this thread.
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            lock.lock()
            if !running {
                dispatching = true
                for transfer in Array(active.values) { finish(transfer.call, Self.shutdownOutcome) }
                let stranded = deferredStarts + takeInbox()
                deferredStarts.removeAll()
                for call in stranded { refuse(call) }
                dispatching = false
                lock.unlock()
                break
            }
            let now = MonotonicClock.now()
            var timeoutMs: Int32 = 1000
            if let deadline = timerDeadline {
                timeoutMs = deadline <= now ? 0 : Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
            }
            sleepingUntil = now + UInt64(timeoutMs) * 1_000_000
            lock.unlock()

            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeoutMs) }

            lock.lock()
            sleepingUntil = 0
            dispatch {
                if n > 0 {
                    for i in 0..<Int(n) {
                        let event = events[i]
                        let fd = event.data.fd
                        if fd == wake {
                            var value: UInt64 = 0
                            _ = Glibc.read(wake, &value, 8)
                            continue
                        }
                        var flags: Int32 = 0
                        if event.events & EPOLLIN.rawValue != 0 { flags |= CURL_CSELECT_IN }
                        if event.events & EPOLLOUT.rawValue != 0 { flags |= CURL_CSELECT_OUT }
                        if event.events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { flags |= CURL_CSELECT_ERR }
                        _ = curl_multi_socket_action(multi, fd, flags, &stillRunning)
                    }
                }
                if let deadline = timerDeadline, deadline <= MonotonicClock.now() {
                    timerDeadline = nil
                    _ = curl_multi_socket_action(multi, CURL_SOCKET_BAD, 0, &stillRunning)
                }
            }
            lock.unlock()
        }
        done.signal()
    }

    /// libcurl's socket callback: which sockets to watch, for what.
    fileprivate func watch(_ fd: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(fd) != nil { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
            return
        }
        var mask: UInt32 = 0
        if what == CURL_POLL_IN || what == CURL_POLL_INOUT { mask |= EPOLLIN.rawValue }
        if what == CURL_POLL_OUT || what == CURL_POLL_INOUT { mask |= EPOLLOUT.rawValue }
        var event = epoll_event(events: mask, data: epoll_data_t(fd: fd))
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
        let h = idleHandles.popLast() ?? curl_easy_init()!
        let transfer = CurlTransfer(call: call, handle: h, handlers: handlers)
        _ = bakeoff_curl_set_string(h, CURLOPT_URL, request.url)
        _ = bakeoff_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        _ = bakeoff_curl_set_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = bakeoff_curl_set_long(h, CURLOPT_TIMEOUT_MS, max(0, request.timeoutMs))
        _ = bakeoff_curl_set_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, request.connectTimeoutMs))
        if let caFile = request.caFile {
            // Its CAs instead of the system's (the bundle and the directory); a reused handle was reset to those.
            _ = bakeoff_curl_set_string(h, CURLOPT_CAINFO, caFile)
            _ = bakeoff_curl_set_string(h, CURLOPT_CAPATH, nil)
        }
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

    /// Ends a call (lock held): its handle goes back to the pool, its connection stays in the cache.
    private func finish(_ call: UpstreamCall, _ outcome: UpstreamOutcome) {
        guard call.current != nil else { return }
        if let transfer = active.removeValue(forKey: ObjectIdentifier(call)) {
            if case .completed = outcome { transfer.deliverResponseIfNeeded() }
            var connects = 0
            _ = bakeoff_curl_get_long(transfer.handle, CURLINFO_NUM_CONNECTS, &connects)
            openedConnections.add(connects, ordering: .relaxed)
            curl_multi_remove_handle(multi, transfer.handle)
            curl_easy_reset(transfer.handle)
            idleHandles.append(transfer.handle)
            if let list = transfer.headerList { curl_slist_free_all(list); transfer.headerList = nil }
            Unmanaged.passUnretained(transfer).release()
        }
        activeCalls.subtract(1, ordering: .relaxed)
        call.finish(outcome)
    }
}


private func upstreamSocket(_ easy: UnsafeMutableRawPointer?, _ fd: curl_socket_t, _ what: Int32, _ context: UnsafeMutableRawPointer?, _ socketContext: UnsafeMutableRawPointer?) -> Int32 {
    guard let context else { return 0 }
    Unmanaged<UpstreamClient>.fromOpaque(context).takeUnretainedValue().watch(fd, what: what)
    return 0
}

private func upstreamTimer(_ multi: UnsafeMutableRawPointer?, _ milliseconds: Int, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let context else { return 0 }
    Unmanaged<UpstreamClient>.fromOpaque(context).takeUnretainedValue().setTimer(milliseconds)
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
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        transfer.headers.removeAll()  // a new response (after 100 Continue or a redirect)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        transfer.headers.append((name, value))
    }
    return n
}
