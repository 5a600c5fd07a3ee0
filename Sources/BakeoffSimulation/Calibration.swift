import BakeoffStatistics
import BakeoffCore
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The families of methods `bakeoff calibrate` can check (`--methods`).
public enum CalibrationMethod: String, Sendable, CaseIterable, Comparable {
    /// Welch at one look at the end: mean metric, ratio metric (and the naive per-conversation test).
    case fixed
    /// The fixed-horizon test looked at every day, stopping at the first p < alpha.
    case peeking
    /// Always-valid p-values and intervals (SequentialTest.twoSided) looked at every day.
    case sequential
    /// A group-sequential test (O'Brien-Fleming-type alpha spending over the planned days) looked at every day, on
    /// weekdays only, and twice a day.
    case groupSequential = "group-sequential"
    /// Fieller's interval for the relative lift.
    case relative
    /// Latency P50 and P95 with the clustered (and the naive) variance.
    case quantile
    /// CUPED with a pre-experiment covariate.
    case cuped
    /// Offline evals: the judge's win rate (both orders, a position-biased judge), paired t, McNemar.
    case offline

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The simulated population: how users, conversations, requests and their values are drawn.
///
/// Every user has a random effect per metric, so a user's conversations and requests are alike; that is
/// what makes per-conversation or per-request variances wrong and the user-level methods necessary.
public struct CalibrationModel: Sendable, Equatable {
    /// Mean conversations per user: 1 + Poisson(mean − 1).
    public var conversationsPerUser = 2.5
    /// Mean requests per conversation: 1 + Poisson(mean − 1).
    public var requestsPerConversation = 2.0
    /// Mean of the per-user metric "minutes of use" in control (lognormal).
    public var minutesMean = 10.0
    /// Log-scale SD of the user's lasting level, shared by the minutes in and before the experiment.
    public var minutesUserSigma = 0.5
    /// Log-scale SD of the period-to-period noise (corr(before, during) ≈ 0.7 with the defaults).
    public var minutesNoiseSigma = 0.3
    /// Control's task completion rate per conversation.
    public var completion = 0.7
    /// Beta concentration of the per-user completion rate (smaller = users differ more).
    public var completionConcentration = 2.0
    /// Control's median request latency in ms (lognormal).
    public var latencyMedianMs = 900.0
    /// Log-scale SD of the per-user latency level.
    public var latencyUserSigma = 0.5
    /// Log-scale SD of a request's latency around its user's level.
    public var latencyRequestSigma = 0.4

    public init() {}

    /// The true latency quantile of control's requests at `level` (the marginal lognormal's).
    public func latencyQuantile(_ level: Double) -> Double {
        let sigma = (latencyUserSigma * latencyUserSigma + latencyRequestSigma * latencyRequestSigma).squareRoot()
        return latencyMedianMs * exp(sigma * Normal.quantile(level))
    }
}

/// What `bakeoff calibrate` simulates: sizes, the known effect, the methods' settings and the seed.
public struct CalibrationSettings: Sendable, Equatable {
    /// Simulations per row: each is one A/A experiment and one experiment with the effect.
    public var simulations = 4000
    /// Days each experiment runs; the peeking and sequential methods look at the end of every day, and the
    /// group-sequential test has its horizon there.
    public var days = 14
    /// New users per day over both arms, each assigned 50/50 by a coin flip.
    public var usersPerDay = 400
    public var seed: UInt64 = 1
    /// The known relative effect of treatment on every metric (minutes, completion, latency).
    public var effect = 0.04
    /// N* of the sequential test.
    public var tuningParameter = SequentialTest.defaultTuningParameter
    public var alpha = 0.05
    public var methods = Set(CalibrationMethod.allCases)
    public var model = CalibrationModel()

    public init() {}

