import CCurl
import Foundation
import Synchronization

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
}

/// One HTTP POST to an upstream model server; its callbacks run on the client's thread, in order:
/// `onResponse` once (status, content type) before any data, `onData` per piece as it arrives, `onFinish` once.
public final class UpstreamCall: @unchecked Sendable {
    public let url: String
    public let headers: [String]
    public let body: [UInt8]
    public let timeoutMs: Int
    public let connectTimeoutMs: Int
    public var onResponse: (@Sendable (_ status: Int, _ contentType: String?) -> Void)?
    public var onData: (@Sendable (UnsafeRawBufferPointer) -> Void)?
    public var onFinish: (@Sendable (UpstreamOutcome) -> Void)?
    /// Collect the response's headers into `responseHeaders` (names lower-cased) before `onResponse`.
    public var capturesHeaders = false
    /// The response's headers, when `capturesHeaders` is set; read them in `onResponse` or later.
    public internal(set) var responseHeaders: [(name: String, value: String)] = []

    var handle: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var responded = false
    var finished = false
    var dataBytes = 0

    /// `headers` as "Name: value" lines.
    public init(url: String, headers: [String], body: [UInt8], timeoutMs: Int, connectTimeoutMs: Int) {
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
    }

    func deliverResponseIfNeeded() {
        guard !responded, let handle else { return }
        responded = true
        var status = 0
        _ = bakeoff_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var type: UnsafeMutableRawPointer?
        _ = bakeoff_curl_get_pointer(handle, CURLINFO_CONTENT_TYPE, &type)
        let contentType = type.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
        onResponse?(status, contentType)
    }
}

