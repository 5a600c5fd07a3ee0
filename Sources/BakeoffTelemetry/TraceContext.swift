/// W3C Trace Context (`traceparent`, `tracestate`): the caller's trace, which the gateway's span continues.
public struct TraceContext: Sendable, Equatable {
    public var traceID: TraceID
    /// The caller's span: the parent of the span that continues the trace.
    public var parentID: SpanID
    public var flags: UInt8
    /// `tracestate` as received (passed on as is; at most 512 bytes are kept, as the spec allows).
    public var traceState: String

    public init(traceID: TraceID, parentID: SpanID, flags: UInt8, traceState: String = "") {
        self.traceID = traceID
        self.parentID = parentID
        self.flags = flags
        self.traceState = traceState
    }

    /// Whether the caller sampled the trace (flag bit 0): a span continuing it is exported only then.
    public var sampled: Bool { flags & 1 == 1 }

    /// Reads `traceparent` as the W3C spec says: `version-traceid-parentid-flags` in lower-case hex, version
    /// `ff` and all-zero ids refused, later versions read by their first four fields. nil: not valid, and the
    /// request starts a trace of its own.
    public init?(traceparent: String, tracestate: String? = nil) {
        let utf8 = Array(traceparent.utf8)
        guard utf8.count >= 55, utf8[2] == 0x2D, utf8[35] == 0x2D, utf8[52] == 0x2D else { return nil }
        let isLowerHex = { (c: UInt8) in (0x30...0x39).contains(c) || (0x61...0x66).contains(c) }
        for (i, c) in utf8.prefix(55).enumerated() where i != 2 && i != 35 && i != 52 {
            guard isLowerHex(c) else { return nil }
        }
        let version = String(decoding: utf8[0..<2], as: UTF8.self)
        guard version != "ff" else { return nil }
        if version == "00" { guard utf8.count == 55 else { return nil } } else if utf8.count > 55 { guard utf8[55] == 0x2D else { return nil } }
        let text = Substring(traceparent)
        let start = text.startIndex
        func field(_ from: Int, _ to: Int) -> Substring { text[text.utf8.index(start, offsetBy: from)..<text.utf8.index(start, offsetBy: to)] }
        guard let trace = TraceID(hex: field(3, 35)), trace.isValid,
              let parent = SpanID(hex: field(36, 52)), parent.isValid,
              let flags = parseHex(field(53, 55)) else { return nil }
        self.init(traceID: trace, parentID: parent, flags: UInt8(flags),
                  traceState: String((tracestate ?? "").utf8.count <= 512 ? tracestate ?? "" : ""))
    }

    /// The `traceparent` header for a call made inside span `span` of this trace.
    public static func traceparent(trace: TraceID, span: SpanID, flags: UInt8) -> String {
        "00-" + trace.hex + "-" + span.hex + "-" + (flags & 1 == 1 ? "01" : "00")
    }
}
