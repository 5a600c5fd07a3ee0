import BakeoffHTTP
import Dispatch
import Synchronization

/// Collects what an upstream call delivered.
public final class CallRecorder: Sendable {
    public init() {}
    public let lock = Mutex<(status: Int, type: String?, data: [UInt8], pieces: Int, outcome: UpstreamOutcome?)>((0, nil, [], 0, nil))
    public let finished = DispatchSemaphore(value: 0)

    /// Handlers that record into this recorder.
    public var handlers: UpstreamHandlers {
        UpstreamHandlers(
            onResponse: { head in self.lock.withLock { $0.status = head.status; $0.type = head.contentType } },
            onData: { bytes in self.lock.withLock { $0.data.append(contentsOf: bytes); $0.pieces += 1 } },
            onFinish: { outcome in self.lock.withLock { $0.outcome = outcome }; self.finished.signal() }
        )
    }

    public func wait(seconds: Double = 10) -> (status: Int, type: String?, body: String, pieces: Int, outcome: UpstreamOutcome?) {
        _ = finished.wait(timeout: .now() + seconds)
        return lock.withLock { ($0.status, $0.type, String(decoding: $0.data, as: UTF8.self), $0.pieces, $0.outcome) }
    }
}
