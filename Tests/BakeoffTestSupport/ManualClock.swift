import BakeoffGateway
import Synchronization

/// A clock that moves only when told: `advance` (or a fake upstream's script) moves both its monotonic
/// and its wall-clock readings.
public final class ManualClock: GatewayClock {
    private let now: Mutex<(monotonic: UInt64, wall: Int64)>

    /// Starts at `monotonic` nanoseconds and `wall` microseconds since 1970 (by default `Make.t0`).
    public init(monotonic: UInt64 = 1_000_000_000, wall: Int64 = Make.t0) {
        now = Mutex((monotonic, wall))
    }

    public func monotonicNanoseconds() -> UInt64 { now.withLock { $0.monotonic } }
    public func wallMicroseconds() -> Int64 { now.withLock { $0.wall } }

    public func advance(nanoseconds: UInt64) {
        now.withLock { n in
            n.monotonic += nanoseconds
            n.wall += Int64(nanoseconds / 1000)
        }
    }

    public func advance(seconds: Double) { advance(nanoseconds: UInt64(seconds * 1e9)) }
}
