import Foundation

/// Reading a large log in pieces, so that memory stays fixed however many events it holds.
///
/// Pass 1 parses every line (reporting problems with their line numbers, as the in-memory path does) and
/// writes each event of the experiment as a compact binary record into one of N temporary files chosen
/// by a hash of its user id. Pass 2 aggregates each file on its own and adds the per-variant sums up:
/// every user's events are in one file, so nothing that is computed per user crosses files. Memory is
/// that of one piece (about 1/N of the in-memory state) plus fixed buffers.
///
/// It needs `user_id` on feedback events (to know their piece); a log without it is read in memory.
enum PartitionedLog {
    /// The piece count for a file of this size. Below 512 MB the log is read in memory (its state is about
    /// a quarter of the file's size); above, one piece per 128 MB of log text keeps the state of a piece
    /// near 35 MB whatever the log's length.
    static func automaticPartitions(fileBytes: Int64) -> Int {
        fileBytes < 512 << 20 ? 1 : Int((fileBytes + (128 << 20) - 1) / (128 << 20))
    }

    /// The aggregate, or nil when a feedback event has no `user_id` (the caller then reads in memory).
    static func aggregate(path: String, options: EventLog.Options, partitions: Int) throws -> ExperimentData? {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bakeoff-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var writers: [RecordWriter] = []
        for p in 0..<partitions {
            writers.append(try RecordWriter(path: directory.appendingPathComponent("part-\(p)").path))
        }

        // Pass 1: parse, validate, route.
        var reader = try LineReader(path: path)
        var parser = EventParser()
        let total = reader.totalBytes
        let progress = options.progress
        var filter = ExperimentFilter(options.experiment)
        var skipped = 0, blank = 0
        var examples: [String] = []
        var needsUserOnFeedback = false
        do throws(ReadError<EventLogError>) {
            try reader.forEachLine(progress: progress.map { p in { p($0 / 2, total) } }) { (line, number) throws(EventLogError) in
                if needsUserOnFeedback { return }
                if line.count == 0 || line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { blank += 1; return }
                let event: EventView
                do throws(EventParseError) { event = try parser.parse(line) } catch {
                    let e = EventLogError(path: path, line: number, column: error.column, message: error.message)
                    guard options.skipInvalid else { throw e }
                    skipped += 1
                    if examples.count < 5 { examples.append("line \(number): \(error.message)") }
                    return
                }
                guard filter.accepts(event.experiment) else { return }
                guard event.userID.count > 0 else { needsUserOnFeedback = true; return }
                let piece = Int(hashBytes(event.userID) % UInt64(partitions))
                writers[piece].append(event, line: UInt32(truncatingIfNeeded: number))
            }
        } catch {
            switch error {
            case .file(let f): throw f
            case .body(let e): throw e
            }
        }
        if needsUserOnFeedback {
            for i in writers.indices { try? writers[i].close() }
            return nil
        }
        for i in writers.indices { try writers[i].close() }

        // Pass 2: aggregate each piece.
        let experiment = filter.name
        var merged: ExperimentData?
        for (i, writer) in writers.enumerated() {
            var aggregator = EventAggregator(metrics: options.metrics, experiment: experiment,
                                             experimentStart: options.experimentStart, covariates: options.covariates, until: options.until)
            try RecordReader.forEach(path: writer.path, experiment: filter.wanted ?? []) { event, line throws(EventLogError) in
                do throws(EventRejection) { try aggregator.add(event, sequence: line) } catch {
                    let e = EventLogError(path: path, line: Int(line), message: error.message)
                    guard options.skipInvalid else { throw e }
                    skipped += 1
                    if examples.count < 1000 { examples.append("line \(line): \(error.message)") }
                }
            }
            try? FileManager.default.removeItem(atPath: writer.path)
            // Merge as we go, so only one piece's state is alive at a time.
            let piece = aggregator.finish()
            let last = i == writers.count - 1
            merged = merged.map { ExperimentData.merge([$0, piece], quantiles: last) } ?? ExperimentData.merge([piece], quantiles: last)
            progress?(Int64(Double(total ?? 0) * (0.5 + 0.5 * Double(i + 1) / Double(partitions))), total)
        }
        guard var data = merged else { return nil }
        if let experiment { data.experiment = experiment }
        data.dataQuality.otherExperiments = filter.otherExperiments
        data.dataQuality.linesSkipped = skipped
        // Pass 2 finds its problems piece by piece; list the examples in file order, as the in-memory path does.
        func lineOf(_ example: String) -> Int { Int(example.dropFirst(5).prefix { $0.isNumber }) ?? 0 }
        data.dataQuality.skippedExamples = Array(examples.sorted { lineOf($0) < lineOf($1) }.prefix(5))
        data.dataQuality.blankLines = blank
        return data
    }
}

