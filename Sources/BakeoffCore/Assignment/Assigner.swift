import CMD5x4

/// Deterministic assignment of users to arms, identical to the reference Python `ABRouter`.
///
/// The rule: `md5(UTF-8 of "{experiment}:{userID}")` read as a big-endian 128-bit integer, `% 10000`,
/// then `Double(bucket) / 10000.0` picks the arm through `Allocation.armIndex(forNormalized:)`. User IDs
/// are hashed byte for byte as given (no Unicode normalization), like Python's `str.encode()`; note that
/// Swift's `==` treats canonically equivalent IDs (NFC "é" vs NFD "e\u{301}") as equal although they can
/// land in different buckets.
///
/// Each call hashes one ID (about 8 million per second on one core of the development machine);
/// `Assigner.Batch`, `armIndices(for:)` and `buckets(for:)` hash four at a time, about twice as fast.
public struct Assigner: Sendable {
    /// Number of buckets; a user's normalized position is `bucket / bucketCount`.
    public static let bucketCount = 10_000

    public let experiment: String
    public let allocation: Allocation

    let hasher: AssignmentHasher
    /// Arm names, indexed like `allocation.arms`.
    private let names: [String]

    public init(experiment: String, allocation: Allocation) {
        self.experiment = experiment
        self.allocation = allocation
        self.hasher = AssignmentHasher(experiment: experiment)
        self.names = allocation.names
    }

    /// The bucket (0..<10000) of `userID` in `experiment`.
    public static func bucket(experiment: String, userID: String) -> Int {
        AssignmentHasher(experiment: experiment).bucket(userID)
    }

    /// The bucket (0..<10000) of `userID` in this experiment.
    public func bucket(for userID: String) -> Int {
        hasher.bucket(userID)
    }

    /// The bucket (0..<10000) of the user whose ID is the UTF-8 bytes `userID` (for callers that read raw lines).
    public func bucket(utf8 userID: UnsafeRawBufferPointer) -> Int {
        hasher.bucket(utf8: userID)
    }

    /// The arm index for a bucket: `allocation.armIndex(forNormalized: Double(bucket) / 10000.0)`.
    @inline(__always)
    public func armIndex(forBucket bucket: Int) -> Int {
        allocation.armIndex(forNormalized: Double(bucket) / 10000.0)
    }

    /// The index into `allocation.arms` of the arm `userID` is assigned to.
    public func armIndex(for userID: String) -> Int {
        armIndex(forBucket: hasher.bucket(userID))
    }

    /// The arm index for the user whose ID is the UTF-8 bytes `userID`.
    public func armIndex(utf8 userID: UnsafeRawBufferPointer) -> Int {
        armIndex(forBucket: hasher.bucket(utf8: userID))
    }

    /// The name of the arm `userID` is assigned to.
    public func variant(for userID: String) -> String {
        names[armIndex(for: userID)]
    }

    /// Arm indices for many IDs, in order; four IDs are hashed at a time.
    public func armIndices<IDs: Sequence>(for userIDs: IDs) -> [Int] where IDs.Element == String {
        var result: [Int] = []
        result.reserveCapacity(userIDs.underestimatedCount)
        var batch = Batch(self)
        for var userID in userIDs {
            userID.withUTF8 { id in
                batch.add(utf8: UnsafeRawBufferPointer(id)) { _, _, arm in result.append(arm) }
            }
        }
        batch.flush { _, _, arm in result.append(arm) }
        return result
    }

    /// Buckets for many IDs, in order; four IDs are hashed at a time.
    public func buckets<IDs: Sequence>(for userIDs: IDs) -> [Int] where IDs.Element == String {
        var result: [Int] = []
        result.reserveCapacity(userIDs.underestimatedCount)
        var batch = Batch(self)
        for var userID in userIDs {
            userID.withUTF8 { id in
                batch.add(utf8: UnsafeRawBufferPointer(id)) { _, bucket, _ in result.append(bucket) }
            }
        }
        batch.flush { _, bucket, _ in result.append(bucket) }
        return result
    }
}

