import Dispatch
import Foundation
import Synchronization
import Testing
import BakeoffTestSupport
import BakeoffCore
import BakeoffHTTP

@Suite("Event loops: one thread for a request's server and upstream work")
struct EventLoopTests {
    @Test func postedWorkRunsInOrderOnTheLoopsThread() {
        let loop = EventLoop(name: "test-loop")
        defer { loop.shutdown() }
        #expect(!loop.isCurrent)
        let seen = Mutex<[Int]>([])
        let onLoop = Mutex<[Bool]>([])
        let done = DispatchSemaphore(value: 0)
        for i in 0..<100 {
            loop.post {
                seen.withLock { $0.append(i) }
                onLoop.withLock { $0.append(loop.isCurrent) }
                if i == 99 { done.signal() }
            }
        }
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(seen.withLock { $0 } == Array(0..<100))
        #expect(onLoop.withLock { $0 }.allSatisfy { $0 })
        #expect(loop.perform { loop.isCurrent })
    }

    @Test func workPostedAfterShutdownStillRuns() {
        let loop = EventLoop(name: "test-ended")
        loop.shutdown()
        let ran = Mutex(false)
        loop.post { ran.withLock { $0 = true } }
        #expect(ran.withLock { $0 })
        #expect(loop.perform { 42 } == 42)
    }

    /// A server and an upstream client on the same loops: a call started while handling a request is sent and
    /// answered on the thread that read the request.
    @Test func aServerAndItsUpstreamCallsShareTheLoops() throws {
        let upstream = try HTTPServerTests.echoServer()
        defer { upstream.stop(graceSeconds: 1) }
        let loops = (0..<2).map { EventLoop(name: "test-shared-\($0)") }
        defer { for loop in loops { loop.shutdown() } }
        let client = UpstreamClient(loops: loops)
        defer { client.shutdown() }
        let threads = Mutex<[String]>([])
        var options = HTTPServer.Options()
        options.loops = loops
        let server = HTTPServer(options: options) { exchange in
            let here = loops.firstIndex { $0.isCurrent }.map { "loop \($0)" } ?? "elsewhere"
            client.start(UpstreamRequest(url: "http://127.0.0.1:\(upstream.port)/sync?q=x", headers: [], body: Array("hi".utf8), timeoutMs: 5000, connectTimeoutMs: 1000),
                         handlers: UpstreamHandlers(onFinish: { outcome in
                let there = loops.firstIndex { $0.isCurrent }.map { "loop \($0)" } ?? "elsewhere"
                threads.withLock { $0.append(here + " -> " + there) }
                exchange.respond(status: 200, headers: [], body: Array("\(outcome)".utf8))
            }))
        }
        try server.start()
        defer { server.stop(graceSeconds: 1) }
        #expect(server.loops.count == 2)
        for _ in 0..<20 {
            let call = CallRecorder()
            client.start(UpstreamRequest(url: "http://127.0.0.1:\(server.port)/", headers: [], body: [], timeoutMs: 5000, connectTimeoutMs: 1000), handlers: call.handlers)
            let r = call.wait()
            #expect(r.status == 200)
            #expect(r.body == "completed(status: 201)")
        }
        let pairs = threads.withLock { $0 }
        #expect(pairs.count == 20)
        for pair in pairs {
            let sides = pair.components(separatedBy: " -> ")
            #expect(sides.count == 2 && sides[0] == sides[1] && sides[0].hasPrefix("loop "), "request read and upstream answered on one loop: \(pair)")
        }
    }

    /// Handles are reused per URL without a reset: a call must not inherit the method, body or headers of the
    /// call before it on the same handle.
    @Test func reusedHandlesCarryNothingOverFromTheLastCall() throws {
        let seen = Mutex<[String]>([])
        let server = HTTPServer(options: HTTPServer.Options()) { exchange in
            let r = exchange.request
            seen.withLock { $0.append("\(r.method) \(r.body.count) \(r.header("x-a") ?? "-")") }
            exchange.respond(status: 200, headers: [("X-Back", "1")], body: Array("ok".utf8))
        }
        try server.start()
        defer { server.stop(graceSeconds: 1) }
        let client = UpstreamClient()
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/same"
        var requests = [
            UpstreamRequest(url: url, headers: ["X-A: 1"], body: Array("abc".utf8), timeoutMs: 5000, connectTimeoutMs: 1000, capturesHeaders: true),
            UpstreamRequest(url: url, headers: [], body: [], timeoutMs: 5000, connectTimeoutMs: 1000),
            UpstreamRequest(url: url, headers: [], body: Array("xy".utf8), timeoutMs: 5000, connectTimeoutMs: 1000),
        ]
        requests[1].method = "GET"
        requests[2].method = "PUT"
        for request in requests {
            let call = CallRecorder()
            client.start(request, handlers: call.handlers)
            #expect(call.wait().status == 200)
        }
        #expect(seen.withLock { $0 } == ["POST 3 1", "GET 0 -", "PUT 2 -"])
    }

    @Test func headerLinesAreParsedWithoutFoundation() {
        func parse(_ s: String) -> (String, String)? {
            Array(s.utf8).withUnsafeBytes { parseHeaderLine($0) }.map { ($0.name, $0.value) }
        }
        #expect(parse("Retry-After:  12 \r\n")! == ("retry-after", "12"))
        #expect(parse("X-RateLimit-Remaining-Tokens:\t9\r\n")! == ("x-ratelimit-remaining-tokens", "9"))
        #expect(parse("Empty:\r\n")! == ("empty", ""))
        #expect(parse("no colon here\r\n") == nil)
        #expect(parse("\r\n") == nil)
    }

    @Test func delayHistogramCountsIntoItsBuckets() {
        let h = DelayHistogram()
        h.observe(nanoseconds: 50_000)      // 0.05 ms: first bucket
        h.observe(nanoseconds: 3_000_000)   // 3 ms: the 5 ms bucket
        h.observe(nanoseconds: 5_000_000_000)  // 5 s: above every bound
        let s = h.snapshot
        #expect(s.count == 3)
        #expect(s.counts[0] == 1)
        #expect(s.counts[DelayHistogram.bounds.firstIndex(of: 0.005)!] == 1)
        #expect(s.counts.last == 1)
        let text = h.prometheus(name: "x_seconds", help: "h")
        #expect(text.contains("x_seconds_bucket{le=\"0.005\"} 2\n"))
        #expect(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"))
        #expect(text.contains("x_seconds_count 3\n"))
    }
}
