import CMicroHTTPD
import Foundation
import Synchronization
import BakeoffCore

/// libmicrohttpd's messages, on standard error without flooding it: under an attack it says "Server reached
/// connection limit" for every connection it refuses, and a line for every client that leaves mid-request.
/// Refusals are counted (for /metrics); each kind of message is printed at most every 10 s, with a count of
/// those left out.
final class HTTPLog: Sendable {
    struct State {
        var refusedSinceNote = 0
        var lastRefusalNote: UInt64 = 0
        var limitsText = ""
    }
    private let state = Mutex(State())
    /// Every other message, at most one line every 10 s.
    private let others = RateLimitedLog(interval: 10) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    private let refused = Atomic<Int>(0)
    /// The limits, for the refusal note (set before the daemon starts).
    var limitsText: String {
        get { state.withLock { $0.limitsText } }
        set { state.withLock { $0.limitsText = newValue } }
    }

    var refusedConnections: Int { refused.load(ordering: .relaxed) }

    func message(_ text: String) {
        let now = MonotonicClock.now()
        guard text.contains("connection limit") else {
            return others.note("libmicrohttpd", "bakeoff http: \(text.trimmingCharacters(in: .whitespacesAndNewlines))", now: now)
        }
        refusedConnection(now: now)
    }

    /// A connection was refused at the limits.
    func refusedConnection(now: UInt64 = MonotonicClock.now()) {
        // Refusals are counted for /metrics and summed up in one line every 10 s.
        let line: String? = state.withLock { s in
            refused.add(1, ordering: .relaxed)
            s.refusedSinceNote += 1
            guard s.lastRefusalNote == 0 || now - s.lastRefusalNote >= 10_000_000_000 else { return nil }
            defer { s.refusedSinceNote = 0; s.lastRefusalNote = now }
            return "bakeoff http: refused \(s.refusedSinceNote) connection\(s.refusedSinceNote == 1 ? "" : "s") at the connection limits (\(s.limitsText))\(s.lastRefusalNote == 0 ? "" : " in the last \((now - s.lastRefusalNote) / 1_000_000_000) s")"
        }
        if let line { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

/// libmicrohttpd's logger (a C callback with a printf format and its arguments).
func httpLogMessage(_ cls: UnsafeMutableRawPointer?, _ format: UnsafePointer<CChar>?, _ arguments: CVaListPointer?) {
    guard let cls, let format, let arguments else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    _ = vsnprintf(&buffer, buffer.count, format, arguments)
    let text = String(cString: buffer)
    Unmanaged<HTTPLog>.fromOpaque(cls).takeUnretainedValue().message(text)
}
