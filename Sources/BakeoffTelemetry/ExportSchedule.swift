/// How an export call ended, as the exporter classifies the collector's answer.
public enum ExportOutcome: Sendable, Equatable {
    /// Taken (2xx); the collector may still say it rejected some spans (`partial_success`).
    case accepted(rejected: Int, message: String)
    /// Worth trying again later: no answer, 429, 502, 503, 504 (OTLP's retryable answers), with the
    /// collector's `Retry-After` in milliseconds when it gave one.
    case retryable(reason: String, retryAfterMs: Int?)
    /// Refused for good (400, 401, 403, 404, 413, 415...): trying again would fail the same way.
    case refused(reason: String)

    /// Classifies an HTTP answer (`status` 0: none came, `failure` says why).
    public static func classify(status: Int, failure: String?, retryAfter: String?, body: String, rejected: (Int64, String)?) -> ExportOutcome {
        if status == 0 { return .retryable(reason: failure ?? "no answer", retryAfterMs: nil) }
        if (200..<300).contains(status) {
            return .accepted(rejected: Int(clamping: rejected?.0 ?? 0), message: rejected?.1 ?? "")
        }
        let reason = "HTTP \(status)" + (body.isEmpty ? "" : ": " + body)
        if [429, 502, 503, 504].contains(status) {
            return .retryable(reason: reason, retryAfterMs: retryAfter.flatMap { Int($0.trimmedSpaces) }.map { max(0, $0) * 1000 })
        }
        return .refused(reason: reason)
    }
}

/// When to send which spans, and what to do with an answer: the exporter's decisions, as a state machine
/// without I/O or clocks (`now` is monotonic nanoseconds, given by the caller).
///
/// Spans wait in a bounded queue; a batch goes when `batchSize` spans wait or the oldest has waited the
/// export interval. A batch the collector could not take for now is sent again after 1, 2, 4, 8 s (or what
/// its `Retry-After` says, up to 30 s), then dropped; meanwhile new spans queue up to `queueSize`, and
/// beyond it are dropped: the requests never wait for the collector.
public struct ExportSchedule: Sendable {
    public let batchSize: Int
    public let queueSize: Int
    public let intervalNs: UInt64
    /// Sends of one batch at most (the first and its retries).
    public static let attempts = 5
    static let maxRetryDelayNs: UInt64 = 30_000_000_000

    private var queue: [Span] = []
    private var head = 0
    /// When the oldest queued span was added.
    private var oldestAt: UInt64?
    /// The batch being sent or waiting to be sent again.
    private var batch: [Span]?
    private var attempt = 0
    private var retryAt: UInt64?

    public init(batchSize: Int, queueSize: Int, intervalMs: Int) {
        self.batchSize = max(1, batchSize)
        self.queueSize = max(1, queueSize)
        intervalNs = UInt64(max(1, intervalMs)) * 1_000_000
    }

    /// Spans waiting, the batch in hand included.
    public var depth: Int { queue.count - head + (batch?.count ?? 0) }

    /// Adds a finished span; false when the queue is full (the span is dropped). `wakes`: the exporter, which
    /// may be asleep with nothing due, has something new to plan for (the first span waiting: its interval
    /// starts) or to do at once (a full batch).
    public mutating func add(_ span: Span, now: UInt64) -> (accepted: Bool, wakes: Bool) {
        guard depth < queueSize else { return (false, false) }
        let waiting = queue.count - head
        if waiting == 0 { oldestAt = now }
        queue.append(span)
        return (true, waiting == 0 || waiting + 1 == batchSize)
    }

    /// What to do next.
    public enum Step: Sendable, Equatable {
        /// Send these spans (again, when `retry` > 0).
        case send([Span], retry: Int)
        /// Nothing is due before this time (nil: nothing waits at all).
        case wait(until: UInt64?)
    }

    /// The next step at `now`; `draining` (the gateway stops): queued spans go without waiting for the interval.
    public mutating func next(now: UInt64, draining: Bool) -> Step {
        if let batch {
            if let retryAt, now < retryAt, !draining { return .wait(until: retryAt) }
            return .send(batch, retry: attempt)
        }
        let waiting = queue.count - head
        guard waiting > 0, let oldestAt else { return .wait(until: nil) }
        let due = oldestAt &+ intervalNs
        guard waiting >= batchSize || now >= due || draining else { return .wait(until: due) }
        let n = min(batchSize, waiting)
        let taken = Array(queue[head..<head + n])
        head += n
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
            self.oldestAt = nil
        } else {
            if head >= 4096 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            // The rest waited at least as long as the batch just taken: it is due now too.
            self.oldestAt = min(now, due)
        }
        batch = taken
        attempt = 0
        retryAt = nil
        return .send(taken, retry: 0)
    }

    /// What became of the batch just sent.
    public struct Settled: Sendable, Equatable {
        public var exported = 0
        /// Spans given up on (refused, rejected, or out of attempts).
        public var dropped = 0
        /// The batch will be sent again, at this time.
        public var retryAt: UInt64?

        public init(exported: Int = 0, dropped: Int = 0, retryAt: UInt64? = nil) {
            self.exported = exported
            self.dropped = dropped
            self.retryAt = retryAt
        }
    }

    /// The answer to the batch sent last. `draining`: no retry waits (the gateway is stopping).
    public mutating func settle(_ outcome: ExportOutcome, now: UInt64, draining: Bool = false) -> Settled {
        guard let sent = batch else { return Settled() }
        var result = Settled()
        switch outcome {
        case .accepted(let rejected, _):
            let r = min(max(rejected, 0), sent.count)
            result.exported = sent.count - r
            result.dropped = r
            batch = nil
        case .refused:
            result.dropped = sent.count
            batch = nil
        case .retryable(_, let retryAfterMs):
            attempt += 1
            if attempt >= Self.attempts {
                result.dropped = sent.count
                batch = nil
            } else {
                let backoff = UInt64(1_000_000_000) << UInt64(attempt - 1)
                let asked = retryAfterMs.map { UInt64($0) * 1_000_000 } ?? 0
                let delay = min(max(backoff, asked), Self.maxRetryDelayNs)
                retryAt = draining ? now : now &+ delay
                result.retryAt = retryAt
            }
        }
        return result
    }
}