    /// Checks every setting, naming the one at fault and what would be accepted.
    public func validate() throws(CalibrationError) {
        guard simulations >= 1 else { throw .invalid("simulations must be 1 or more, got \(simulations)") }
        guard days >= 1 else { throw .invalid("days must be 1 or more, got \(days)") }
        guard usersPerDay >= 4 else {
            throw .invalid("users per day must be 4 or more (each arm needs 2 users for a test), got \(usersPerDay)")
        }
        guard alpha > 0, alpha < 0.5 else { throw .invalid("alpha must be above 0 and below 0.5, got \(formatNumber(alpha))") }
        guard tuningParameter > 0, tuningParameter.isFinite else {
            throw .invalid("the sequential tuning parameter N* must be above 0, got \(formatNumber(tuningParameter))")
        }
        guard effect > -1, effect.isFinite else { throw .invalid("effect must be above -1 (a relative change), got \(formatNumber(effect))") }
        let treated = model.completion * (1 + effect)
        guard treated < 1 else {
            let most = 1 / model.completion - 1
            throw .invalid("effect \(formatNumber(effect)) makes treatment's completion rate \(formatNumber(treated)), not below 1; use an effect below \(fixed((most * 1000).rounded(.down) / 1000, 3))")
        }
        guard !methods.isEmpty else { throw .invalid("no methods selected; choose from \(CalibrationMethod.allCases.map(\.rawValue).joined(separator: ", "))") }
    }
}

/// Settings that cannot be simulated, with what to change.
public enum CalibrationError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): return message
        }
    }
}

/// Runs many simulated experiments and measures false-positive rates, power and interval coverage.
///
/// Pure and deterministic: simulation i of seed s draws from its own generators (derived from s and i
/// alone), and simulations are tallied in blocks combined in order, so the result depends on neither the
/// number of threads nor the methods selected alongside.
public enum Calibration {
    /// Simulations per unit of work handed to a thread.
    static let blockSize = 16

    /// Runs `settings.simulations` simulations on `threads` threads and tallies every row.
    ///
    /// `progress` gets the number of simulations done; it is called from worker threads, one call at a time.
    public static func run(
        _ settings: CalibrationSettings, threads: Int = 1, progress: (@Sendable (Int) -> Void)? = nil
    ) throws(CalibrationError) -> CalibrationResult {
        try settings.validate()
        let blocks = (settings.simulations + blockSize - 1) / blockSize
        let results = Mutex([CalibrationTally?](repeating: nil, count: blocks))
        let nextBlock = Atomic<Int>(0)
        let done = Mutex(0)
        let workers = max(1, min(threads, blocks))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let block = nextBlock.add(1, ordering: .relaxed).oldValue
                guard block < blocks else { return }
                let range = block * blockSize..<min(settings.simulations, (block + 1) * blockSize)
                var tally = CalibrationTally()
                for index in range { tally += simulate(index, settings) }
                results.withLock { $0[block] = tally }
                done.withLock { count in
                    count += range.count
                    progress?(count)
                }
            }
        }
        var total = CalibrationTally()
        for tally in results.withLock({ $0 }) { total += tally! }
        return CalibrationResult(settings: settings, tally: total)
    }

    /// One simulation: an A/A experiment and one with the effect, each with its own random streams.
    static func simulate(_ index: Int, _ settings: CalibrationSettings) -> CalibrationTally {
        var tally = CalibrationTally()
        let live = settings.methods.subtracting([.offline])
        for withEffect in [false, true] {
            if !live.isEmpty {
                var experiment = Experiment(settings: settings, index: index, withEffect: withEffect)
                experiment.run(into: &tally)
            }
            if settings.methods.contains(.offline) {
                OfflineEvalSimulation().run(settings: settings, index: index, withEffect: withEffect, into: &tally)
            }
        }
        return tally
    }

    /// A seed for one stream of one experiment, from the run's seed and the simulation's index.
    ///
    /// Every part goes through splitmix64's finalizer before it is combined, so different (seed, index)
    /// pairs get unrelated streams (with a plain seed ^ index, seeds 1 and 2 would run the same
    /// simulations in another order).
    static func streamSeed(_ seed: UInt64, _ index: Int, _ withEffect: Bool, _ stream: UInt64) -> UInt64 {
        func mix(_ value: UInt64) -> UInt64 {
            var x = value &+ 0x9E37_79B9_7F4A_7C15
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        var x = mix(seed)
        for part in [UInt64(index), withEffect ? 1 : 2, stream] { x = mix(x ^ mix(part &* 0xD6E8_FEB8_6659_FD93)) }
        return x
    }
}