/// Drives many concurrent upstream calls on one thread with libcurl's multi interface; connections to each
/// upstream are kept alive and reused.
public final class UpstreamClient: @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private struct Pending {
        var starts: [UpstreamCall] = []
        var cancels: [UpstreamCall] = []
        var running = true
    }
    private let pending = Mutex(Pending())
    private var thread: Thread?
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var active: [ObjectIdentifier: UpstreamCall] = [:]
    private let done = DispatchSemaphore(value: 0)
    /// Calls started and not finished.
    public let activeCalls = Atomic<Int>(0)

    /// libcurl's global set-up is not thread-safe: done once, before the first client.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public init() {
        Self.globalInit
        multi = curl_multi_init()!
        _ = bakeoff_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, 1024)
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "bakeoff-upstream"
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Starts a call; its callbacks follow on the client thread.
    public func start(_ call: UpstreamCall) {
        activeCalls.add(1, ordering: .relaxed)
        let accepted = pending.withLock { p -> Bool in
            guard p.running else { return false }
            p.starts.append(call)
            return true
        }
        if accepted {
            curl_multi_wakeup(multi)
        } else {
            activeCalls.subtract(1, ordering: .relaxed)
            call.onFinish?(.failed(.unreachable, message: "the gateway is shutting down"))
        }
    }

    /// Cancels a call if it is still running; `onFinish(.cancelled)` follows.
    public func cancel(_ call: UpstreamCall) {
        pending.withLock { $0.cancels.append(call) }
        curl_multi_wakeup(multi)
    }

    /// Cancels everything still running and stops the thread.
    public func shutdown() {
        let wasRunning = pending.withLock { p -> Bool in
            let r = p.running
            p.running = false
            return r
        }
        guard wasRunning else { return }
        curl_multi_wakeup(multi)
        done.wait()
    }

    deinit {
        shutdown()
        for h in idleHandles { curl_easy_cleanup(h) }
        curl_multi_cleanup(multi)
    }

    private func run() {
        var stillRunning: Int32 = 0
        while true {
            let (starts, cancels, running) = pending.withLock { p in
                defer { p.starts.removeAll(keepingCapacity: true); p.cancels.removeAll(keepingCapacity: true) }
                return (p.starts, p.cancels, p.running)
            }
            for call in starts { add(call) }
            for call in cancels where !call.finished { finish(call, .cancelled) }
            if !running {
                for call in Array(active.values) { finish(call, .cancelled) }
                break
            }
            curl_multi_perform(multi, &stillRunning)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var privatePointer: UnsafeMutableRawPointer?
                _ = bakeoff_curl_get_pointer(easy, CURLINFO_PRIVATE, &privatePointer)
                guard let privatePointer else { continue }
                let call = Unmanaged<UpstreamCall>.fromOpaque(privatePointer).takeUnretainedValue()
                let code = message.pointee.data.result
                finish(call, outcome(code: code, call: call))
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        done.signal()
    }

    private func add(_ call: UpstreamCall) {
        let handle = idleHandles.popLast() ?? curl_easy_init()!
        let h = handle
        call.handle = handle
        _ = bakeoff_curl_set_string(h, CURLOPT_URL, call.url)
        _ = bakeoff_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        _ = bakeoff_curl_set_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = bakeoff_curl_set_long(h, CURLOPT_TIMEOUT_MS, max(0, call.timeoutMs))
        _ = bakeoff_curl_set_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, call.connectTimeoutMs))
        _ = bakeoff_curl_set_long(h, CURLOPT_POST, 1)
        _ = bakeoff_curl_set_long(h, CURLOPT_POSTFIELDSIZE, call.body.count)
        call.body.withUnsafeBytes { raw in
            // COPYPOSTFIELDS copies, so the body need not outlive this call.
            _ = bakeoff_curl_set_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
        }
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for line in call.headers { list = curl_slist_append(list, line) }
        // No "Expect: 100-continue" round trip for large bodies.
        list = curl_slist_append(list, "Expect:")
        call.headerList = list
        _ = bakeoff_curl_set_slist(h, CURLOPT_HTTPHEADER, list)
        _ = bakeoff_curl_set_data_callback(h, CURLOPT_WRITEFUNCTION, upstreamWrite)
        let me = Unmanaged.passRetained(call).toOpaque()
        if call.capturesHeaders {
            _ = bakeoff_curl_set_data_callback(h, CURLOPT_HEADERFUNCTION, upstreamHeader)
            _ = bakeoff_curl_set_pointer(h, CURLOPT_HEADERDATA, me)
        }
        _ = bakeoff_curl_set_pointer(h, CURLOPT_WRITEDATA, me)
        _ = bakeoff_curl_set_pointer(h, CURLOPT_PRIVATE, me)
        active[ObjectIdentifier(call)] = call
        let added = curl_multi_add_handle(multi, h)
        if added != CURLM_OK {
            finish(call, .failed(.unreachable, message: "cannot start the upstream request: \(String(cString: curl_multi_strerror(added)))"))
        }
    }

    private func outcome(code: CURLcode, call: UpstreamCall) -> UpstreamOutcome {
        if code == CURLE_OK {
            var status = 0
            if let handle = call.handle { _ = bakeoff_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status) }
            return .completed(status: status)
        }
        let text = String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .failed(.timeout, message: "the upstream did not answer within \(call.timeoutMs) ms (\(text))")
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR:
            return .failed(.unreachable, message: "cannot reach the upstream \(call.url): \(text)")
        default:
            if !call.responded && call.dataBytes == 0 && (code == CURLE_GOT_NOTHING || code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR) {
                return .failed(.unreachable, message: "the upstream \(call.url) closed the connection without answering: \(text)")
            }
            return .failed(.brokenResponse, message: "the upstream's response broke off: \(text)")
        }
    }

    private func finish(_ call: UpstreamCall, _ outcome: UpstreamOutcome) {
        guard !call.finished else { return }
        call.finished = true
        if case .completed = outcome { call.deliverResponseIfNeeded() }
        if let handle = call.handle {
            let h = handle
            curl_multi_remove_handle(multi, h)
            // The handle's connection stays in the multi handle's cache for the next call.
            curl_easy_reset(h)
            idleHandles.append(handle)
            call.handle = nil
            Unmanaged.passUnretained(call).release()
        }
        if let list = call.headerList { curl_slist_free_all(list); call.headerList = nil }
        active[ObjectIdentifier(call)] = nil
        activeCalls.subtract(1, ordering: .relaxed)
        let onFinish = call.onFinish
        call.onResponse = nil
        call.onData = nil
        call.onFinish = nil
        onFinish?(outcome)
    }
}

private func upstreamWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let call = Unmanaged<UpstreamCall>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    call.deliverResponseIfNeeded()
    call.dataBytes += n
    if let data, n > 0 { call.onData?(UnsafeRawBufferPointer(start: data, count: n)) }
    return n
}

private func upstreamHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let context, let data, n > 0 else { return n }
    let call = Unmanaged<UpstreamCall>.fromOpaque(context).takeUnretainedValue()
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        call.responseHeaders.removeAll()  // a new response (after 100 Continue or a redirect)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        call.responseHeaders.append((name, value))
    }
    return n
}
