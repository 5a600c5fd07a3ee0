import Foundation
import Synchronization
import BakeoffCore

/// The server's open connections, each with the time by which it must reach its next step; a sweep closes
/// those past it.
///
/// libmicrohttpd only has an idle timeout, which restarts at every byte: a client that sends one header byte
/// every few seconds keeps its connection forever. Here a connection must send its whole headers within the
/// header deadline of opening (or of its keep-alive wait ending), and its whole body within the body deadline
/// of its headers; while its request is handled and answered there is no deadline (upstream timeouts and the
/// idle timeout apply). A connection past its deadline gets `shutdown(2)`, which libmicrohttpd sees as the
/// client leaving: it closes it and frees everything, on its own thread.
final class ConnectionDeadlines: Sendable {
    enum Phase: UInt8 {
        /// Waiting for a request's headers: opened, or kept alive after an answer.
        case headers
        /// Headers in, the body arriving.
        case body
        /// The request is complete: handled and answered, no deadline.
        case handling
    }

    /// One connection, kept in libmicrohttpd's socket context while it is open.
    final class Entry: Sendable {
        let fd: Int32
        /// Monotonic nanoseconds; `UInt64.max` for none.
        let deadline: Atomic<UInt64>
        let phase: Atomic<UInt8>
        /// Whether a request was answered on it before (its header deadline then includes the idle wait).
        let keptAlive = Atomic<Bool>(false)
        /// False once libmicrohttpd reported it closed: its descriptor may then be reused.
        let open = Mutex(true)
        /// Its place under the connection limits, given back when it closes.
        let admission: ConnectionLimits.Admission?

        init(fd: Int32, deadline: UInt64, admission: ConnectionLimits.Admission? = nil) {
            self.fd = fd
            self.admission = admission
            self.deadline = Atomic(deadline)
            self.phase = Atomic(Phase.headers.rawValue)
        }
    }

    let headerTimeoutNs: UInt64
    let bodyTimeoutNs: UInt64
    let idleTimeoutNs: UInt64
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let openCount = Atomic<Int>(0)
    private let acceptedCount = Atomic<Int>(0)
    private let headerCloses = Atomic<Int>(0)
    private let bodyCloses = Atomic<Int>(0)

    init(headerTimeoutMs: Int, bodyTimeoutMs: Int, idleTimeoutMs: Int) {
        headerTimeoutNs = UInt64(max(1, headerTimeoutMs)) * 1_000_000
        bodyTimeoutNs = UInt64(max(1, bodyTimeoutMs)) * 1_000_000
        idleTimeoutNs = UInt64(max(1, idleTimeoutMs)) * 1_000_000
    }

    /// Connections open now.
    var open: Int { openCount.load(ordering: .relaxed) }
    /// Connections opened so far.
    var accepted: Int { acceptedCount.load(ordering: .relaxed) }
    /// Connections closed for not sending their headers in time.
    var closedInHeaders: Int { headerCloses.load(ordering: .relaxed) }
    /// Connections closed for not sending their body in time.
    var closedInBody: Int { bodyCloses.load(ordering: .relaxed) }

    /// A new connection: its headers are due within the header deadline.
    func opened(fd: Int32, admission: ConnectionLimits.Admission? = nil) -> Entry {
        let entry = Entry(fd: fd, deadline: MonotonicClock.now() + headerTimeoutNs, admission: admission)
        entries.withLock { $0[ObjectIdentifier(entry)] = entry }
        openCount.add(1, ordering: .relaxed)
        acceptedCount.add(1, ordering: .relaxed)
        return entry
    }

    /// The connection is gone. libmicrohttpd closes its socket only after this returns, and `sweep` shuts a
    /// socket down under the entry's lock only while it is open, so it never touches a descriptor reused.
    func closed(_ entry: Entry) {
        entry.open.withLock { $0 = false }
        entries.withLock { $0[ObjectIdentifier(entry)] = nil }
        openCount.subtract(1, ordering: .relaxed)
    }

    /// Headers are in: the body is due within the body deadline.
    func headersReceived(_ entry: Entry) {
        entry.phase.store(Phase.body.rawValue, ordering: .relaxed)
        entry.deadline.store(MonotonicClock.now() + bodyTimeoutNs, ordering: .relaxed)
    }

    /// The request is complete: no deadline while it is handled and answered.
    func requestReceived(_ entry: Entry) {
        entry.phase.store(Phase.handling.rawValue, ordering: .relaxed)
        entry.deadline.store(.max, ordering: .relaxed)
    }

    /// The answer is out and the connection kept alive: the next request's headers are due within the idle
    /// timeout plus the header deadline (libmicrohttpd cannot tell when the first byte of the next one came).
    func answered(_ entry: Entry) {
        entry.keptAlive.store(true, ordering: .relaxed)
        entry.phase.store(Phase.headers.rawValue, ordering: .relaxed)
        entry.deadline.store(MonotonicClock.now() + idleTimeoutNs + headerTimeoutNs, ordering: .relaxed)
    }

