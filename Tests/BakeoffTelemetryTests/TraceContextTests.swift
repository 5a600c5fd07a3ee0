import Testing
import BakeoffTelemetry

@Suite("W3C traceparent")
struct TraceContextTests {
    @Test("the spec's example is read: trace, parent, sampled flag, tracestate kept")
    func valid() throws {
        let c = try #require(TraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "rojo=00f067aa0ba902b7"))
        #expect(c.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(c.parentID.hex == "00f067aa0ba902b7")
        #expect(c.sampled)
        #expect(c.traceState == "rojo=00f067aa0ba902b7")
        #expect(TraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled == false)
    }

    @Test("what the spec says to ignore is refused", arguments: [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",          // no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has exactly four fields
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",      // a later version's extra must follow a dash
    ])
    func invalid(_ header: String) {
        #expect(TraceContext(traceparent: header) == nil)
    }

    @Test("a later version is read by its first four fields")
    func laterVersion() {
        #expect(TraceContext(traceparent: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")?.sampled == true)
    }

    @Test("a tracestate over 512 bytes is dropped, the trace is kept")
    func longState() {
        let c = TraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: String(repeating: "a", count: 513))
        #expect(c?.traceState == "")
    }

    @Test("the header for a call inside a span")
    func header() {
        let h = TraceContext.traceparent(trace: TraceID(high: 1, low: 2), span: SpanID(3), flags: 1)
        #expect(h == "00-00000000000000010000000000000002-0000000000000003-01")
        #expect(TraceContext(traceparent: h)?.parentID == SpanID(3))
    }
}
