import BakeoffHTTP
import Dispatch
import Synchronization

/// An OTLP collector in memory: records each export and answers what the test scripted (status 0: no answer).
public final class ScriptedCollector: UpstreamTransport, Sendable {
    public struct Call: Sendable { public var url: String; public var headers: [String]; public var body: [UInt8] }
    public let calls = Mutex<[Call]>([])
    /// Answers given in turn (status, headers); then 200.
    public let script: Mutex<[(Int, [(name: String, value: String)])]>
    public let arrived = DispatchSemaphore(value: 0)

    public init(script: [(Int, [(name: String, value: String)])] = []) { self.script = Mutex(script) }

    public func start(_ request: UpstreamRequest, handlers: UpstreamHandlers) -> any UpstreamCallHandle {
        calls.withLock { $0.append(Call(url: request.url, headers: request.headers, body: request.body)) }
        let (status, headers) = script.withLock { $0.isEmpty ? (200, []) : $0.removeFirst() }
        if status == 0 {
            handlers.onFinish(.failed(.unreachable, message: "connection refused"))
        } else {
            handlers.onResponse(UpstreamResponseHead(status: status, contentType: "application/x-protobuf", headers: headers))
            handlers.onFinish(.completed(status: status))
        }
        arrived.signal()
        return NoCall()
    }
    public var callsInProgress: Int { 0 }
    public func shutdown() {}
    struct NoCall: UpstreamCallHandle { func cancel() {} }
}

