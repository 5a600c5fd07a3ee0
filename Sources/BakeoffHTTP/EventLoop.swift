import CCurl
import CMicroHTTPD
import CMicroHTTPDSupport
import Foundation
import Synchronization
import BakeoffCore

/// One thread waiting on one epoll set for everything it serves: the connections of an HTTP daemon and the
/// upstream connections of the requests that arrive on them.
///
/// Why: a proxied request that is read, sent upstream, answered and handed to the store on one thread never
/// waits for another thread to wake up. With a thread for the server and another for upstream calls, every
/// request paid two wake-ups (and their context switches): most of the gateway's CPU at low rates and the
/// cause of its uneven tail.
///
/// The loop owns at most one libmicrohttpd daemon (in external-epoll mode: its epoll descriptor sits in the
/// loop's set and `MHD_run` is called when it is ready or its timeout is due) and at most one libcurl engine
/// (its sockets sit in the loop's set directly). Work from other threads arrives through `post`.
///
/// `@unchecked Sendable`: `daemon`, `engine` and `runDaemon` are touched only on the loop's thread (set through
/// `perform`); the inbox is a `Mutex`; the descriptors never change after `init`.
package final class EventLoop: @unchecked Sendable {
    package let name: String
    let epoll: Int32
    private let wake: Int32
    /// Work posted from other threads; nil once the thread has ended (later work then runs on the poster's thread).
    private let inbox = Mutex<[@Sendable () -> Void]?>([])
    /// A wake-up is on its way (so posts in a burst write the eventfd once).
    private let wakePending = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let exited = DispatchSemaphore(value: 0)
    private let threadID = Atomic<UInt>(0)

    // The loop thread's own.
    var daemon: OpaquePointer?
    var engine: CurlEngine?

    static let wakeTag = UInt64.max
    static let daemonTag = UInt64.max - 1

    /// Starts the loop's thread.
    package init(name: String) {
        self.name = name
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.wakeTag))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            threadID.store(UInt(pthread_self()), ordering: .releasing)
            // The name shows in top, perf and /proc/PID/task/*/comm (at most 15 bytes).
            Thread.current.name = String(name.prefix(15))
            started.signal()
            run()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
        started.wait()
    }

    deinit {
        close(epoll)
        close(wake)
    }

    /// Whether the caller runs on this loop's thread.
    package var isCurrent: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Runs `work` on the loop's thread, soon (in order with other posts).
    package func post(_ work: @escaping @Sendable () -> Void) {
        let queued = inbox.withLock { inbox -> Bool in
            guard inbox != nil else { return false }
            inbox!.append(work)
            return true
        }
        guard queued else { return work() }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = Glibc.write(wake, &one, 8)
        }
    }

    /// Makes the loop run its daemon again soon: after a connection was resumed from another thread.
    /// libmicrohttpd's own wake-up can be lost when the resume lands while `MHD_run` is between looking for
    /// resumed connections and draining its wake-up channel; a round of ours after the resume always sees it.
    package func nudge() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = Glibc.write(wake, &one, 8)
        }
    }

    /// Runs `work` on the loop's thread and waits for it (inline when called there).
    package func perform<T: Sendable>(_ work: @escaping @Sendable () -> T) -> T {
        if isCurrent { return work() }
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        post {
            let value = work()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// Ends the loop's thread after the work already posted; waits for it (not from the loop's own thread).
    package func shutdown() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        post {}
        if !isCurrent { exited.wait() }
    }

    /// Attaches a libmicrohttpd daemon started in external-epoll mode (on the loop's thread).
    func attach(daemon: OpaquePointer) {
        self.daemon = daemon
        guard let info = MHD_get_daemon_info_epoll_fd(daemon) else { return }
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.daemonTag))
        epoll_ctl(epoll, EPOLL_CTL_ADD, info, &event)
    }

    /// Stops and detaches the daemon (on the loop's thread).
    func stopDaemon(_ d: OpaquePointer) {
        guard daemon == d else { return MHD_stop_daemon(d) }
        if let fd = MHD_get_daemon_info_epoll_fd(d) { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
        daemon = nil
        MHD_stop_daemon(d)
    }

    private func takeInbox() -> [@Sendable () -> Void] {
        wakePending.store(false, ordering: .releasing)
        return inbox.withLock { work in
            defer { work?.removeAll(keepingCapacity: true) }
            return work ?? []
        }
    }

    private func run() {
        // At most 64 events a round: the daemon runs after each round, so a busy loop (thousands of streams)
        // hands chunks to their clients every 64 events rather than after hundreds.
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        var daemonDue = true
        while true {
            var timeoutMs: Int32 = 1000
            if let engine { timeoutMs = min(timeoutMs, engine.timeoutMs()) }
            if let daemon {
                var t: UInt64 = 0
                if MHD_get_timeout(daemon, &t) == .YES { timeoutMs = min(timeoutMs, Int32(min(t, 1000))) }
            }
            if daemonDue { timeoutMs = 0 }
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeoutMs) }
            var posted = false
            daemonDue = false
            if n > 0 {
                for i in 0..<Int(n) {
                    let event = events[i]
                    switch event.data.u64 {
                    case Self.wakeTag:
                        var value: UInt64 = 0
                        _ = Glibc.read(wake, &value, 8)
                        posted = true
                    case Self.daemonTag:
                        daemonDue = true
                    default:
                        engine?.socketReady(Int32(truncatingIfNeeded: event.data.u64), events: event.events)
                    }
                }
            }
            engine?.timersDue()
            if posted {
                for work in takeInbox() { work() }
            }
            if let daemon {
                // Runs the daemon after the upstream's answers resumed their connections, in the same round.
                // Timeouts of its connections are its own business inside MHD_run.
                MHD_run(daemon)
                var t: UInt64 = 1
                daemonDue = MHD_get_timeout(daemon, &t) == .YES && t == 0
            }
            if stopping.load(ordering: .acquiring) && inbox.withLock({ $0?.isEmpty ?? true }) { break }
        }
        // Whatever arrives from now on runs where it is posted; what slipped in just before runs here.
        let late = inbox.withLock { work -> [@Sendable () -> Void] in
            defer { work = nil }
            return work ?? []
        }
        for work in late { work() }
        engine?.shutdownOnLoop()
        exited.signal()
    }
}

/// The epoll descriptor of a daemon in external-epoll mode, or nil.
func MHD_get_daemon_info_epoll_fd(_ daemon: OpaquePointer) -> Int32? {
    let fd = bakeoff_mhd_daemon_epoll_fd(UnsafeMutableRawPointer(daemon))
    return fd >= 0 ? fd : nil
}