/// One simulated experiment: users arrive day by day, every look tests the data so far.
///
/// A user's conversations, requests and values are all observed on the day they arrive, so every look
/// estimates the same true difference.
private struct Experiment {
    let settings: CalibrationSettings
    let withEffect: Bool
    /// Assignment, conversations per user.
    var users: RandomSource
    /// Minutes of use during and before the experiment.
    var minutes: RandomSource
    /// Per-user completion rates and outcomes.
    var completion: RandomSource
    /// Requests per conversation and their latencies.
    var latency: RandomSource

    init(settings: CalibrationSettings, index: Int, withEffect: Bool) {
        self.settings = settings
        self.withEffect = withEffect
        users = RandomSource(seed: Calibration.streamSeed(settings.seed, index, withEffect, 1))
        minutes = RandomSource(seed: Calibration.streamSeed(settings.seed, index, withEffect, 2))
        completion = RandomSource(seed: Calibration.streamSeed(settings.seed, index, withEffect, 3))
        latency = RandomSource(seed: Calibration.streamSeed(settings.seed, index, withEffect, 4))
    }

    /// One arm's data so far.
    struct Arm {
        /// y = minutes during the experiment, x = minutes before it.
        var minutes = CUPEDMoments()
        /// Completed conversations over conversations, per user.
        var completion = RatioMoments()
        /// Request latencies, one array per user.
        var latencies: [[Double]] = []
    }

    /// Which rows' rejections and coverage have been seen at some look so far.
    struct Looks {
        var rejected = Set<CalibrationRowID>()
        var missed = Set<CalibrationRowID>()
        var coveredAtEnd = Set<CalibrationRowID>()
    }

    /// One metric's difference at a group-sequential look, with where the look falls.
    struct Estimate {
        var difference: Double
        var standardError: Double
        /// The users the test sees, over both arms: the look's information.
        var users: Double
        /// Elapsed days over planned days.
        var spendingTime: Double
    }

    /// A group-sequential look: when it falls and both metrics' estimates then (nil while an arm has fewer than 2
    /// users, when there is no test yet).
    ///
    /// Kept until the end: the boundary at a look depends on that look and the ones before it only, so the
    /// boundaries of every look are computed at once from the whole schedule, as the looks would have computed them
    /// one at a time.
    struct GroupSequentialLook {
        var day: Int
        /// After half of the day's users (the extra look of two a day) rather than at the end of the day.
        var midday: Bool
        var minutes: Estimate?
        var completion: Estimate?
    }