extension Assigner {
    /// Assigns a stream of user IDs four at a time, handing results back in input order.
    ///
    /// Why: one MD5 is a chain of 64 dependent steps that leaves most of a core idle; hashing four IDs
    /// side by side gets nearly twice as many done per second. IDs are copied in, so `add` can be fed
    /// lines whose memory is only valid during a callback (as `LineReader.forEachLine` gives them).
    ///
    ///     var batch = Assigner.Batch(assigner)
    ///     for line in lines { batch.add(utf8: line) { id, bucket, arm in write(id, arm) } }
    ///     batch.flush { id, bucket, arm in write(id, arm) }
    ///
    /// `emit` receives each ID's bytes (valid only during the call), its bucket and its arm index. If
    /// `emit` throws, the IDs still waiting in that group are dropped.
    public struct Batch: ~Copyable {
        public let assigner: Assigner
        /// The results of the last completed group: ID bytes, bucket, arm index.
        ///
        /// `add` and `flush` are inlinable so the caller's `emit` closure is inlined at its call site;
        /// everything else stays behind the non-inlinable `enqueue` and `finishPartial`.
        @usableFromInline let results: UnsafeMutablePointer<(UnsafeRawBufferPointer, Int, Int)>
        private let hasher: AssignmentHasher
        /// Four 128-byte padded message tails, one per lane; a fast-path ID is copied straight into its lane.
        private let lanes: UnsafeMutableRawPointer
        /// Copies of pending IDs too long for the fast path, back to back.
        private var arena: UnsafeMutableRawPointer
        private var arenaCapacity: Int
        private var arenaUsed = 0
        /// Per lane: its ID's byte count, and its block count (1 or 2), or 0 with the ID in `arena`.
        private var counts: (Int, Int, Int, Int) = (0, 0, 0, 0)
        private var blocks: (Int, Int, Int, Int) = (0, 0, 0, 0)
        private var pending = 0

        public init(_ assigner: Assigner) {
            self.assigner = assigner
            hasher = assigner.hasher
            lanes = .allocate(byteCount: 4 * md5LaneStride, alignment: 64)
            lanes.initializeMemory(as: UInt8.self, repeating: 0, count: 4 * md5LaneStride)
            arenaCapacity = 1024
            arena = .allocate(byteCount: arenaCapacity, alignment: 16)
            results = .allocate(capacity: 4)
            results.initialize(repeating: (UnsafeRawBufferPointer(start: nil, count: 0), 0, 0), count: 4)
        }

        deinit {
            lanes.deallocate()
            arena.deallocate()
            results.deallocate()
        }

        /// Queues `userID`; every fourth call hashes the group and emits its four results in order.
        @inlinable
        public mutating func add<E: Error>(
            utf8 userID: UnsafeRawBufferPointer,
            _ emit: (_ userID: UnsafeRawBufferPointer, _ bucket: Int, _ armIndex: Int) throws(E) -> Void
        ) throws(E) {
            if enqueue(userID) {
                for i in 0..<4 {
                    let (id, bucket, arm) = results[i]
                    try emit(id, bucket, arm)
                }
            }
        }

        /// Emits the results for IDs still waiting (fewer than four); call once after the last `add`.
        @inlinable
        public mutating func flush<E: Error>(
            _ emit: (_ userID: UnsafeRawBufferPointer, _ bucket: Int, _ armIndex: Int) throws(E) -> Void
        ) throws(E) {
            let count = finishPartial()
            for i in 0..<count {
                let (id, bucket, arm) = results[i]
                try emit(id, bucket, arm)
            }
        }

        /// Copies `userID` into the group; when it completes the group, hashes all four into `results`
        /// and returns true.
        @usableFromInline
        mutating func enqueue(_ userID: UnsafeRawBufferPointer) -> Bool {
            let lane = pending
            let k = hasher.tailBlocks(userID.count)
            if k > 0 {
                hasher.fillTail(lanes + md5LaneStride * lane, userID, blocks: k)
            } else {
                if arenaUsed + userID.count > arenaCapacity { growArena(to: arenaUsed + userID.count) }
                assignmentCopy(arena + arenaUsed, userID)
                arenaUsed += userID.count
            }
            switch lane {
            case 0: counts.0 = userID.count; blocks.0 = k
            case 1: counts.1 = userID.count; blocks.1 = k
            case 2: counts.2 = userID.count; blocks.2 = k
            default: counts.3 = userID.count; blocks.3 = k
            }
            pending += 1
            guard pending == 4 else { return false }
            pending = 0
            arenaUsed = 0
            if blocks.0 > 0 && blocks.1 > 0 && blocks.2 > 0 && blocks.3 > 0 {
                let buckets = hasher.buckets4(lanes: lanes, blocks: blocks)
                let offset = hasher.leftover
                setResult(0, UnsafeRawBufferPointer(start: lanes + offset, count: counts.0), buckets.0)
                setResult(1, UnsafeRawBufferPointer(start: lanes + md5LaneStride + offset, count: counts.1), buckets.1)
                setResult(2, UnsafeRawBufferPointer(start: lanes + 2 * md5LaneStride + offset, count: counts.2), buckets.2)
                setResult(3, UnsafeRawBufferPointer(start: lanes + 3 * md5LaneStride + offset, count: counts.3), buckets.3)
            } else {
                hashEachPending(4)
            }
            return true
        }

