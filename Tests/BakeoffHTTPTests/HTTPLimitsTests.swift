
import Foundation
import Synchronization
import Testing
import BakeoffCore
import BakeoffHTTP
import BakeoffDevTools

struct SocketError: Error { var message: String }

/// A blocking TCP client bound to a chosen loopback source address.
final class TestSocket {
    let fd: Int32

    init(port: UInt16, from source: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw SocketError(message: "cannot connect from \(source): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Whether the server closed the connection, waiting up to `milliseconds` (data that arrives is read).
    func closedByServer(within milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN)
    }

    /// Sends `head` then one byte of `trickle` every 100 ms until the server closes the connection; false if
    /// it has not after `seconds`.
    func trickleUntilClosed(head: String, trickle: String = "X-Slow: abcdefghijklmnopqrstuvwxyz", seconds: Double = 20) -> Bool {
        send(head)
        let bytes = Array(trickle.utf8)
        let end = Date().addingTimeInterval(seconds)
        var i = 0
        while Date() < end {
            if closedByServer(within: 100) { return true }
            _ = send([bytes[i % bytes.count]])
            i += 1
        }
        return false
    }

    /// Reads a whole response whose body has a Content-Length: status line and headers, and the body.
    func readResponse(seconds: Int = 20) -> (head: String, body: String)? {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data += buffer[0..<n]
            let text = String(decoding: data, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n") else { continue }
            let head = String(text[..<split.lowerBound])
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let body = String(text[split.upperBound...])
            if body.utf8.count >= length { return (head, body) }
        }
        return nil
    }
}

@Suite("HTTP limits: deadlines, connection limits, memory budget, open files")
struct HTTPLimitsTests {
    /// A server that answers /hold only when `release` is called, and everything else at once.
    final class Holder: Sendable {
        let held = Mutex<[HTTPExchange]>([])
        func release() {
            for exchange in held.withLock({ h in defer { h.removeAll() }; return h }) {
                exchange.respond(status: 200, headers: [], body: Array("released".utf8))
            }
        }
    }

    static func server(_ configure: (inout HTTPServer.Options) -> Void, holder: Holder = Holder()) throws -> HTTPServer {
        var options = HTTPServer.Options()
        options.refusalResponse = { refusal in
            var plain = HTTPRefusalResponse.plainText(refusal)
            plain.body = Array("refused: \(refusal.status)".utf8)
            return plain
        }
        configure(&options)
        let server = HTTPServer(options: options) { exchange in
            if exchange.request.path == "/hold" {
                holder.held.withLock { $0.append(exchange) }
            } else {
                exchange.respond(status: 200, headers: [], body: Array("ok \(exchange.request.body.count)".utf8))
            }
        }
        try server.start()
        return server
    }