    mutating func run(into tally: inout CalibrationTally) {
        let methods = settings.methods
        let model = settings.model
        let lift = withEffect ? 1 + settings.effect : 1
        let wantsLatency = methods.contains(.quantile)
        let wantsLooks = methods.contains(.peeking) || methods.contains(.sequential)
        let wantsGroupSequential = methods.contains(.groupSequential)
        var arms = [Arm(), Arm()]
        var looks = Looks()
        var groupSequentialLooks: [GroupSequentialLook] = []
        let minutesVariance = model.minutesUserSigma * model.minutesUserSigma + model.minutesNoiseSigma * model.minutesNoiseSigma
        let minutesScale = model.minutesMean * exp(-0.5 * minutesVariance)
        let latencyLog = log(model.latencyMedianMs)
        for day in 1...settings.days {
            for user in 0..<settings.usersPerDay {
                if wantsGroupSequential, user == settings.usersPerDay / 2 {
                    groupSequentialLooks.append(groupSequentialLook(arms, day: day, midday: true))
                }
                let arm = users.bernoulli(0.5) ? 1 : 0
                let factor = arm == 1 ? lift : 1
                let conversations = 1 + users.poisson(model.conversationsPerUser - 1)
                // Minutes: a lasting user level plus independent noise in each period.
                let level = model.minutesUserSigma * minutes.normal()
                let before = minutesScale * exp(level + model.minutesNoiseSigma * minutes.normal())
                let during = factor * minutesScale * exp(level + model.minutesNoiseSigma * minutes.normal())
                arms[arm].minutes.add(post: during, pre: before)
                // Completion: the user's own rate, then one outcome per conversation.
                let rate = completion.beta(mean: model.completion * factor, concentration: model.completionConcentration)
                var completed = 0
                for _ in 0..<conversations where completion.bernoulli(rate) { completed += 1 }
                arms[arm].completion.add(numerator: Double(completed), denominator: Double(conversations))
                if wantsLatency {
                    let userLevel = latencyLog + log(factor) + model.latencyUserSigma * latency.normal()
                    var values: [Double] = []
                    for _ in 0..<conversations {
                        let requests = 1 + latency.poisson(model.requestsPerConversation - 1)
                        for _ in 0..<requests { values.append(exp(userLevel + model.latencyRequestSigma * latency.normal())) }
                    }
                    arms[arm].latencies.append(values)
                }
            }
            if wantsLooks { look(arms, day: day, &looks) }
            if wantsGroupSequential { groupSequentialLooks.append(groupSequentialLook(arms, day: day, midday: false)) }
        }
        record(looks, into: &tally)
        if wantsGroupSequential { groupSequential(groupSequentialLooks, arms, into: &tally) }
        finalTests(arms, into: &tally)
    }

    /// The true absolute differences under this experiment (0 for A/A).
    var effect: Double { withEffect ? settings.effect : 0 }
    var minutesTruth: Double { settings.model.minutesMean * effect }
    var completionTruth: Double { settings.model.completion * effect }

    /// A look at the end of `day`: peeking (Welch) and sequential tests of minutes and completion.
    ///
    /// Skipped while an arm has fewer than 2 users (no test exists yet), which counts as covered.
    func look(_ arms: [Arm], day: Int, _ looks: inout Looks) {
        let methods = settings.methods
        let alpha = settings.alpha
        let pairs: [(GroupEstimate, GroupEstimate, Double, CalibrationRowID, CalibrationRowID)] = [
            (arms[0].minutes.unadjusted, arms[1].minutes.unadjusted, minutesTruth, .peekingMean, .sequentialMean),
            (arms[0].completion.estimate, arms[1].completion.estimate, completionTruth, .peekingRatio, .sequentialRatio),
        ]
        for (control, treatment, truth, peeking, sequential) in pairs {
            guard control.n >= 2, treatment.n >= 2 else { continue }
            if methods.contains(.peeking), TTest.welch(control: control, treatment: treatment, alpha: alpha).pValue < alpha {
                looks.rejected.insert(peeking)
            }
            if methods.contains(.sequential) {
                let test = SequentialTest.twoSided(
                    control: control, treatment: treatment, alpha: alpha, scale: .absolute,
                    tuningParameter: settings.tuningParameter)
                if test.pValue < alpha { looks.rejected.insert(sequential) }
                if !test.interval.covers(truth) { looks.missed.insert(sequential) }
                if day == settings.days, test.interval.covers(truth) { looks.coveredAtEnd.insert(sequential) }
            }
        }
    }