    /// libmicrohttpd 0.9.75 in epoll mode can miss a client that closes after part of a request (the data
    /// and the end arrive together, and no new edge follows): such a connection would wait for its deadline.
    /// This looks at the sockets of connections receiving a request and shuts down those whose client has
    /// hung up, which libmicrohttpd does see.
    private func shutDownDeparted(_ receiving: [Entry]) {
        guard !receiving.isEmpty else { return }
        var fds = receiving.map { pollfd(fd: $0.fd, events: Self.readHangUp, revents: 0) }
        guard poll(&fds, nfds_t(fds.count), 0) > 0 else { return }
        for (i, p) in fds.enumerated() where p.revents & (Self.readHangUp | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
            let entry = receiving[i]
            entry.open.withLock { open in
                if open { shutdown(entry.fd, Int32(SHUT_RDWR)) }
            }
        }
    }

    /// POLLRDHUP (Linux): the peer closed its end; Glibc exports it only under _GNU_SOURCE.
    static let readHangUp: Int16 = 0x2000

    /// Shuts down connections past their deadline, at most `limit` (the rest wait for the next sweep, so
    /// that a wave of expiries does not stall the server's threads all at once), and those whose client hung
    /// up while sending a body (or, with `watchHeaders`, headers); returns how many were past their deadline.
    @discardableResult
    func sweep(now: UInt64 = MonotonicClock.now(), limit: Int = 512, watchHeaders: Bool = true) -> Int {
        var closedHeaders = 0, closedBody = 0
        // Collected under the table's lock (which accepts and closes take too), shut down outside it.
        let (expired, receiving) = entries.withLock { entries -> ([Entry], [Entry]) in
            var expired: [Entry] = [], receiving: [Entry] = []
            for entry in entries.values {
                if entry.deadline.load(ordering: .relaxed) <= now {
                    if expired.count < limit { expired.append(entry) }
                } else {
                    let phase = entry.phase.load(ordering: .relaxed)
                    if phase == Phase.body.rawValue || (watchHeaders && phase == Phase.headers.rawValue) { receiving.append(entry) }
                }
            }
            return (expired, receiving)
        }
        shutDownDeparted(receiving)
        for entry in expired {
            let inBody = entry.phase.load(ordering: .relaxed) == Phase.body.rawValue
            let shut = entry.open.withLock { open -> Bool in
                guard open, entry.deadline.load(ordering: .relaxed) <= now else { return false }
                entry.deadline.store(.max, ordering: .relaxed)
                // Counted before the client can see the close.
                if inBody { bodyCloses.add(1, ordering: .relaxed) } else { headerCloses.add(1, ordering: .relaxed) }
                shutdown(entry.fd, Int32(SHUT_RDWR))
                return true
            }
            if shut { if inBody { closedBody += 1 } else { closedHeaders += 1 } }
        }
        return closedHeaders + closedBody
    }
}

/// Connections open at once, in all and per client address, across all of a server's daemons (each event loop
/// runs its own libmicrohttpd daemon, whose own limits would count only its share).
final class ConnectionLimits: Sendable {
    /// A connection's place under the limits.
    struct Admission: Sendable {
        /// The client's address (IPv4 as a number, IPv6 hashed); nil when it has none.
        var address: UInt64?
    }
    let maxConnections: Int
    /// 0: no limit per address.
    let maxPerAddress: Int
    private struct State {
        var total = 0
        var byAddress: [UInt64: Int] = [:]
    }
    private let state = Mutex(State())

    init(maxConnections: Int, maxPerAddress: Int) {
        self.maxConnections = maxConnections
        self.maxPerAddress = maxPerAddress
    }

    /// Takes a place for a connection from `address`; nil when a limit is reached.
    func admit(_ address: UnsafePointer<sockaddr>?) -> Admission? {
        let key = maxPerAddress > 0 ? address.flatMap(Self.key) : nil
        return state.withLock { s -> Admission? in
            guard s.total < maxConnections else { return nil }
            if let key {
                let n = s.byAddress[key, default: 0]
                guard n < maxPerAddress else { return nil }
                s.byAddress[key] = n + 1
            }
            s.total += 1
            return Admission(address: key)
        }
    }

    /// Gives a place back.
    func release(_ admission: Admission) {
        state.withLock { s in
            s.total -= 1
            if let key = admission.address {
                let n = s.byAddress[key, default: 1] - 1
                s.byAddress[key] = n > 0 ? n : nil
            }
        }
    }

    var open: Int { state.withLock { $0.total } }

    private static func key(_ address: UnsafePointer<sockaddr>) -> UInt64? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt64($0.pointee.sin_addr.s_addr) }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                var h: UInt64 = 0xcbf29ce484222325
                withUnsafeBytes(of: a.pointee.sin6_addr) { for b in $0 { h = (h ^ UInt64(b)) &* 0x100000001b3 } }
                return h | 1 << 63
            }
        default:
            return nil
        }
    }
}
