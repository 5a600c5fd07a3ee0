
import Dispatch
import Foundation
import Synchronization
import Testing
import BakeoffTestSupport
import BakeoffCore
import BakeoffHTTP
import BakeoffDevTools

@Suite("HTTP server and upstream client")
struct HTTPServerTests {
    static func echoServer() throws -> HTTPServer {
        var options = HTTPServer.Options()
        options.maxBodyBytes = 4096
        let server = HTTPServer(options: options) { exchange in
            let request = exchange.request
            switch request.path {
            case "/sync":
                exchange.respond(status: 201, headers: [("Content-Type", "text/plain"), ("X-Echo", request.header("x-test") ?? "")],
                                 body: Array("\(request.method) \(request.body.count) \(request.query["q"] ?? "")".utf8))
            case "/async":
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
                    exchange.respond(status: 200, headers: [], body: request.body)
                }
            case "/stream":
                // Paced writes without blocking a thread: each chunk schedules the next.
                exchange.startStream(status: 200, headers: [("Content-Type", "text/event-stream")])
                @Sendable func send(_ i: Int) {
                    guard i < 5 else { exchange.finish(); return }
                    exchange.write(Array("data: \(i)\n\n".utf8))
                    DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { send(i + 1) }
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { send(0) }
            default:
                exchange.respond(status: 404, headers: [], body: [])
            }
        }
        try server.start()
        return server
    }

    @Test func answersNowLaterAndStreamed() throws {
        let server = try Self.echoServer()
        defer { server.stop(graceSeconds: 1) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        let base = "http://127.0.0.1:\(server.port)"

        let sync = CallRecorder()
        client.start(UpstreamRequest(url: base + "/sync?q=hello", headers: ["X-Test: yes"], body: Array("abc".utf8), timeoutMs: 5000, connectTimeoutMs: 1000), handlers: sync.handlers)
        let r1 = sync.wait()
        #expect(r1.status == 201)
        #expect(r1.body == "POST 3 hello")
        #expect(r1.outcome == .completed(status: 201))

        let async = CallRecorder()
        let body = [UInt8](repeating: 65, count: 3000)
        client.start(UpstreamRequest(url: base + "/async", headers: [], body: body, timeoutMs: 5000, connectTimeoutMs: 1000), handlers: async.handlers)
        let r2 = async.wait()
        #expect(r2.status == 200)
        #expect(r2.body.utf8.count == 3000)

        let stream = CallRecorder()
        client.start(UpstreamRequest(url: base + "/stream", headers: [], body: [], timeoutMs: 5000, connectTimeoutMs: 1000), handlers: stream.handlers)
        let r3 = stream.wait()
        #expect(r3.type == "text/event-stream")
        #expect(r3.body == (0..<5).map { "data: \($0)\n\n" }.joined())
        #expect(r3.pieces >= 3, "stream pieces arrive as written, not buffered")
    }

    @Test func refusesOversizedBodies() throws {
        let server = try Self.echoServer()
        defer { server.stop(graceSeconds: 1) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        let recorder = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/sync", headers: [], body: [UInt8](repeating: 1, count: 10_000), timeoutMs: 5000, connectTimeoutMs: 1000), handlers: recorder.handlers)
        let r = recorder.wait()
        #expect(r.status == 413)
        // The server knows no application's error shape: plain text unless the application gives its own.
        #expect(r.body.contains("over the limit of 4096 bytes"))
        #expect(r.type?.hasPrefix("text/plain") == true)
    }

    @Test func upstreamDownAndTimeout() throws {
        let client = UpstreamClient()
        defer { client.shutdown() }
        // A port nobody listens on.
        let closed = try HTTPServer.reserveClosedPort()
        let down = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(closed)/x", headers: [], body: [], timeoutMs: 2000, connectTimeoutMs: 500), handlers: down.handlers)
        guard case .failed(.unreachable, _)? = down.wait().outcome else { Issue.record("expected unreachable"); return }

        let server = HTTPServer(options: HTTPServer.Options()) { _ in }  // never answers
        try server.start()
        defer { server.stop(graceSeconds: 0) }
        let slow = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/x", headers: [], body: [], timeoutMs: 200, connectTimeoutMs: 500), handlers: slow.handlers)
        guard case .failed(.timeout, _)? = slow.wait().outcome else { Issue.record("expected timeout"); return }
    }

    @Test func manyConcurrentStreamsOnTwoThreads() throws {
        let server = try Self.echoServer()
        defer { server.stop(graceSeconds: 1) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        let recorders = (0..<200).map { _ in CallRecorder() }
        for r in recorders {
            client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/stream", headers: [], body: [], timeoutMs: 20_000, connectTimeoutMs: 2000), handlers: r.handlers)
        }
        let expected = (0..<5).map { "data: \($0)\n\n" }.joined()
        let complete = recorders.filter { $0.wait(seconds: 20).body == expected }.count
        #expect(complete == 200)
    }

    /// A server whose /slow answers after 300 ms and whose other paths never answer.
    static func lingeringServer() throws -> HTTPServer {
        let server = HTTPServer(options: HTTPServer.Options()) { exchange in
            if exchange.request.path == "/slow" {
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                    exchange.respond(status: 200, headers: [], body: Array("late".utf8))
                }
            }
        }
        try server.start()
        return server
    }

    static func inFlight(_ server: HTTPServer, _ count: Int) -> Bool {
        for _ in 0..<200 where server.requestsInFlight < count { usleep(10_000) }
        return server.requestsInFlight >= count
    }

    @Test func stopReturnsAsSoonAsTheRequestsInFlightAreDone() throws {
        let server = try Self.lingeringServer()
        let client = UpstreamClient()
        defer { client.shutdown() }
        let slow = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/slow", headers: [], body: [], timeoutMs: 10_000, connectTimeoutMs: 1000), handlers: slow.handlers)
        #expect(Self.inFlight(server, 1))
        let start = Date()
        server.stop(graceSeconds: 20)
        let took = Date().timeIntervalSince(start)
        let answer = slow.wait()
        #expect(answer.status == 200 && answer.body == "late")
        #expect(took < 5, "stop waited \(took) s for a request answered after 0.3 s")
        #expect(server.requestsInFlight == 0)
    }

    @Test func stopEndsWhatIsStillWaitingAfterTheGrace() throws {
        let server = try Self.lingeringServer()
        let client = UpstreamClient()
        defer { client.shutdown() }
        let never = CallRecorder()
        client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/never", headers: [], body: [], timeoutMs: 10_000, connectTimeoutMs: 1000), handlers: never.handlers)
        #expect(Self.inFlight(server, 1))
        let start = Date()
        server.stop(graceSeconds: 0.3)
        let took = Date().timeIntervalSince(start)
        #expect(never.wait().status == 503)
        #expect(took >= 0.3 && took < 5)
        server.stop(graceSeconds: 1)  // a second stop does nothing
    }
}
