/// A trace's id: 16 bytes, never all zero (W3C Trace Context).
public struct TraceID: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A random id (never all zero).
    public static func random() -> TraceID {
        var g = SystemRandomNumberGenerator()
        while true {
            let id = TraceID(high: g.next(), low: g.next())
            if id.isValid { return id }
        }
    }

    public var isValid: Bool { high != 0 || low != 0 }
    public var bytes: [UInt8] { bigEndianBytes(high) + bigEndianBytes(low) }
    /// 32 lower-case hex digits, as in `traceparent` and OTLP/JSON.
    public var hex: String { hexDigits(high) + hexDigits(low) }

    /// From 32 hex digits (either case), nil otherwise.
    public init?(hex: Substring) {
        guard hex.utf8.count == 32, let h = parseHex(hex.prefix(16)), let l = parseHex(hex.suffix(16)) else { return nil }
        self.init(high: h, low: l)
    }
}

/// A span's id: 8 bytes, never all zero.
public struct SpanID: Hashable, Sendable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func random() -> SpanID {
        var g = SystemRandomNumberGenerator()
        while true {
            let v: UInt64 = g.next()
            if v != 0 { return SpanID(v) }
        }
    }

    public var isValid: Bool { value != 0 }
    public var bytes: [UInt8] { bigEndianBytes(value) }
    /// 16 lower-case hex digits.
    public var hex: String { hexDigits(value) }

    public init?(hex: Substring) {
        guard hex.utf8.count == 16, let v = parseHex(hex) else { return nil }
        self.init(v)
    }
}

/// An attribute's value (the OTLP `AnyValue` kinds spans use).
public enum AttributeValue: Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case strings([String])
}

/// One attribute of a span, a span event or a resource.
public struct Attribute: Sendable, Equatable {
    public var key: String
    public var value: AttributeValue

    public init(_ key: String, _ value: AttributeValue) {
        self.key = key
        self.value = value
    }
}

/// What a span stands for (OTLP's `SpanKind`).
public enum SpanKind: Int, Sendable {
    case `internal` = 1
    case server = 2
    case client = 3
}

/// A span's outcome (OTLP's `Status`): unset unless something failed.
public struct SpanStatus: Sendable, Equatable {
    public enum Code: Int, Sendable { case unset = 0, ok = 1, error = 2 }
    public var code: Code
    public var message: String

    public init(_ code: Code, message: String = "") {
        self.code = code
        self.message = message
    }

    public static let unset = SpanStatus(.unset)
}

/// A reference from one span to another, maybe in another trace.
public struct SpanLink: Sendable, Equatable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var attributes: [Attribute]

    public init(traceID: TraceID, spanID: SpanID, attributes: [Attribute] = []) {
        self.traceID = traceID
        self.spanID = spanID
        self.attributes = attributes
    }
}

/// A finished span, ready to export.
public struct Span: Sendable, Equatable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var parentSpanID: SpanID?
    /// The W3C `tracestate` the trace came with, passed on as it was.
    public var traceState: String
    /// The W3C trace flags (bit 0: sampled).
    public var flags: UInt8
    public var name: String
    public var kind: SpanKind
    /// Nanoseconds since 1970.
    public var start: UInt64
    public var end: UInt64
    public var attributes: [Attribute]
    public var links: [SpanLink]
    public var status: SpanStatus

    public init(traceID: TraceID, spanID: SpanID, parentSpanID: SpanID? = nil, traceState: String = "", flags: UInt8 = 1,
                name: String, kind: SpanKind, start: UInt64, end: UInt64, attributes: [Attribute] = [],
                links: [SpanLink] = [], status: SpanStatus = .unset) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.traceState = traceState
        self.flags = flags
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.attributes = attributes
        self.links = links
        self.status = status
    }
}

func bigEndianBytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }

func hexDigits(_ v: UInt64) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8](repeating: 0, count: 16)
    for i in 0..<16 { out[i] = digits[Int((v >> (60 - 4 * UInt64(i))) & 0xF)] }
    return String(decoding: out, as: UTF8.self)
}

func parseHex<S: StringProtocol>(_ s: S) -> UInt64? {
    var v: UInt64 = 0
    for c in s.utf8 {
        let d: UInt8
        switch c {
        case 0x30...0x39: d = c - 0x30
        case 0x61...0x66: d = c - 0x61 + 10
        case 0x41...0x46: d = c - 0x41 + 10
        default: return nil
        }
        v = v << 4 | UInt64(d)
    }
    return v
}
