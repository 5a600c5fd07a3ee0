/// Protocol Buffers' wire format, the few field kinds OTLP's messages use: enough to write them without a
/// generated library (none can be fetched here, and the messages are small and stable).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// A varint field (int64, uint32, bool, enum); proto3 leaves zero values out.
    mutating func varintField(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    /// An int64 field, always written (an attribute's value 0 is a value).
    mutating func int64Field(_ field: Int, _ value: Int64, always: Bool) {
        guard always || value != 0 else { return }
        tag(field, 0)
        varint(UInt64(bitPattern: value))
    }

    mutating func fixed64Field(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    mutating func fixed32Field(_ field: Int, _ value: UInt32) {
        guard value != 0 else { return }
        tag(field, 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
    }

    /// A double field, always written when `always` (an attribute's 0.0 is a value).
    mutating func doubleField(_ field: Int, _ value: Double, always: Bool = false) {
        guard always || value != 0 else { return }
        tag(field, 1)
        let bits = value.bitPattern
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
    }

    mutating func bytesField(_ field: Int, _ value: [UInt8], always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }

    mutating func stringField(_ field: Int, _ value: String, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, 2)
        var value = value
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// An embedded message, written by `body` (written even when empty: presence matters for messages).
    mutating func messageField(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        tag(field, 2)
        varint(UInt64(inner.bytes.count))
        bytes += inner.bytes
    }
}

/// Reads the few things a collector's answer may say (`ExportTraceServiceResponse.partial_success`).
struct ProtobufReader {
    let bytes: [UInt8]
    var pos = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while pos < bytes.count, shift < 64 {
            let b = bytes[pos]
            pos += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    /// The next field: its number, wire type, and its value (a varint or the bytes of a length-delimited field).
    mutating func next() -> (field: Int, varint: UInt64?, bytes: [UInt8]?)? {
        guard pos < bytes.count, let key = varint() else { return nil }
        let field = Int(key >> 3)
        switch key & 7 {
        case 0:
            guard let v = varint() else { return nil }
            return (field, v, nil)
        case 1:
            guard pos + 8 <= bytes.count else { return nil }
            pos += 8
            return (field, nil, nil)
        case 2:
            guard let n = varint(), n <= UInt64(bytes.count - pos) else { return nil }
            let value = Array(bytes[pos..<pos + Int(n)])
            pos += Int(n)
            return (field, nil, value)
        case 5:
            guard pos + 4 <= bytes.count else { return nil }
            pos += 4
            return (field, nil, nil)
        default:
            return nil
        }
    }
}
