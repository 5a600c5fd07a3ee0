#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The monotonic clock, for durations (nanoseconds); never goes back when the wall clock is set.
package enum MonotonicClock {
    /// Nanoseconds on the monotonic clock.
    package static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    package static func milliseconds(since start: UInt64) -> Double { Double(now() &- start) / 1e6 }
}

/// The wall clock, for timestamps written to events.
package enum WallClock {
    package static func microseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