        /// Hashes the IDs of an incomplete group into `results` and returns how many there were.
        @usableFromInline
        mutating func finishPartial() -> Int {
            let count = pending
            pending = 0
            arenaUsed = 0
            hashEachPending(count)
            return count
        }

        /// Hashes the first `count` pending lanes one at a time into `results`.
        private func hashEachPending(_ count: Int) {
            var arenaOffset = 0
            for lane in 0..<count {
                let length: Int, k: Int
                switch lane {
                case 0: (length, k) = (counts.0, blocks.0)
                case 1: (length, k) = (counts.1, blocks.1)
                case 2: (length, k) = (counts.2, blocks.2)
                default: (length, k) = (counts.3, blocks.3)
                }
                if k > 0 {
                    let tail = lanes + md5LaneStride * lane
                    let id = UnsafeRawBufferPointer(start: tail + hasher.leftover, count: length)
                    setResult(lane, id, hasher.bucket(filledTail: tail, blocks: k))
                } else {
                    let id = UnsafeRawBufferPointer(start: arena + arenaOffset, count: length)
                    arenaOffset += length
                    setResult(lane, id, hasher.bucket(utf8: id))
                }
            }
        }

        @inline(__always)
        private func setResult(_ lane: Int, _ id: UnsafeRawBufferPointer, _ bucket: Int) {
            results[lane] = (id, bucket, assigner.armIndex(forBucket: bucket))
        }

        private mutating func growArena(to needed: Int) {
            let capacity = Swift.max(needed, 2 * arenaCapacity)
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            bigger.copyMemory(from: arena, byteCount: arenaUsed)
            arena.deallocate()
            arena = bigger
            arenaCapacity = capacity
        }
    }
}

/// MD5 with `"{experiment}:"` already absorbed, plus the padded-tail template the fast paths copy.
///
/// A class so the hot paths borrow it instead of copying its ~260 bytes.
///
/// An ID whose tail (leftover prefix bytes + ID + 9 bytes of padding) fits in one or two blocks is hashed
/// by copying the template, writing the ID and the length into it and compressing; longer IDs go
/// through the general streaming path.
final class AssignmentHasher: Sendable {
    typealias Block = MD5Context.Block

    /// State after every complete 64-byte block of the prefix, with the rest buffered.
    private let context: MD5Context
    /// The prefix bytes after its last complete block, then zeros: the first block of every tail.
    private let template: Block
    /// Count of those leftover prefix bytes (0..<64): where the ID starts in a tail.
    let leftover: Int
    /// Total prefix length in bytes.
    private let prefixLength: Int

