import BakeoffHTTP
import Dispatch
import Synchronization

/// Collects what an upstream call delivered.
public final class CallRecorder: @unchecked Sendable {
    public init() {}
    public let lock = Mutex<(status: Int, type: String?, data: [UInt8], pieces: Int, outcome: UpstreamOutcome?)>((0, nil, [], 0, nil))
    public let finished = DispatchSemaphore(value: 0)

    public func attach(_ call: UpstreamCall) {
        call.onResponse = { status, type in self.lock.withLock { $0.status = status; $0.type = type } }
        call.onData = { bytes in self.lock.withLock { $0.data.append(contentsOf: bytes); $0.pieces += 1 } }
        call.onFinish = { outcome in self.lock.withLock { $0.outcome = outcome }; self.finished.signal() }
    }

    public func wait(seconds: Double = 10) -> (status: Int, type: String?, body: String, pieces: Int, outcome: UpstreamOutcome?) {
        _ = finished.wait(timeout: .now() + seconds)
        return lock.withLock { ($0.status, $0.type, String(decoding: $0.data, as: UTF8.self), $0.pieces, $0.outcome) }
    }
}
