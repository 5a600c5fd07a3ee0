import BakeoffCore

/// A logged request that a sample may take: who sent it, which arm served it, when, and a key of what was sent.
public struct SampleCandidate: Sendable, Equatable {
    /// Unique in a sample (a repeated id is taken once); the dataset line's `id`.
    public var requestID: String
    public var user: String
    /// The arm that served it live.
    public var variant: String
    /// Microseconds since 1970-01-01T00:00:00Z; its UTC day is the `day` stratum.
    public var timestamp: Int64
    /// Equal for requests that sent the same content (`RequestSample.contentKey`): what `distinct` compares.
    public var contentKey: UInt64
    /// The caller's handle to find the request again (the store's row); the draw does not look at it.
    public var source: Int64

    public init(requestID: String, user: String, variant: String, timestamp: Int64, contentKey: UInt64, source: Int64 = 0) {
        self.requestID = requestID
        self.user = user
        self.variant = variant
        self.timestamp = timestamp
        self.contentKey = contentKey
        self.source = source
    }

    /// `2026-11-01`: the UTC day of `timestamp`.
    public var day: String { RequestSample.day(of: timestamp) }
}

/// What a sample is stratified by: the arm that served the request live, or its UTC day.
public enum SampleStratification: String, Sendable, CaseIterable {
    case variant
    case day
}

/// A sample of logged requests drawn uniformly over users, so heavy users do not dominate.
///
/// The draw: candidates are sorted by request id (a repeated id is kept once), so the result depends on the seed
/// and the set of candidates, never on their order. The users are shuffled with a seeded generator (SplitMix64),
/// and each user in turn gives one request, chosen uniformly among theirs. Only when the size exceeds the number
/// of users does the draw go round again (each user's next request, without replacement), in the same order. A
/// sample of size k is therefore k distinct users picked uniformly, one random request each; and unstratified,
/// the first k requests of a larger sample are the sample of size k with the same seed.
///
/// Stratified (`variant` or `day`): the size is split over the strata in proportion to their users (largest
/// remainder; ties to the stratum first by name), and each stratum is drawn as above among its own users. A
/// stratum that runs out of requests leaves its share to the others, again in proportion to their users.
///
/// `distinct`: a request whose content (`contentKey`) a drawn request already has is passed over, and the user's
/// next request is tried (a user with nothing new is skipped in that round). `accept` may refuse a drawn request
/// (for example one that cannot be replayed); it is passed over in the same way.
public struct RequestSample: Sendable {
    public struct Stratum: Sendable, Equatable {
        /// The variant, or the day (`2026-11-01`).
        public var name: String
        public var users: Int
        public var requests: Int
        /// Requests drawn from it.
        public var drawn: Int
    }

    /// The drawn requests in the order drawn (stratified: stratum after stratum, in name order).
    public var requests: [SampleCandidate]
    /// Candidates with distinct request ids.
    public var candidates: Int
    /// Candidates left out because an earlier one (by request id) has their request id.
    public var repeatedRequestIDs: Int
    /// Distinct users among the candidates.
    public var users: Int
    /// Distinct users with a drawn request.
    public var usersDrawn: Int
    /// The most requests drawn from one user (in one stratum): 1 unless the size exceeded the users.
    public var mostPerUser: Int
    /// Per stratum, in name order; empty when not stratified.
    public var strata: [Stratum]
    /// Requests passed over because their content was drawn already (`distinct`).
    public var duplicatesPassedOver: Int
    /// Requests `accept` refused.
    public var refused: Int

    /// Draws up to `size` requests (fewer only when the candidates run out); see the type's description.
    public static func draw(_ candidates: [SampleCandidate], size: Int, seed: UInt64, stratify: SampleStratification? = nil,
                            distinct: Bool = true) -> RequestSample {
        draw(candidates, size: size, seed: seed, stratify: stratify, distinct: distinct) { _ in true }
    }