    init(experiment: String) {
        var context = MD5Context()
        var experiment = experiment
        experiment.withUTF8 { context.update(UnsafeRawBufferPointer($0)) }
        withUnsafeBytes(of: UInt8(ascii: ":")) { context.update($0) }
        self.context = context
        leftover = context.blockCount
        prefixLength = Int(context.length)
        var template: Block = (0, 0, 0, 0, 0, 0, 0, 0)
        let count = leftover
        withUnsafeMutableBytes(of: &template) { out in
            withUnsafeBytes(of: context.block) { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: count) }
        }
        self.template = template
    }

    /// 1 or 2 if an ID of `count` bytes takes the fast path with that many blocks, else 0.
    @inline(__always)
    func tailBlocks(_ count: Int) -> Int {
        let total = leftover + count + 9
        return total <= 64 ? 1 : total <= 128 ? 2 : 0
    }

    /// Writes the padded message tail for `id` (`blocks` × 64 bytes) to `out`.
    @inline(__always)
    func fillTail(_ out: UnsafeMutableRawPointer, _ id: UnsafeRawBufferPointer, blocks: Int) {
        // Fixed-size stores: a copy loop here would be turned into a memcpy call.
        out.storeBytes(of: template, as: Block.self)
        if blocks == 2 { out.storeBytes(of: (0, 0, 0, 0, 0, 0, 0, 0) as Block, toByteOffset: 64, as: Block.self) }
        writeID(out, id, blocks: blocks)
    }

    /// Writes `id`, the 0x80 terminator and the bit length into a tail that already holds the template.
    @inline(__always)
    private func writeID(_ out: UnsafeMutableRawPointer, _ id: UnsafeRawBufferPointer, blocks: Int) {
        assignmentCopy(out + leftover, id)
        out.storeBytes(of: 0x80, toByteOffset: leftover + id.count, as: UInt8.self)
        let bitLength = UInt64(prefixLength + id.count) &* 8
        out.storeBytes(of: bitLength.littleEndian, toByteOffset: 64 * blocks - 8, as: UInt64.self)
    }

    func bucket(_ userID: String) -> Int {
        var userID = userID
        return userID.withUTF8 { bucket(utf8: UnsafeRawBufferPointer($0)) }
    }

    func bucket(utf8 id: UnsafeRawBufferPointer) -> Int {
        let blocks = tailBlocks(id.count)
        guard blocks > 0 else {
            var context = self.context
            context.update(id)
            return assignmentBucket(context.finalize())
        }
        var tail = (template, (0, 0, 0, 0, 0, 0, 0, 0) as Block)
        return withUnsafeMutableBytes(of: &tail) { buffer in
            let p = buffer.baseAddress!
            writeID(p, id, blocks: blocks)
            return bucket(filledTail: p, blocks: blocks)
        }
    }

    /// The bucket of a tail written by `fillTail`.
    @inline(__always)
    func bucket(filledTail p: UnsafeRawPointer, blocks: Int) -> Int {
        var state = context.state
        state.compress(p)
        if blocks == 2 { state.compress(p + 64) }
        return assignmentBucket(state.digest)
    }

    /// Four compressions: in SSE2 registers where the C kernel is built for this CPU, else interleaved scalar.
    @inline(__always)
    private func compress4(_ s: inout MD5States4, _ blocks: UnsafeRawPointer) {
        if md5x4Available {
            withUnsafeMutableBytes(of: &s) { raw in
                bakeoff_md5x4_compress(raw.baseAddress!.assumingMemoryBound(to: UInt32.self), blocks.assumingMemoryBound(to: UInt8.self), md5LaneStride)
            }
        } else {
            md5Compress4(&s, blocks: blocks)
        }
    }

    /// Buckets of four tails written by `fillTail` into `lanes` (4 × 128 bytes), hashed side by side.
    func buckets4(lanes: UnsafeMutableRawPointer, blocks: (Int, Int, Int, Int)) -> (Int, Int, Int, Int) {
        let start = context.state
        var s: MD5States4 = (start, start, start, start)
        compress4(&s, lanes)
        if blocks.0 == 2 || blocks.1 == 2 || blocks.2 == 2 || blocks.3 == 2 {
            // One-block lanes are finished; run them through the second block anyway and keep their state.
            let f = s
            compress4(&s, lanes + 64)
            if blocks.0 == 1 { s.0 = f.0 }
            if blocks.1 == 1 { s.1 = f.1 }
            if blocks.2 == 1 { s.2 = f.2 }
            if blocks.3 == 1 { s.3 = f.3 }
        }
        return (
            assignmentBucket(s.0.digest), assignmentBucket(s.1.digest),
            assignmentBucket(s.2.digest), assignmentBucket(s.3.digest)
        )
    }
}

/// Copies `source` to `target` without a call into libc (IDs are short; a memmove call costs more).
@inline(__always)
private func assignmentCopy(_ target: UnsafeMutableRawPointer, _ source: UnsafeRawBufferPointer) {
    guard let from = source.baseAddress else { return }
    var i = 0
    let n = source.count
    while i + 8 <= n {
        target.storeBytes(of: from.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
        i += 8
    }
    while i < n {
        target.storeBytes(of: from.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self)
        i += 1
    }
}

/// The digest as a big-endian 128-bit integer, mod 10000.
@inline(__always)
private func assignmentBucket(_ digest: MD5Digest) -> Int {
    // (high * 2^64 + low) mod 10000, with 2^64 mod 10000 = 1616; constant divisors compile to multiplies.
    let remainder = ((digest.high % 10_000) &* 1616 &+ digest.low % 10_000) % 10_000
    return Int(truncatingIfNeeded: remainder)
}

/// Whether the SSE2 kernel was compiled in (x86-64 always; elsewhere the scalar path is used).
let md5x4Available = bakeoff_md5x4_available() == 1