    static func get(_ port: UInt16, _ path: String = "/", from source: String = "127.0.0.1") throws -> (head: String, body: String)? {
        let s = try TestSocket(port: port, from: source)
        s.send("GET \(path) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return s.readResponse()
    }

    static func post(_ socket: TestSocket, _ path: String, bytes: Int) {
        socket.send("POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Length: \(bytes)\r\n\r\n")
        socket.send([UInt8](repeating: 0x61, count: bytes))
    }

    @Test func headersThatTrickleAreCutOffAtTheHeaderDeadline() throws {
        let server = try Self.server { $0.headerTimeoutMs = 300 }
        defer { server.stop(graceSeconds: 0) }
        let slow = try TestSocket(port: server.port)
        #expect(slow.trickleUntilClosed(head: "GET / HTTP/1.1\r\nHost: t\r\n"))
        #expect(server.headerTimeouts == 1)
        #expect(server.bodyTimeouts == 0)
        // Others are still served.
        #expect(try Self.get(server.port)?.body == "ok 0")
    }

    @Test func aBodyThatTricklesIsCutOffAtTheBodyDeadline() throws {
        let server = try Self.server { $0.bodyTimeoutMs = 300 }
        defer { server.stop(graceSeconds: 0) }
        let slow = try TestSocket(port: server.port)
        #expect(slow.trickleUntilClosed(head: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc"))
        #expect(server.bodyTimeouts == 1)
        #expect(server.headerTimeouts == 0)
        // A body sent at once is unaffected, and the connection can go on to the next request.
        let fast = try TestSocket(port: server.port)
        Self.post(fast, "/", bytes: 5000)
        #expect(fast.readResponse()?.body == "ok 5000")
        Self.post(fast, "/", bytes: 10)
        #expect(fast.readResponse()?.body == "ok 10")
        #expect(server.openConnections >= 1)
    }

    @Test func oneAddressCannotTakeMoreThanItsShareOfConnections() throws {
        let server = try Self.server { $0.maxConnectionsPerAddress = 3 }
        defer { server.stop(graceSeconds: 0) }
        let kept = try (0..<3).map { _ in try TestSocket(port: server.port, from: "127.0.0.2") }
        for s in kept { #expect(!s.closedByServer(within: 200)) }
        let extra = try TestSocket(port: server.port, from: "127.0.0.2")
        #expect(extra.closedByServer(within: 5000))
        // Another address is served, and so is 127.0.0.2 once one of its connections has gone.
        #expect(try Self.get(server.port, from: "127.0.0.3")?.body == "ok 0")
        #expect(try Self.get(server.port, from: "127.0.0.1")?.body == "ok 0")
        #expect(server.refusedConnections >= 1)
        close(kept[0].fd)
        var served = false
        for _ in 0..<50 where !served {
            served = (try? Self.get(server.port, from: "127.0.0.2"))?.body == "ok 0"
            if !served { usleep(100_000) }
        }
        #expect(served)
    }

    @Test func requestsBeyondTheMemoryBudgetGet503WithRetryAfterUntilBytesAreFreed() throws {
        let holder = Holder()
        let server = try Self.server({ $0.memoryBudgetBytes = 1 << 20 }, holder: holder)
        defer { server.stop(graceSeconds: 0) }
        let first = try TestSocket(port: server.port)
        Self.post(first, "/hold", bytes: 700_000)
        // Charged when its headers came; held once its whole body is in.
        var waited = 0
        while holder.held.withLock({ $0.count }) < 1 && waited < 400 { usleep(50_000); waited += 1 }
        #expect(server.budget.used == 700_000)

        let second = try TestSocket(port: server.port)
        Self.post(second, "/hold", bytes: 700_000)
        let refused = second.readResponse()
        #expect(refused?.head.hasPrefix("HTTP/1.1 503") == true)
        #expect(refused?.head.lowercased().contains("retry-after: 1") == true)
        // In the application's shape (this server's refusals say "refused: <status>").
        #expect(refused?.body.hasPrefix("refused: 503") == true)
        // Requests without a body are not held back.
        #expect(try Self.get(server.port)?.body == "ok 0")

        holder.release()
        #expect(first.readResponse()?.body == "released")
        waited = 0
        while server.budget.used > 0 && waited < 100 { usleep(50_000); waited += 1 }
        #expect(server.budget.used == 0)
        let third = try TestSocket(port: server.port)
        Self.post(third, "/", bytes: 700_000)
        #expect(third.readResponse()?.body == "ok 700000")
    }

    @Test func aChunkedBodyIsChargedAsItArrives() throws {
        let server = try Self.server { $0.memoryBudgetBytes = 1 << 20 }
        defer { server.stop(graceSeconds: 0) }
        let s = try TestSocket(port: server.port)
        s.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = [UInt8](repeating: 0x62, count: 300_000)
        for _ in 0..<5 { s.send(Array("493e0\r\n".utf8) + chunk + Array("\r\n".utf8)) }
        s.send("0\r\n\r\n")
        // The rest of the body is read and dropped, then the request is answered.
        let response = s.readResponse()
        #expect(response?.head.hasPrefix("HTTP/1.1 503") == true)
        #expect(response?.head.lowercased().contains("retry-after: 1") == true)
        var waited = 0
        while server.budget.used > 0 && waited < 100 { usleep(50_000); waited += 1 }
        #expect(server.budget.used == 0)
    }

    @Test func theBudgetRefusesWhatDoesNotFit() {
        let budget = ByteBudget(limit: 100)
        #expect(budget.tryReserve(60))
        #expect(!budget.tryReserve(41))
        #expect(budget.tryReserve(40))
        #expect(budget.used == 100)
        budget.release(100)
        #expect(budget.used == 0)
        #expect(budget.refused == 1)
    }

    @Test func theOpenFilesLimitIsRaisedAndConnectionsFitUnderIt() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let hard = limit.rlim_max
        if hard > 4096 {
            limit.rlim_cur = 4096
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            #expect(OpenFiles.current().soft == 4096)
        }
        let server = try Self.server { $0.maxConnections = 1000 }
        defer { server.stop(graceSeconds: 0) }
        #expect(OpenFiles.current().soft == OpenFiles.current().hard)
        #expect(server.maxConnections == 1000)
        #expect(server.maxConnectionsPerAddress == 0)  // a loopback listener: no per-address limit by default
        #expect(HTTPServer.isLoopback("127.0.0.1") && HTTPServer.isLoopback("localhost") && !HTTPServer.isLoopback("0.0.0.0") && !HTTPServer.isLoopback("10.0.0.1"))
        #expect(server.notes.isEmpty)

        // The default is lowered to fit, with a note; a number the operator set is refused instead.
        let files = (soft: 1024, hard: 1024)
        guard case .success(let lowered) = OpenFiles.fit(requested: 16_384, lowerIfNeeded: true, openFiles: files) else {
            Issue.record("the default should be lowered")
            return
        }
        #expect(lowered.connections == 1024 - OpenFiles.reserve || lowered.connections == 16)
        #expect(lowered.note?.contains("1024") == true)
        guard case .failure(let error) = OpenFiles.fit(requested: 16_384, lowerIfNeeded: false, openFiles: files) else {
            Issue.record("a max_connections that does not fit should be refused")
            return
        }
        #expect(error.message.contains("max_connections"))
        guard case .success(let fits) = OpenFiles.fit(requested: 100, lowerIfNeeded: false, openFiles: (soft: 20_000, hard: 20_000)) else {
            Issue.record("100 connections fit")
            return
        }
        #expect(fits.connections == 100 && fits.note == nil)
    }
}