/// Appends events as binary records to a file, in large writes.
///
/// Record: u32 total length, u32 line, u32 kind (bit 8: qa), i64 ts, 5 × f64 (latency, ttft, input, output,
/// value), 6 × u32 string lengths (variant, user, conversation, request, status, name), then the bytes.
struct RecordWriter {
    static let headerSize = 4 + 4 + 4 + 8 + 40 + 24
    static let capacity = 1 << 20
    let path: String
    private let fd: Int32
    private let buffer: UnsafeMutableRawPointer
    private var used = 0
    /// The first write error (a full disk), reported by `close`.
    private var failure: Int32 = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if fd < 0 { throw FileError(path: path, message: "cannot create a temporary file: \(String(cString: strerror(errno)))") }
        buffer = .allocate(byteCount: RecordWriter.capacity, alignment: 16)
    }

    /// The bytes of `e`'s record.
    static func length(of e: EventView) -> Int {
        RecordWriter.headerSize + e.variant.count + e.userID.count + e.conversationID.count
            + e.requestID.count + e.status.count + e.name.count
    }

    mutating func append(_ e: EventView, line: UInt32) {
        let length = RecordWriter.length(of: e)
        if used + length > RecordWriter.capacity { flush() }
        if length > RecordWriter.capacity {  // a record larger than the buffer goes out on its own
            let big = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 16)
            defer { big.deallocate() }
            RecordWriter.encode(e, line: line, length: length, into: big)
            writeFully(big, length)
            return
        }
        RecordWriter.encode(e, line: line, length: length, into: buffer + used)
        used += length
    }

    /// Writes one record of `length` bytes (`length(of:)`) at `start`.
    static func encode(_ e: EventView, line: UInt32, length: Int, into start: UnsafeMutableRawPointer) {
        var p = start
        func put<T>(_ value: T) {
            p.storeBytes(of: value, as: T.self)
            p += MemoryLayout<T>.size
        }
        func copy(_ s: UnsafeRawBufferPointer) {
            if s.count > 0 { p.copyMemory(from: s.baseAddress!, byteCount: s.count) }
            p += s.count
        }
        put(UInt32(truncatingIfNeeded: length)); put(line); put(UInt32(e.kind.rawValue) | (e.qa ? 0x100 : 0)); put(e.timestamp)
        put(e.latencyMs); put(e.ttftMs); put(e.inputTokens); put(e.outputTokens); put(e.value)
        put(UInt32(truncatingIfNeeded: e.variant.count)); put(UInt32(truncatingIfNeeded: e.userID.count))
        put(UInt32(truncatingIfNeeded: e.conversationID.count)); put(UInt32(truncatingIfNeeded: e.requestID.count))
        put(UInt32(truncatingIfNeeded: e.status.count)); put(UInt32(truncatingIfNeeded: e.name.count))
        copy(e.variant); copy(e.userID); copy(e.conversationID); copy(e.requestID); copy(e.status); copy(e.name)
    }

    private mutating func writeFully(_ bytes: UnsafeRawPointer, _ count: Int) {
        var offset = 0
        while offset < count && failure == 0 {
            let n = write(fd, bytes + offset, count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            offset += n
        }
    }

    private mutating func flush() {
        writeFully(buffer, used)
        used = 0
    }

    mutating func close() throws {
        flush()
        buffer.deallocate()
        if Glibc.close(fd) != 0 && failure == 0 { failure = errno }
        if failure != 0 {
            throw FileError(path: path, message: "cannot write a temporary file for reading in pieces: \(String(cString: strerror(failure))) (set TMPDIR to a disk with room, or read the log in one piece)", remedy: .readInOnePiece)
        }
    }
}

/// Reads the records of a `RecordWriter` file back as `EventView`s.
enum RecordReader {
    /// The event of the record at `r` (its strings point into the record) and its line.
    static func decode(_ r: UnsafeRawPointer, experiment: UnsafeRawBufferPointer) -> (EventView, line: UInt32) {
        var e = EventView()
        let line = r.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let kind = r.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        e.kind = kind & 0xFF == 0 ? .request : .feedback
        e.qa = kind & 0x100 != 0
        e.timestamp = r.loadUnaligned(fromByteOffset: 12, as: Int64.self)
        e.latencyMs = r.loadUnaligned(fromByteOffset: 20, as: Double.self)
        e.ttftMs = r.loadUnaligned(fromByteOffset: 28, as: Double.self)
        e.inputTokens = r.loadUnaligned(fromByteOffset: 36, as: Double.self)
        e.outputTokens = r.loadUnaligned(fromByteOffset: 44, as: Double.self)
        e.value = r.loadUnaligned(fromByteOffset: 52, as: Double.self)
        var offset = RecordWriter.headerSize
        func next(_ k: Int) -> UnsafeRawBufferPointer {
            let count = Int(r.loadUnaligned(fromByteOffset: 60 + 4 * k, as: UInt32.self))
            defer { offset += count }
            return UnsafeRawBufferPointer(start: r + offset, count: count)
        }
        e.variant = next(0); e.userID = next(1); e.conversationID = next(2)
        e.requestID = next(3); e.status = next(4); e.name = next(5)
        e.experiment = experiment
        return (e, line)
    }

    static func forEach(path: String, experiment: [UInt8],
                        _ body: (EventView, UInt32) throws(EventLogError) -> Void) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw FileError(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var capacity = 4 << 20
        var buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var filled = 0
        try experiment.withUnsafeBytes { experimentView in
            while true {
                let n = read(fd, buffer + filled, capacity - filled)
                if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, message: String(cString: strerror(errno))) }
                filled += n
                var start = 0
                while filled - start >= 4 {
                    let length = Int(buffer.loadUnaligned(fromByteOffset: start, as: UInt32.self))
                    guard filled - start >= length else { break }
                    let (e, line) = decode(UnsafeRawPointer(buffer + start), experiment: experimentView)
                    try body(e, line)
                    start += length
                }
                if n == 0 { break }
                memmove(buffer, buffer + start, filled - start)
                filled -= start
                if filled >= 4 {
                    let length = Int(buffer.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                    if length > capacity {
                        let bigger = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 16)
                        bigger.copyMemory(from: buffer, byteCount: filled)
                        buffer.deallocate()
                        buffer = bigger
                        capacity = length
                    }
                }
            }
        }
    }
}
