
import Foundation
import Testing
import BakeoffCore
import BakeoffHTTP
import BakeoffGateway
import BakeoffDevTools

@Suite("Load generator")
struct LoadGeneratorTests {
    static func fastMock(_ configure: (inout MockUpstream.Options) -> Void = { _ in }) throws -> MockUpstream {
        var options = MockUpstream.Options()
        options.latencyMs = 0
        options.jitterMs = 0
        options.tokensPerSecond = 0
        options.outputTokens = 5
        options.recordLimit = 10_000
        configure(&options)
        let mock = MockUpstream(options: options)
        try mock.start()
        return mock
    }

    @Test func openLoopAgainstMock() throws {
        let mock = try Self.fastMock()
        defer { mock.stop() }
        var options = LoadGenerator.Options(url: mock.baseURL + "/chat/completions")
        options.rate = 200
        options.durationSeconds = 1
        options.warmupSeconds = 0
        options.concurrency = 64
        options.users = 7
        options.headers = ["Authorization: Bearer test-key"]
        let report = LoadGenerator.run(options)
        // Counts within a wide band: the schedule holds 200 sends, a loaded machine may skip a few.
        #expect(report.requests + report.skipped == 200)
        #expect(report.requests >= 150)
        #expect(report.completed == report.requests)
        #expect(report.errors == 0)
        #expect(report.errorsByKind.isEmpty)
        #expect(report.latencyMs.p50 != nil)
        #expect(report.latencyMs.max! >= report.latencyMs.p99!)
        #expect(report.latencyMs.p99! >= report.latencyMs.p50!)
        #expect(report.ttftMs == nil)

        // What the mock got: the body the brief describes, users cycling, the extra header.
        let recent = mock.recentRequests
        #expect(recent.count == report.requests)
        let first = try #require(recent.first)
        #expect(first.header("content-type") == "application/json")
        #expect(first.header("authorization") == "Bearer test-key")
        let body = try #require((try? JSONSerialization.jsonObject(with: Data(first.body))) as? [String: Any])
        #expect(body["model"] as? String == "support-bot")
        #expect((body["messages"] as? [[String: Any]])?.first?["role"] as? String == "user")
        #expect(body["stream"] == nil)
        let users = Set(recent.compactMap { request -> String? in
            ((try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any])?["user"] as? String
        })
        #expect(users == Set((0..<7).map { "user-\($0)" }))

        let json = try #require((try? JSONSerialization.jsonObject(with: Data(report.json().utf8))) as? [String: Any])
        for key in ["requests", "completed", "errors", "skipped", "duration_s", "rate", "latency_ms", "ttft_ms"] {
            #expect(json.keys.contains(key), "JSON report has \(key)")
        }
        let latency = try #require(json["latency_ms"] as? [String: Any])
        for key in ["mean", "p50", "p90", "p99", "p999", "max"] { #expect(latency[key] is Double || latency[key] is Int, "latency_ms.\(key)") }
        #expect(json["ttft_ms"] is NSNull)
        #expect(json["requests"] as? Int == report.requests)
        #expect(!report.table().isEmpty)
    }

    @Test func closedLoopStreaming() throws {
        let mock = try Self.fastMock { $0.tokensPerSecond = 2000 }
        defer { mock.stop() }
        var options = LoadGenerator.Options(url: mock.baseURL + "/chat/completions")
        options.rate = 0
        options.concurrency = 4
        // Long enough that some requests complete inside the window even when parallel tests hold the CPU.
        options.durationSeconds = 2
        options.warmupSeconds = 0.2
        options.stream = true
        options.maxTokens = 3
        let report = LoadGenerator.run(options)
        #expect(report.completed > 0)
        #expect(report.errors == 0)
        #expect(report.skipped == 0)
        #expect(report.completed == report.requests)
        #expect(report.ttftMs?.p50 != nil)
        // Warmup requests were sent but not counted.
        #expect(mock.requestsReceived > report.requests)
        let body = try #require(mock.recentRequests.last?.bodyText)
        #expect(body.contains("\"stream\":true"))
        #expect(body.contains("\"max_tokens\":3"))
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(report.json().utf8))) as? [String: Any])
        #expect((json["ttft_ms"] as? [String: Any])?.keys.sorted() == ["p50", "p99"])
    }

    @Test func countsErrorsByKind() throws {
        let mock = try Self.fastMock { $0.errorRate = 1 }
        defer { mock.stop() }
        var options = LoadGenerator.Options(url: mock.baseURL + "/chat/completions")
        options.rate = 100
        options.durationSeconds = 0.5
        options.warmupSeconds = 0
        let report = LoadGenerator.run(options)
        #expect(report.requests > 0)
        #expect(report.completed == 0)
        #expect(report.errors == report.requests)
        #expect(Set(report.errorsByKind.keys) == ["500", "429"])
        #expect(report.latencyMs.p50 == nil)
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(report.json().utf8))) as? [String: Any])
        #expect((json["latency_ms"] as? [String: Any])?["p50"] is NSNull)
    }

    @Test func closedPortCountsErrors() throws {
        let port = try HTTPServer.reserveClosedPort()
        var options = LoadGenerator.Options(url: "http://127.0.0.1:\(port)/v1/chat/completions")
        options.rate = 100
        options.durationSeconds = 0.5
        options.warmupSeconds = 0
        options.connectTimeoutMs = 1000
        let open = LoadGenerator.run(options)
        #expect(open.requests + open.skipped == 50)
        #expect(open.completed == 0)
        #expect(open.errors == open.requests)
        #expect(open.errorsByKind["unreachable"] == open.requests)

        options.rate = 0
        options.concurrency = 4
        options.durationSeconds = 0.2
        let closed = LoadGenerator.run(options)
        #expect(closed.requests > 0)
        #expect(closed.completed == 0)
        #expect(closed.errors == closed.requests)
    }
}