    /// Both metrics' differences and standard errors now (Welch's, as the fixed-horizon rows test them).
    func groupSequentialLook(_ arms: [Arm], day: Int, midday: Bool) -> GroupSequentialLook {
        let elapsed = Double(day) - (midday ? 0.5 : 0)
        func estimate(_ control: GroupEstimate, _ treatment: GroupEstimate) -> Estimate? {
            guard control.n >= 2, treatment.n >= 2 else { return nil }
            let test = TTest.welch(control: control, treatment: treatment, alpha: settings.alpha)
            return Estimate(difference: test.difference, standardError: test.standardError, users: control.n + treatment.n,
                            spendingTime: elapsed / Double(settings.days))
        }
        return GroupSequentialLook(
            day: day, midday: midday,
            minutes: estimate(arms[0].minutes.unadjusted, arms[1].minutes.unadjusted),
            completion: estimate(arms[0].completion.estimate, arms[1].completion.estimate))
    }

    /// The group-sequential test over each schedule of looks: rejected when |z| reaches the boundary at any look;
    /// the repeated interval at a look is the difference ± boundary × standard error, and covers when it holds the
    /// truth at every look. The weekday and twice-a-day schedules count false positives only.
    func groupSequential(_ looks: [GroupSequentialLook], _ arms: [Arm], into tally: inout CalibrationTally) {
        let design = GroupSequentialDesign(alpha: settings.alpha, spending: .obrienFleming, twoSided: true)
        let daily = looks.filter { !$0.midday }
        var schedules = [(daily, CalibrationRowID.groupSequentialMean, CalibrationRowID.groupSequentialRatio)]
        if !withEffect {
            schedules.append((daily.filter { CalibrationCalendar.isWeekday(day: $0.day, of: settings.days) },
                              .groupSequentialWeekdaysMean, .groupSequentialWeekdaysRatio))
            schedules.append((looks, .groupSequentialTwiceDailyMean, .groupSequentialTwiceDailyRatio))
        }
        let final = [
            CalibrationRowID.groupSequentialMean: (arms[0].minutes.unadjusted, arms[1].minutes.unadjusted),
            .groupSequentialRatio: (arms[0].completion.estimate, arms[1].completion.estimate),
        ]
        for (schedule, meanRow, ratioRow) in schedules {
            for (row, estimates, truth) in [(meanRow, schedule.compactMap(\.minutes), minutesTruth),
                                            (ratioRow, schedule.compactMap(\.completion), completionTruth)] {
                let bounds = design.boundaries(estimates.map { Look(information: $0.users, spendingTime: $0.spendingTime) })
                var rejected = false, coveredAtEvery = true, coveredAtEnd = false
                for (estimate, c) in zip(estimates, bounds) {
                    let z = estimate.difference / estimate.standardError
                    if abs(z) >= c { rejected = true }
                    let covered = !c.isFinite || abs(estimate.difference - truth) <= c * estimate.standardError
                    if !covered { coveredAtEvery = false }
                    coveredAtEnd = covered
                }
                guard withEffect else {
                    if rejected { tally.count(row, .falsePositive) }
                    continue
                }
                if rejected { tally.count(row, .power) }
                if !estimates.isEmpty, coveredAtEvery { tally.count(row, .coverage) }
                if coveredAtEnd { tally.count(row, .coverageAtEnd) }
                if let pair = final[row], TTest.welch(control: pair.0, treatment: pair.1, alpha: settings.alpha).pValue < settings.alpha {
                    tally.count(row, .fixedHorizonPower)
                }
            }
        }
    }

    /// Adds the peeking and sequential outcomes over all looks.
    func record(_ looks: Looks, into tally: inout CalibrationTally) {
        for row in [CalibrationRowID.peekingMean, .peekingRatio, .sequentialMean, .sequentialRatio] where settings.methods.contains(row.method) {
            guard withEffect else {
                if looks.rejected.contains(row) { tally.count(row, .falsePositive) }
                continue
            }
            // Naive peeking's power is not reported: its rejections are not valid evidence.
            guard row.method == .sequential else { continue }
            if looks.rejected.contains(row) { tally.count(row, .power) }
            if !looks.missed.contains(row) { tally.count(row, .coverage) }
            if looks.coveredAtEnd.contains(row) { tally.count(row, .coverageAtEnd) }
        }
    }

