import BakeoffCore
import BakeoffEval
import Testing

@Suite("Request samples: uniform over users, stratified, deterministic")
struct RequestSampleTests {
    static let day0: Int64 = 1_793_491_200_000_000  // 2026-11-01T00:00:00Z
    static let dayMicros: Int64 = 86_400_000_000

    static func candidate(_ id: String, _ user: String, variant: String = "control", day: Int = 0, content: UInt64? = nil) -> SampleCandidate {
        SampleCandidate(requestID: id, user: user, variant: variant, timestamp: day0 + Int64(day) * dayMicros + 1_000,
                        contentKey: content ?? RequestSample.contentKey(messagesJSON: nil, prompt: id))
    }

    /// One heavy user with 1000 requests and 99 light users with one each.
    static let heavyAndLight: [SampleCandidate] =
        (0..<1000).map { candidate("heavy-\($0)", "heavy") } + (0..<99).map { candidate("light-\($0)", "light-\($0)") }

    @Test func eachUserGivesOneRequestPerRound() {
        for seed: UInt64 in 1...50 {
            let sample = RequestSample.draw(Self.heavyAndLight, size: 50, seed: seed)
            #expect(sample.requests.count == 50)
            #expect(sample.requests.filter { $0.user == "heavy" }.count <= 1)
            #expect(sample.usersDrawn == 50 && sample.mostPerUser == 1 && sample.users == 100 && sample.candidates == 1099)
        }
        // Over many seeds the heavy user is drawn about as often as any one user: 50 of 100 users, so half the time.
        let heavyDraws = (1...400).filter { seed in RequestSample.draw(Self.heavyAndLight, size: 50, seed: UInt64(seed)).requests.contains { $0.user == "heavy" } }.count
        #expect((150...250).contains(heavyDraws), "\(heavyDraws)")
    }

    @Test func theDrawGoesRoundAgainOnlyWhenTheSizeExceedsTheUsers() {
        let exactly = RequestSample.draw(Self.heavyAndLight, size: 100, seed: 7)
        #expect(exactly.usersDrawn == 100 && exactly.mostPerUser == 1)
        let more = RequestSample.draw(Self.heavyAndLight, size: 150, seed: 7)
        #expect(more.requests.count == 150)
        // The light users have nothing left after the first round: the heavy user gives the other 51.
        #expect(more.requests.filter { $0.user == "heavy" }.count == 51)
        #expect(more.mostPerUser == 51)
        #expect(Set(more.requests.map(\.requestID)).count == 150)
        // Beyond every request: all of them, once.
        let all = RequestSample.draw(Self.heavyAndLight, size: 5000, seed: 7)
        #expect(all.requests.count == 1099 && Set(all.requests.map(\.requestID)).count == 1099)
    }

