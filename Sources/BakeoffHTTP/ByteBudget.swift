import Synchronization
import BakeoffCore

/// A process-wide allowance of buffered bytes (request bodies, stream buffers, upstream responses).
///
/// Each of those is capped per request, but a thousand requests at their caps would still take gigabytes;
/// the budget caps the sum. Charges are made where bytes are buffered and given back when they are freed;
/// a request that would need room the budget has not got is refused (503) instead of buffered.
public final class ByteBudget: Sendable {
    /// The most bytes that may be charged at once (`reserve` may overshoot it by a bounded amount).
    public let limit: Int
    private let charged = Atomic<Int>(0)
    private let refusals = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Bytes charged now.
    public var used: Int { charged.load(ordering: .relaxed) }

    /// How many times `tryReserve` found no room.
    public var refused: Int { refusals.load(ordering: .relaxed) }

    /// Charges `bytes` if they fit under the limit; false (and nothing charged) otherwise.
    public func tryReserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        var current = charged.load(ordering: .relaxed)
        while true {
            guard current + bytes <= limit else {
                refusals.add(1, ordering: .relaxed)
                return false
            }
            let (exchanged, original) = charged.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Whether `bytes` would fit now (nothing is charged).
    public func hasRoom(for bytes: Int) -> Bool {
        let fits = charged.load(ordering: .relaxed) + bytes <= limit
        if !fits { refusals.add(1, ordering: .relaxed) }
        return fits
    }

    /// Charges `bytes` even past the limit: for small amounts a request already admitted cannot do without.
    public func reserve(_ bytes: Int) {
        guard bytes > 0 else { return }
        charged.add(bytes, ordering: .relaxed)
    }

    /// Gives back bytes charged before.
    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        charged.subtract(bytes, ordering: .relaxed)
    }
}
