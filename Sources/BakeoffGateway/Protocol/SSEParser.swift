import BakeoffHTTP
/// Splits an upstream's server-sent-events byte stream into events, whatever the chunk boundaries.
///
/// An event ends with a blank line; lines end with `\n`, `\r\n` or `\r`. Complete events inside one fed chunk
/// are handed over as slices of it (no copy); only an event split across chunks is buffered.
///
/// A blank line ending in `\r` at the very end of a chunk could be the first half of `\r\n`, so that event is
/// handed over when the next byte arrives (or by `finish`).
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    /// The previous byte ended a line (or nothing came yet): the next line terminator ends the event.
    private var atLineStart = true
    /// The previous byte was a `\r` ending a non-blank line: a `\n` now belongs to it.
    private var afterCR = false
    /// The previous byte was a `\r` ending a blank line: the event ends after it, or after a `\n` that follows.
    private var blankCR = false

    public init() {}

    /// Bytes of an unfinished event still buffered (the gateway forwards them at the end of the stream).
    public var pending: [UInt8] { buffer }

    /// Feeds bytes; calls `onEvent` for each complete event with its raw bytes (exactly as received, including
    /// the terminating blank line) and its data payload (`data:` lines joined with `\n`, without the field name
    /// and one optional leading space; nil if the event has no data lines, e.g. a comment such as `: ping`).
    /// Both are valid only during the call.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onEvent: (_ raw: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer?) -> Void) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let n = bytes.count
        var eventStart = 0  // in `bytes`; meaningful once the buffered part has been handed over
        var i = 0

        @inline(__always) func emit(_ parser: inout SSEParser, through end: Int) {
            if parser.buffer.isEmpty {
                SSEParser.dispatch(UnsafeRawBufferPointer(start: base + eventStart, count: end - eventStart), onEvent)
            } else {
                parser.buffer.append(contentsOf: UnsafeRawBufferPointer(start: base + eventStart, count: end - eventStart))
                parser.buffer.withUnsafeBytes { SSEParser.dispatch($0, onEvent) }
                parser.buffer.removeAll(keepingCapacity: true)
            }
            eventStart = end
        }

        if blankCR {
            blankCR = false
            atLineStart = true
            afterCR = false
            if base.load(as: UInt8.self) == 0x0A {
                emit(&self, through: 1)
                i = 1
            } else {
                emit(&self, through: 0)
            }
        }
        while i < n {
            let c = base.load(fromByteOffset: i, as: UInt8.self)
            if c > 0x0D || (c != 0x0A && c != 0x0D) {
                atLineStart = false
                afterCR = false
                i += 1
                continue
            }
            if c == 0x0A {
                if afterCR {
                    afterCR = false
                } else if atLineStart {
                    emit(&self, through: i + 1)
                } else {
                    atLineStart = true
                }
                i += 1
            } else {  // \r
                if atLineStart {
                    // A blank line (after "\r" or "\n" or at the start of the event).
                    afterCR = false
                    if i + 1 < n {
                        if base.load(fromByteOffset: i + 1, as: UInt8.self) == 0x0A {
                            emit(&self, through: i + 2)
                            i += 2
                        } else {
                            emit(&self, through: i + 1)
                            i += 1
                        }
                        continue
                    }
                    // The last byte: wait for the next one.
                    blankCR = true
                    i += 1
                    break
                }
                atLineStart = true
                afterCR = true
                i += 1
            }
        }
        if eventStart < n {
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: base + eventStart, count: n - eventStart))
        }
    }

    /// At the end of the stream: hands over an event whose blank line ended with `\r` as the last byte fed, and
    /// returns whatever is left unfinished (no blank line yet), which the parser then forgets.
    public mutating func finish(_ onEvent: (_ raw: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer?) -> Void) -> [UInt8] {
        if blankCR {
            buffer.withUnsafeBytes { SSEParser.dispatch($0, onEvent) }
            buffer.removeAll()
        }
        let rest = buffer
        self = SSEParser()
        return rest
    }

    /// Extracts the data of one complete event and calls `onEvent`.
    private static func dispatch(_ raw: UnsafeRawBufferPointer, _ onEvent: (_ raw: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer?) -> Void) {
        let base = raw.baseAddress!
        let n = raw.count
        var first: UnsafeRawBufferPointer?
        var joined: [UInt8]?
        var i = 0
        while i < n {
            // One line: [i, lineEnd)
            var lineEnd = i
            while lineEnd < n, case let c = raw[lineEnd], c != 0x0A && c != 0x0D { lineEnd += 1 }
            let length = lineEnd - i
            if length >= 4, raw[i] == 0x64, raw[i + 1] == 0x61, raw[i + 2] == 0x74, raw[i + 3] == 0x61,
               length == 4 || raw[i + 4] == 0x3A {
                var v = i + 5
                if v < lineEnd && raw[v] == 0x20 { v += 1 }
                if v > lineEnd { v = lineEnd }
                let value = UnsafeRawBufferPointer(start: base + v, count: lineEnd - v)
                if joined != nil {
                    joined!.append(0x0A)
                    joined!.append(contentsOf: value)
                } else if let f = first {
                    var j = [UInt8](f)
                    j.append(0x0A)
                    j.append(contentsOf: value)
                    joined = j
                } else {
                    first = value
                }
            }
            // Past the terminator.
            if lineEnd < n && raw[lineEnd] == 0x0D && lineEnd + 1 < n && raw[lineEnd + 1] == 0x0A { i = lineEnd + 2 } else { i = lineEnd + 1 }
        }
        if let joined {
            joined.withUnsafeBytes { onEvent(raw, $0) }
        } else {
            onEvent(raw, first)
        }
    }
}