    /// Draws up to `size` requests, each of which `accept` may refuse; see the type's description.
    public static func draw(_ candidates: [SampleCandidate], size: Int, seed: UInt64, stratify: SampleStratification? = nil,
                            distinct: Bool = true, accept: (SampleCandidate) throws -> Bool) rethrows -> RequestSample {
        precondition(size > 0, "a sample needs a positive size")
        // Canonical order: by request id (then every other field), a repeated id once.
        let sorted = candidates.sorted {
            ($0.requestID, $0.timestamp, $0.user, $0.variant, $0.contentKey, $0.source) < ($1.requestID, $1.timestamp, $1.user, $1.variant, $1.contentKey, $1.source)
        }
        var unique: [SampleCandidate] = []
        unique.reserveCapacity(sorted.count)
        for c in sorted where unique.last?.requestID != c.requestID { unique.append(c) }

        // Users and strata as indices, numbered in name order (never in a dictionary's order).
        let userNames = Array(Set(unique.map(\.user))).sorted()
        let userIndex = Dictionary(uniqueKeysWithValues: userNames.enumerated().map { ($1, $0) })
        let stratumOf: [String] = unique.map { c in
            switch stratify {
            case nil: ""
            case .variant: c.variant
            case .day: c.day
            }
        }
        let stratumNames = Array(Set(stratumOf)).sorted()
        let stratumIndex = Dictionary(uniqueKeysWithValues: stratumNames.enumerated().map { ($1, $0) })

        // Candidates grouped by (stratum, user), in request-id order within a group.
        let keyed = unique.indices.map { i in (stratum: stratumIndex[stratumOf[i]]!, user: userIndex[unique[i].user]!, index: i) }
            .sorted { ($0.stratum, $0.user, $0.index) < ($1.stratum, $1.user, $1.index) }
        var drawers: [Drawer] = []
        var k = 0
        for s in stratumNames.indices {
            var drawer = Drawer()
            while k < keyed.count && keyed[k].stratum == s {
                let user = keyed[k].user
                drawer.users.append(user)
                drawer.start.append(drawer.members.count)
                while k < keyed.count && keyed[k].stratum == s && keyed[k].user == user {
                    drawer.members.append(keyed[k].index)
                    k += 1
                }
                drawer.remaining.append(drawer.members.count - drawer.start.last!)
            }
            drawers.append(drawer)
        }

        var random = SplitMix64(seed: seed)
        for s in drawers.indices { drawers[s].shuffle(&random) }

        var sample = RequestSample(requests: [], candidates: unique.count, repeatedRequestIDs: candidates.count - unique.count,
                                   users: userNames.count, usersDrawn: 0, mostPerUser: 0, strata: [], duplicatesPassedOver: 0, refused: 0)
        var drawn = Array(repeating: [SampleCandidate](), count: drawers.count)
        var usedContent = Set<UInt64>()
        var open = Array(drawers.indices)
        var wanted = size
        while wanted > 0 && !open.isEmpty {
            let quotas = largestRemainder(wanted, weights: open.map { drawers[$0].users.count })
            var exhausted = Set<Int>()
            for (s, quota) in zip(open, quotas) {
                var got = 0
                while got < quota {
                    guard let i = try drawers[s].next(&random, { i in
                        let c = unique[i]
                        if distinct && usedContent.contains(c.contentKey) {
                            sample.duplicatesPassedOver += 1
                            return false
                        }
                        guard try accept(c) else {
                            sample.refused += 1
                            return false
                        }
                        return true
                    }) else {
                        exhausted.insert(s)
                        break
                    }
                    usedContent.insert(unique[i].contentKey)
                    drawn[s].append(unique[i])
                    got += 1
                }
                wanted -= got
            }
            open.removeAll { exhausted.contains($0) }
        }
        sample.requests = drawn.flatMap { $0 }
        sample.usersDrawn = Set(sample.requests.map(\.user)).count
        sample.mostPerUser = drawers.map { $0.mostTaken }.max() ?? 0
        if stratify != nil {
            sample.strata = stratumNames.indices.map { s in
                Stratum(name: stratumNames[s], users: drawers[s].users.count, requests: drawers[s].members.count, drawn: drawn[s].count)
            }
        }
        return sample
    }

    /// `total` split over `weights` (not all zero) in proportion, by largest remainder: each gets the whole part
    /// of its share, and what is left goes one by one to the largest fractional parts (ties: the earlier).
    public static func largestRemainder(_ total: Int, weights: [Int]) -> [Int] {
        let sum = weights.reduce(0, +)
        precondition(total >= 0 && sum > 0 && weights.allSatisfy { $0 >= 0 })
        var quotas = [Int](repeating: 0, count: weights.count)
        var remainders = quotas
        for i in weights.indices {
            (quotas[i], remainders[i]) = sum.dividingFullWidth(total.multipliedFullWidth(by: weights[i]))
        }
        var left = total - quotas.reduce(0, +)
        for i in weights.indices.sorted(by: { (remainders[$1], $0) < (remainders[$0], $1) }) where left > 0 {
            quotas[i] += 1
            left -= 1
        }
        return quotas
    }

    /// A key of a request's content for `distinct`: 64-bit FNV-1a of the messages' JSON text (or of the prompt,
    /// for a request without messages), the two kinds kept apart.
    public static func contentKey(messagesJSON: String?, prompt: String?) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func add(_ b: UInt8) {
            hash ^= UInt64(b)
            hash &*= 0x0000_0100_0000_01B3
        }
        if let messagesJSON {
            add(0x6D)
            for b in messagesJSON.utf8 { add(b) }
        } else {
            add(0x70)
            for b in (prompt ?? "").utf8 { add(b) }
        }
        return hash
    }

    /// `2026-11-01`: the UTC day of a time in microseconds since 1970.
    public static func day(of timestamp: Int64) -> String {
        let microsPerDay: Int64 = 86_400_000_000
        let day = timestamp >= 0 ? timestamp / microsPerDay : (timestamp - microsPerDay + 1) / microsPerDay
        return String(formatTimestamp(day * microsPerDay).prefix(10))
    }
}

/// One stratum's users and their candidates: users in a shuffled order, taken round after round; each user's
/// candidates a contiguous slice of `members`, of which the first `remaining` are not taken yet.
private struct Drawer {
    var users: [Int] = []
    var start: [Int] = []
    var remaining: [Int] = []
    var members: [Int] = []
    /// Positions (into `users`) in draw order; users with nothing left are dropped at the end of a round.
    var order: [Int] = []
    var position = 0
    var taken: [Int] = []

    var mostTaken: Int { taken.max() ?? 0 }

    mutating func shuffle(_ random: inout SplitMix64) {
        order = Array(users.indices)
        random.shuffle(&order)
        taken = Array(repeating: 0, count: users.count)
    }

    /// The next request: the current user's, chosen uniformly among what they have left; requests `usable`
    /// refuses are discarded and the user's next is tried; a user with nothing usable is skipped. Nil when every
    /// user is out of requests.
    mutating func next(_ random: inout SplitMix64, _ usable: (Int) throws -> Bool) rethrows -> Int? {
        while !order.isEmpty {
            if position == order.count {
                order.removeAll { remaining[$0] == 0 }
                position = 0
                continue
            }
            let u = order[position]
            position += 1
            while remaining[u] > 0 {
                let j = start[u] + random.next(below: remaining[u])
                let last = start[u] + remaining[u] - 1
                members.swapAt(j, last)
                remaining[u] -= 1
                if try usable(members[last]) {
                    taken[u] += 1
                    return members[last]
                }
            }
        }
        return nil
    }
}
