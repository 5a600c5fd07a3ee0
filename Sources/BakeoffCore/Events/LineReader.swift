#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that could not be opened or read.
public struct FileError: RemedyCarrying, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var remedy: Remedy?
    public init(path: String, message: String, remedy: Remedy? = nil) {
        self.path = path
        self.message = message
        self.remedy = remedy
    }
    public var description: String { "\(path): \(message)" }
}

/// Reads a file (or standard input, as "-") line by line in large blocks, handing out each line's bytes
/// without copying them.
///
/// Why not `FileHandle` or `String(contentsOf:)`: the analysis reads gigabytes at a million lines per second,
/// and memory must not grow with the file.
public struct LineReader: ~Copyable {
    public let path: String
    private let fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    /// Total bytes in the file, when it is a regular file (for progress).
    public let totalBytes: Int64?
    /// The longest line accepted; a longer one is an error rather than unbounded memory.
    public static let maximumLineLength = 256 << 20

    public init(path: String, blockSize: Int = 4 << 20) throws(FileError) {
        self.path = path
        if path == "-" {
            fd = 0
        } else {
            fd = open(path, O_RDONLY)
            if fd < 0 { throw FileError(path: path, message: String(cString: strerror(errno))) }
        }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
            totalBytes = Int64(st.st_size)
        } else if fd != 0 && fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw FileError(path: path, message: "is a directory, not an event log")
        } else {
            totalBytes = nil
        }
        capacity = blockSize
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        if fd > 0 { close(fd) }
    }

    /// Calls `body` with each line (without its newline) and its 1-based number; `progress` gets the
    /// bytes consumed so far after each block.
    public mutating func forEachLine<E: Error>(
        progress: ((Int64) -> Void)? = nil,
        _ body: (UnsafeRawBufferPointer, Int) throws(E) -> Void
    ) throws(ReadError<E>) {
        var filled = 0
        var lineNumber = 0
        var consumed: Int64 = 0
        var eof = false
        var searched = 0  // bytes of the partial line at the buffer's start already known to hold no newline
        func emit(_ start: Int, _ length: Int) throws(ReadError<E>) {
            lineNumber += 1
            var from = start, count = length
            if lineNumber == 1 && count >= 3 && buffer.load(fromByteOffset: from, as: UInt8.self) == 0xEF
                && buffer.load(fromByteOffset: from + 1, as: UInt8.self) == 0xBB && buffer.load(fromByteOffset: from + 2, as: UInt8.self) == 0xBF {
                from += 3  // a UTF-8 byte order mark
                count -= 3
            }
            if count > 0 && buffer.load(fromByteOffset: from + count - 1, as: UInt8.self) == 0x0D { count -= 1 }
            do { try body(UnsafeRawBufferPointer(start: buffer + from, count: count), lineNumber) } catch { throw .body(error) }
        }
        while !eof {
            if filled == capacity {
                guard capacity < Self.maximumLineLength else {
                    throw .file(FileError(path: path, message: "line \(lineNumber + 1) is longer than \(Self.maximumLineLength >> 20) MB; is this an event log?"))
                }
                // A line longer than the buffer: grow it.
                let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 16)
                bigger.copyMemory(from: buffer, byteCount: filled)
                buffer.deallocate()
                buffer = bigger
                capacity *= 2
            }
            let n = read(fd, buffer + filled, capacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw .file(FileError(path: path, message: String(cString: strerror(errno))))
            }
            if n == 0 { eof = true }
            filled += n
            var start = 0
            var scanFrom = searched
            while start < filled {
                guard let nl = memchr(buffer + scanFrom, 0x0A, filled - scanFrom) else { break }
                let length = buffer.distance(to: nl) - start
                try emit(start, length)
                start += length + 1
                scanFrom = start
            }
            if eof && start < filled {
                // The last line has no newline.
                try emit(start, filled - start)
                start = filled
            }
            consumed += Int64(start)
            if start > 0 {
                memmove(buffer, buffer + start, filled - start)
                filled -= start
            }
            searched = filled
            progress?(consumed)
        }
    }
}

/// Either the file failed or the line handler threw.
public enum ReadError<Body: Error>: Error {
    case file(FileError)
    case body(Body)
}
