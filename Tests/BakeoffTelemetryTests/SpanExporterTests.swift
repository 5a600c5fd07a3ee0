import BakeoffHTTP
import Foundation
import Dispatch
import Synchronization
import Testing
import BakeoffTelemetry
import BakeoffTestSupport

@Suite("The span exporter against a scripted collector")
struct SpanExporterTests {
    func span(_ i: Int) -> Span {
        Span(traceID: TraceID(high: 9, low: UInt64(i) + 1), spanID: SpanID(UInt64(i) + 1), name: "chat m", kind: .client, start: 1, end: 2)
    }
    let source = TraceSource(resource: [Attribute("service.name", .string("t"))], scopeName: "bakeoff.gateway", scopeVersion: "0")

    @Test("spans go in batches with the content type and the configured headers; the stop flushes what waits")
    func batchesAndFlush() throws {
        let collector = ScriptedCollector()
        let settings = ExportSettings(endpoint: "http://c/v1/traces", encoding: .protobuf, headers: ["x-api-key: k"],
                                      exportIntervalMs: 60_000, batchSize: 2, queueSize: 100)
        let exporter = SpanExporter(settings: settings, source: source, transport: collector, log: { _ in })
        for i in 0..<5 { exporter.export(span(i)) }
        // Two full batches go at once; the fifth waits for the interval (a minute) and so goes at the stop.
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        exporter.shutdown(graceSeconds: 5)
        let calls = collector.calls.withLock { $0 }
        #expect(calls.count == 3)
        #expect(calls.allSatisfy { $0.url == "http://c/v1/traces" && $0.headers.contains("Content-Type: application/x-protobuf") && $0.headers.contains("x-api-key: k") })
        #expect(calls[0].body == OTLPProtocol.protobuf.encode([span(0), span(1)], from: source))
        #expect(calls[2].body == OTLPProtocol.protobuf.encode([span(4)], from: source))
        #expect(exporter.exported == 5)
        #expect(exporter.dropped == 0)
        exporter.export(span(9))
        #expect(exporter.dropped == 1, "a span after the stop is dropped and counted")
    }

    @Test("a collector that fails is retried; its failures are counted, logged, and shown until an export succeeds")
    func failures() throws {
        let collector = ScriptedCollector(script: [(0, []), (503, [("retry-after", "0")])])
        let lines = Mutex<[String]>([])
        let settings = ExportSettings(endpoint: "http://c/v1/traces", exportIntervalMs: 1, batchSize: 1, queueSize: 10)
        let exporter = SpanExporter(settings: settings, source: source, transport: collector, log: { line in lines.withLock { $0.append(line) } })
        exporter.export(span(0))
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        #expect(exporter.lastError != nil)
        // The third try (after 2 s of backoff) succeeds.
        #expect(collector.arrived.wait(timeout: .now() + 10) == .success)
        exporter.shutdown(graceSeconds: 5)
        #expect(exporter.exported == 1)
        #expect(exporter.failures == 2)
        #expect(exporter.lastError == nil)
        #expect(lines.withLock { $0 }.first?.contains("OTLP: export to http://c/v1/traces failed: connection refused; will retry") == true)
    }

    @Test("a lone span goes after the export interval, though no batch fills up")
    func loneSpan() {
        let collector = ScriptedCollector()
        let exporter = SpanExporter(settings: ExportSettings(endpoint: "http://c/v1/traces", exportIntervalMs: 50, batchSize: 100),
                                    source: source, transport: collector, log: { _ in })
        // Give the exporter time to fall asleep with nothing queued first.
        Thread.sleep(forTimeInterval: 0.2)
        exporter.export(span(0))
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        exporter.shutdown(graceSeconds: 1)
        #expect(exporter.exported == 1)
    }

    @Test("a refused export drops its batch at once, and says so")
    func refused() {
        let collector = ScriptedCollector(script: [(415, [])])
        let lines = Mutex<[String]>([])
        let exporter = SpanExporter(settings: ExportSettings(endpoint: "http://c/v1/traces", exportIntervalMs: 1, batchSize: 1),
                                    source: source, transport: collector, log: { line in lines.withLock { $0.append(line) } })
        exporter.export(span(0))
        #expect(collector.arrived.wait(timeout: .now() + 5) == .success)
        exporter.shutdown(graceSeconds: 1)
        #expect(exporter.dropped == 1)
        #expect(exporter.exported == 0)
        #expect(lines.withLock { $0 }.contains { $0.contains("HTTP 415") && $0.contains("1 spans dropped") })
    }
}