    /// The tests at the end of the experiment.
    func finalTests(_ arms: [Arm], into tally: inout CalibrationTally) {
        let methods = settings.methods
        let alpha = settings.alpha
        let rejection: CalibrationQuantity = withEffect ? .power : .falsePositive
        func tested(_ row: CalibrationRowID, _ test: DifferenceTest, truth: Double) {
            if test.pValue < alpha { tally.count(row, rejection) }
            if withEffect, test.interval.covers(truth) { tally.count(row, .coverage) }
        }
        let minutes = (arms[0].minutes.unadjusted, arms[1].minutes.unadjusted)
        let completion = (arms[0].completion.estimate, arms[1].completion.estimate)
        let minutesTest = TTest.welch(control: minutes.0, treatment: minutes.1, alpha: alpha)
        let completionTest = TTest.welch(control: completion.0, treatment: completion.1, alpha: alpha)
        if methods.contains(.fixed) {
            tested(.fixedMean, minutesTest, truth: minutesTruth)
            tested(.fixedRatio, completionTest, truth: completionTruth)
            // Every conversation as an independent 0/1 value.
            let naive = TTest.welch(
                control: arms[0].completion.perUnit, treatment: arms[1].completion.perUnit, alpha: alpha)
            tested(.naiveRatio, naive, truth: completionTruth)
        }
        if methods.contains(.relative), withEffect {
            for (row, pair, test) in [(CalibrationRowID.relativeMean, minutes, minutesTest), (.relativeRatio, completion, completionTest)] {
                let set = Fieller.ratioSet(
                    treatmentMean: pair.1.mean, varianceOfTreatmentMean: pair.1.variance / pair.1.n,
                    controlMean: pair.0.mean, varianceOfControlMean: pair.0.variance / pair.0.n,
                    criticalValue: test.criticalValue)
                if set.contains(1 + effect) { tally.count(row, .coverage) }
            }
        }
        if methods.contains(.quantile) {
            let levels: [(Double, CalibrationRowID, CalibrationRowID)] = [
                (0.5, .quantileP50, .naiveQuantileP50), (0.95, .quantileP95, .naiveQuantileP95),
            ]
            for (level, clusteredRow, naiveRow) in levels {
                let control = QuantileEstimate(users: arms[0].latencies, level: level)
                let treatment = QuantileEstimate(users: arms[1].latencies, level: level)
                let truth = settings.model.latencyQuantile(level) * effect
                tested(clusteredRow, QuantileTest.difference(control: control, treatment: treatment, alpha: alpha), truth: truth)
                tested(naiveRow, QuantileTest.difference(control: control, treatment: treatment, alpha: alpha, clustered: false), truth: truth)
            }
        }
        if methods.contains(.cuped) {
            let (adjustment, test) = CUPED.test(control: arms[0].minutes, treatment: arms[1].minutes, alpha: alpha, scale: .absolute)
            tested(.cuped, test, truth: minutesTruth)
            if adjustment.varianceReduction.isFinite {
                tally.varianceReductionSum += adjustment.varianceReduction
                tally.varianceReductionCount += 1
            }
        }
    }
}

/// The calendar of the weekday-only looks: the last simulated day is a Friday, so the planned end is a look and the
/// design spends all of alpha.
enum CalibrationCalendar {
    /// Whether day `day` (from 1) of an experiment of `days` days falls from Monday to Friday.
    static func isWeekday(day: Int, of days: Int) -> Bool { (days - day) % 7 < 5 }
}

extension ConfidenceInterval {
    /// Whether `value` lies in the interval (false when either end is NaN).
    fileprivate func covers(_ value: Double) -> Bool { lower <= value && value <= upper }
}

extension RatioMoments {
    /// Every unit as an independent 0/1 value (valid when each unit's value is 0 or 1): the naive estimate.
    fileprivate var perUnit: GroupEstimate {
        let units = SampleMoments(n: denominator.sum, sum: numerator.sum, sumOfSquares: numerator.sum)
        return GroupEstimate(mean: units.mean, variance: units.variance, n: units.n)
    }
}
