import Dispatch
import Foundation
import Synchronization

/// A read split over two threads: one reads the lines and parses them, the caller's thread aggregates them.
///
/// Parsing is about 40% of reading a store; the other 60% (the aggregation, and for the dashboard the daily
/// cuts) runs meanwhile on the caller's thread, so a read on two cores costs about what its aggregation does.
/// The events cross threads as compact binary records (the format of `RecordWriter`) in batches of about a
/// megabyte, at most `depth` batches ahead.
public enum ParsedLines {
    /// One line as the reading thread handed it over.
    public enum Line {
        /// Parsed, and of the experiment asked for. Its strings point into the batch: valid during the call.
        case event(EventView)
        /// Anything else (a blank line, one that does not parse, another experiment's event): the bytes, for the
        /// caller to read as a read on one thread does, so errors and counts stay the same.
        case raw(UnsafeRawBufferPointer)
    }

    /// Calls `consume` with every line `read` yields, in order, while `read` runs on another thread parsing
    /// ahead of it. `read` calls its argument with each line's store id, timestamp and bytes (valid during the
    /// call). An error on either side stops both; it is thrown here once the reading thread has stopped.
    public static func forEach(experiment: String, depth: Int = 4,
                               read: @escaping @Sendable (_ emit: (Int64, Int64, UnsafeRawBufferPointer) throws -> Void) throws -> Void,
                               _ consume: (_ id: Int64, _ timestamp: Int64, _ line: Line) throws -> Void) throws {
        let handoff = Handoff(depth: depth)
        let wanted = Array(experiment.utf8)
        // A thread of its own: the caller is often on a dispatch queue's thread already, and a read must not wait
        // for the pool to grow.
        let reader = Thread {
            var batch = Batch()
            var parser = EventParser()
            do {
                try read { id, ts, line in
                    let event: EventView?
                    do throws(EventParseError) {
                        let e = try parser.parse(line)
                        event = bytesEqual(e.experiment, wanted) ? e : nil
                    } catch {
                        event = nil
                    }
                    if !batch.append(id: id, timestamp: ts, event: event, line: line) {
                        guard handoff.send(.batch(batch.take())) else { throw Stopped() }
                        _ = batch.append(id: id, timestamp: ts, event: event, line: line)
                    }
                }
                if batch.used > 0, !handoff.send(.batch(batch.take())) { throw Stopped() }
                _ = handoff.send(.end)
            } catch is Stopped {
            } catch {
                // The lines before the failure first, as on one thread.
                if batch.used == 0 || handoff.send(.batch(batch.take())) { _ = handoff.send(.failed(error)) }
            }
            handoff.finished()
        }
        reader.name = "bakeoff-parse"
        reader.start()
        do {
            try wanted.withUnsafeBytes { experimentBytes in
                while true {
                    switch handoff.receive() {
                    case .end: return
                    case .failed(let error): throw error
                    case .batch(let batch): try batch.forEach(experiment: experimentBytes, consume)
                    }
                }
            }
        } catch {
            handoff.cancel()
            throw error
        }
        handoff.waitUntilFinished()
    }

    private struct Stopped: Error {}

    /// Records in one buffer: per line a tag (0: a parsed event, its record follows; 1: raw bytes, their count
    /// follows), the store id and the timestamp.
    package struct Batch: Sendable {
        static let capacity = 1 << 20
        static let header = 4 + 8 + 8
        private(set) var bytes: [UInt8]
        private(set) var used = 0

        init(capacity: Int = Batch.capacity) { bytes = [UInt8](repeating: 0, count: capacity) }

        /// Appends a line; false when it does not fit (an empty batch grows to take any line).
        mutating func append(id: Int64, timestamp: Int64, event: EventView?, line: UnsafeRawBufferPointer) -> Bool {
            let body = event.map(RecordWriter.length(of:)) ?? 4 + line.count
            let length = Batch.header + body
            if used + length > bytes.count {
                guard used == 0 else { return false }
                bytes = [UInt8](repeating: 0, count: length)
            }
            bytes.withUnsafeMutableBytes { buffer in
                let p = buffer.baseAddress! + used
                p.storeBytes(of: UInt32(event == nil ? 1 : 0), as: UInt32.self)
                p.storeBytes(of: id, toByteOffset: 4, as: Int64.self)
                p.storeBytes(of: timestamp, toByteOffset: 12, as: Int64.self)
                if let event {
                    RecordWriter.encode(event, line: 0, length: body, into: p + Batch.header)
                } else {
                    p.storeBytes(of: UInt32(truncatingIfNeeded: line.count), toByteOffset: Batch.header, as: UInt32.self)
                    if line.count > 0 { (p + Batch.header + 4).copyMemory(from: line.baseAddress!, byteCount: line.count) }
                }
            }
            used += length
            return true
        }

        /// This batch, leaving an empty one in its place.
        mutating func take() -> Batch {
            var full = Batch(capacity: 0)
            swap(&full, &self)
            self = Batch()
            return full
        }

        func forEach(experiment: UnsafeRawBufferPointer, _ body: (Int64, Int64, Line) throws -> Void) throws {
            try bytes.withUnsafeBytes { buffer in
                let base = buffer.baseAddress!
                var offset = 0
                while offset < used {
                    let p = base + offset
                    let tag = p.loadUnaligned(as: UInt32.self)
                    let id = p.loadUnaligned(fromByteOffset: 4, as: Int64.self)
                    let ts = p.loadUnaligned(fromByteOffset: 12, as: Int64.self)
                    let r = p + Batch.header
                    if tag == 0 {
                        let length = Int(r.loadUnaligned(as: UInt32.self))
                        try body(id, ts, .event(RecordReader.decode(r, experiment: experiment).0))
                        offset += Batch.header + length
                    } else {
                        let count = Int(r.loadUnaligned(as: UInt32.self))
                        try body(id, ts, .raw(UnsafeRawBufferPointer(start: r + 4, count: count)))
                        offset += Batch.header + 4 + count
                    }
                }
            }
        }
    }

    /// The batches between the threads: at most `depth` waiting; `cancel` lets a blocked reader go.
    package final class Handoff: Sendable {
        package enum Message: Sendable {
            case batch(Batch)
            case end
            case failed(any Error)
        }

        private let queue = Mutex<(messages: [Message], cancelled: Bool)>(([], false))
        private let ready = DispatchSemaphore(value: 0)
        private let room: DispatchSemaphore
        private let done = DispatchSemaphore(value: 0)

        package init(depth: Int) {
            // Made at 0 and raised: a semaphore released below the value it was made with is a crash in
            // libdispatch, and `cancel` leaves `room` anywhere from 0 to `depth`.
            room = DispatchSemaphore(value: 0)
            for _ in 0..<max(1, depth) { room.signal() }
        }

        /// Hands a message over, waiting for room; false once the receiver has stopped.
        package func send(_ message: Message) -> Bool {
            room.wait()
            let sent = queue.withLock { q -> Bool in
                if q.cancelled { return false }
                q.messages.append(message)
                return true
            }
            if sent { ready.signal() } else { room.signal() }
            return sent
        }

        func receive() -> Message {
            ready.wait()
            let message = queue.withLock { $0.messages.removeFirst() }
            room.signal()
            return message
        }

        /// The receiver stops: the reader's next `send` fails; returns once the reader has stopped.
        package func cancel() {
            queue.withLock { $0.cancelled = true; $0.messages.removeAll() }
            room.signal()
            waitUntilFinished()
        }

        package func finished() { done.signal() }
        func waitUntilFinished() { done.wait() }
    }
}