    @Test func theSameSeedGivesTheSameSampleWhateverTheOrder() {
        let a = RequestSample.draw(Self.heavyAndLight, size: 60, seed: 42, stratify: nil)
        var reordered = Self.heavyAndLight.reversed() as [SampleCandidate]
        var g = SplitMix64(seed: 9)
        g.shuffle(&reordered)
        let b = RequestSample.draw(reordered, size: 60, seed: 42)
        #expect(a.requests == b.requests)
        #expect(RequestSample.draw(Self.heavyAndLight, size: 60, seed: 43).requests != a.requests)
        // Unstratified, a smaller sample is the start of a larger one.
        #expect(Array(RequestSample.draw(Self.heavyAndLight, size: 120, seed: 42).requests.prefix(60)) == a.requests)
        for stratify in SampleStratification.allCases {
            let mixed = Self.strataCandidates
            var shuffled = mixed
            g.shuffle(&shuffled)
            #expect(RequestSample.draw(mixed, size: 37, seed: 5, stratify: stratify).requests
                == RequestSample.draw(shuffled, size: 37, seed: 5, stratify: stratify).requests)
        }
    }

    @Test func theDrawIsFixedForASeed() {
        // Pinned: a change of the generator or of the draw's order changes every published sample.
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
        let sample = RequestSample.draw(Self.heavyAndLight, size: 3, seed: 1)
        #expect(sample.requests.count == 3)
        let again = RequestSample.draw(Self.heavyAndLight, size: 3, seed: 1)
        #expect(sample.requests == again.requests)
    }

    /// Variants: control 60 users, treatment 30 users, canary 10 users, 3 requests each over 3 days.
    static let strataCandidates: [SampleCandidate] = {
        var out: [SampleCandidate] = []
        for (variant, users) in [("control", 60), ("treatment", 30), ("canary", 10)] {
            for u in 0..<users {
                for r in 0..<3 { out.append(candidate("\(variant)-\(u)-\(r)", "\(variant)-\(u)", variant: variant, day: (u + r) % 3)) }
            }
        }
        return out
    }()

    @Test func strataGetTheirShareByUsers() {
        let sample = RequestSample.draw(Self.strataCandidates, size: 25, seed: 3, stratify: .variant)
        #expect(sample.strata.map(\.name) == ["canary", "control", "treatment"])
        #expect(sample.strata.map(\.users) == [10, 60, 30])
        // 25 × (0.1, 0.6, 0.3) = 2.5, 15, 7.5: the one left goes to canary (a tie with treatment, first by name).
        #expect(sample.strata.map(\.drawn) == [3, 15, 7])
        #expect(sample.requests.count == 25)
        for stratum in sample.strata {
            let drawn = sample.requests.filter { $0.variant == stratum.name }
            #expect(drawn.count == stratum.drawn)
            #expect(Set(drawn.map(\.user)).count == drawn.count, "one request per user within \(stratum.name)")
        }
        // A stratum that runs out leaves its share to the others: 10 canary users with one request each, 10
        // control users with five.
        let uneven = (0..<10).map { Self.candidate("c\($0)", "canary-\($0)", variant: "canary") }
            + (0..<50).map { Self.candidate("k\($0)", "control-\($0 % 10)", variant: "control") }
        let shared = RequestSample.draw(uneven, size: 30, seed: 3, stratify: .variant)
        #expect(shared.strata.map(\.drawn) == [10, 20])
        #expect(shared.mostPerUser == 2)
        let days = RequestSample.draw(Self.strataCandidates, size: 30, seed: 3, stratify: .day)
        #expect(days.strata.map(\.name) == ["2026-11-01", "2026-11-02", "2026-11-03"])
        #expect(days.strata.map(\.drawn) == [10, 10, 10])
        #expect(days.requests.allSatisfy { days.strata.map(\.name).contains($0.day) })
    }

    @Test func largestRemainder() {
        #expect(RequestSample.largestRemainder(25, weights: [10, 60, 30]) == [3, 15, 7])
        #expect(RequestSample.largestRemainder(10, weights: [1, 1, 1]) == [4, 3, 3])
        #expect(RequestSample.largestRemainder(0, weights: [1, 2]) == [0, 0])
        #expect(RequestSample.largestRemainder(7, weights: [0, 5]) == [0, 7])
        #expect(RequestSample.largestRemainder(100, weights: [1, 999]) == [0, 100])
        #expect(RequestSample.largestRemainder(1_000_000, weights: [3, 3, 3]).reduce(0, +) == 1_000_000)
    }

    @Test func distinctContentIsTakenOnce() {
        // 40 users who all sent "hi", and 10 of them also something of their own.
        var candidates = (0..<40).map { Self.candidate("hi-\($0)", "u\($0)", content: 1) }
        candidates += (0..<10).map { Self.candidate("own-\($0)", "u\($0)") }
        let distinct = RequestSample.draw(candidates, size: 20, seed: 11)
        #expect(distinct.requests.count == 11)
        #expect(distinct.requests.filter { $0.contentKey == 1 }.count == 1)
        #expect(distinct.duplicatesPassedOver > 0)
        let all = RequestSample.draw(candidates, size: 20, seed: 11, distinct: false)
        #expect(all.requests.count == 20 && all.usersDrawn == 20 && all.duplicatesPassedOver == 0)
    }

    @Test func refusedRequestsAreReplacedByTheUsersNext() throws {
        let candidates = (0..<10).flatMap { u in (0..<2).map { Self.candidate("r\(u)-\($0)", "u\(u)") } }
        let sample = RequestSample.draw(candidates, size: 10, seed: 2) { !$0.requestID.hasSuffix("-0") }
        #expect(sample.requests.count == 10 && sample.usersDrawn == 10)
        #expect(sample.requests.allSatisfy { $0.requestID.hasSuffix("-1") })
        #expect(sample.refused >= 1)
    }

    @Test func repeatedRequestIDsAreTakenOnce() {
        let c = Self.candidate("r1", "alice")
        let sample = RequestSample.draw([c, c, Self.candidate("r2", "bob")], size: 5, seed: 1)
        #expect(sample.requests.count == 2 && sample.repeatedRequestIDs == 1 && sample.candidates == 2)
    }

    @Test func daysAreUTC() {
        #expect(RequestSample.day(of: Self.day0) == "2026-11-01")
        #expect(RequestSample.day(of: Self.day0 - 1) == "2026-10-31")
        #expect(RequestSample.day(of: -1) == "1969-12-31")
        #expect(RequestSample.contentKey(messagesJSON: "x", prompt: nil) != RequestSample.contentKey(messagesJSON: nil, prompt: "x"))
    }
}
