import BakeoffStatistics

/// What a group-sequential test needs besides the level: how it spends alpha, its horizon in users (or the
/// plan's maximum runtime) and when the looks happen.
public struct GroupSequentialPlan: Sendable, Equatable {
    public var spending: AlphaSpending = .obrienFleming
    /// The users over all arms the experiment plans to reach: the horizon, where the last of alpha is spent.
    /// Without it the horizon is the plan's maximum runtime.
    public var plannedUsers: Double?
    public var looks: LookSchedule = .daily
    /// A non-binding futility boundary on the primary metric (beta spending with the same function, for the plan's
    /// power at its minimum detectable effect): crossing it suggests stopping, since the planned effect is unlikely.
    public var futility = false

    public init() {}
}

/// Where the primary metric stands against its futility boundary.
public struct FutilityCheck: Sendable, Equatable {
    /// The z statistic in the direction of the metric's goal.
    public var statistic: Double
    /// Below it, the planned effect is unlikely: the experiment may stop (non-binding).
    public var boundary: Double
    /// The absolute effect the boundary is made for (the plan's minimum detectable effect).
    public var plannedEffect: Double
    public var crossed: Bool { statistic < boundary }
}

/// When the results are looked at: the boundary at each look depends on the looks before it.
public enum LookSchedule: Sendable, Equatable {
    /// Once a day, at the end of each day since the start (and now).
    case daily
    /// At the end of each day from Monday to Friday (UTC), and now.
    case weekdays
    /// At these times (microseconds since the epoch): declared in the plan, or (`recorded`) the reads of the live
    /// report and the dashboard that a gateway's store kept.
    case times([Int64], recorded: Bool = false)
    /// Whenever the live report or the dashboard was read, as the event store records it (the store's reader fills
    /// in the times; without a store, daily).
    case recorded

    /// "daily", "weekdays", "3 declared", "recorded".
    public var name: String {
        switch self {
        case .daily: return "daily"
        case .weekdays: return "weekdays"
        case .times(let t, let recorded): return "\(t.count) \(recorded ? "recorded" : "declared")"
        case .recorded: return "recorded"
        }
    }
}

/// Where a group-sequential design ends.
public enum Horizon: Sendable, Equatable {
    /// The planned users over all arms.
    case users(Double)
    /// The planned duration in days (the plan's maximum runtime).
    case days(Double)

    /// "12,000 planned users", "14 planned days".
    public var text: String {
        switch self {
        case .users(let n): return "\(group(Int(n.rounded()))) planned users"
        case .days(let d): return "\(formatNumber(d)) planned days"
        }
    }
}

/// The state of a group-sequential test at the report's look.
public struct GroupSequentialMonitoring: Sendable, Equatable {
    /// The two-sided design at the plan's alpha.
    public var design: GroupSequentialDesign
    public var horizon: Horizon
    /// Every look so far, the report's last: users seen then and where it falls on the horizon.
    public var looks: [Look]
    /// When each look happened (nil without timestamps).
    public var times: [Int64?]
    /// The design's two-sided z boundaries at those looks.
    public var boundaries: [Double]
    /// The report's look is at or past the horizon: the last of alpha is spent now.
    public var isFinal: Bool
    /// An approximation the looks needed (data without arrival times), said in the report.
    public var note: String?

    /// The design at another level (a test's corrected alpha) or one-sided (a guardrail's margin).
    public func design(alpha: Double, twoSided: Bool = true) -> GroupSequentialDesign {
        GroupSequentialDesign(alpha: alpha, spending: design.spending, twoSided: twoSided)
    }

    /// The two-sided boundary at the report's look for a test at `alpha`.
    public func boundary(alpha: Double) -> Double { design(alpha: alpha).currentBoundary(looks) }

    /// The fraction of the horizon reached at the report's look (may pass 1 at the final look).
    public var fraction: Double { looks.last?.spendingTime ?? 0 }

    /// The alpha spent by the report's look, of the plan's.
    public var alphaSpent: Double { design.spent(at: fraction) }
}

/// Which test method a report uses, and why.
public struct MethodChoice: Sendable {
    /// What the plan asked for (possibly `auto`).
    public var requested: TestMethod
    /// What the report uses (never `auto`).
    public var method: TestMethod
    /// One sentence for the report: why this method.
    public var reason: String
    public var monitoring: GroupSequentialMonitoring?
    /// A problem with the looks the report should warn about.
    public var warning: String?

    public init(requested: TestMethod, method: TestMethod, reason: String, monitoring: GroupSequentialMonitoring? = nil, warning: String? = nil) {
        self.requested = requested
        self.method = method
        self.reason = reason
        self.monitoring = monitoring
        self.warning = warning
    }

    /// Looks closer together than this fraction of the horizon count as one (the later): a design with hundreds
    /// of looks costs seconds to compute and its boundaries barely differ.
    static let closestLooks = 0.005

    /// Resolves `auto`, builds the looks of a group-sequential test and falls back to the confidence sequence past
    /// the horizon.
    static func resolve(_ plan: AnalysisPlan, data: ExperimentData) throws(AnalysisError) -> MethodChoice {
        let requested = plan.method
        let horizon: Horizon? = plan.groupSequential.plannedUsers.map(Horizon.users) ?? plan.maximumRuntimeDays.map(Horizon.days)
        switch requested {
        case .fixed:
            return MethodChoice(requested: requested, method: .fixed, reason: "the plan asks for a fixed-horizon test, valid at one look at the planned sample")
        case .sequential:
            return MethodChoice(requested: requested, method: .sequential, reason: "the plan asks for confidence sequences, valid however often the results are looked at")
        case .groupSequential, .auto:
            guard let horizon else {
                if requested == .groupSequential {
                    throw AnalysisError("a group-sequential test needs a horizon: the planned users over all arms, or a maximum runtime in days", remedy: .planAHorizon)
                }
                return MethodChoice(requested: requested, method: .sequential,
                                    reason: "the plan has no horizon (planned users or a maximum runtime), so the always-valid confidence sequence is used; a group-sequential test over a planned horizon would need fewer users")
            }
            let design = GroupSequentialDesign(alpha: plan.alpha, spending: plan.groupSequential.spending, twoSided: true)
            let built = looks(plan, data: data, horizon: horizon)
            guard !built.looks.isEmpty else {
                return MethodChoice(requested: requested, method: .sequential, reason: "no user has arrived yet, so there is nothing to look at")
            }
            if let spentAt = built.spentAt {
                let when = spentAt.time.map { " on \(formatTimestamp($0).prefix(10))" } ?? ""
                return MethodChoice(requested: requested, method: .sequential,
                                    reason: "the group-sequential design was spent at its final look\(when), at the horizon of \(horizon.text); later looks use the always-valid confidence sequence, which stays valid however long the experiment runs",
                                    warning: "The experiment ran past its planned horizon (\(horizon.text)): the group-sequential test ended at its final look\(when); this report uses the confidence sequence instead.")
            }
            let monitoring = GroupSequentialMonitoring(design: design, horizon: horizon, looks: built.looks, times: built.times,
                                                       boundaries: design.boundaries(built.looks),
                                                       isFinal: (built.looks.last?.spendingTime ?? 0) >= 1, note: built.note)
            let why = requested == .auto ? "the plan has a horizon (\(horizon.text)), so" : "as the plan asks,"
            let count = built.looks.count
            return MethodChoice(requested: requested, method: .groupSequential,
                                reason: "\(why) a group-sequential test with \(design.spending.title) alpha spending is used: valid at each of the \(count) look\(count == 1 ? "" : "s") so far (\(plan.groupSequential.looks.name)), with nearly the power of a fixed-horizon test at the horizon",
                                monitoring: monitoring)
        }
    }

    /// The looks so far on the horizon's scale, the report's last; `spentAt` is the final look when the report comes
    /// after it (the design is used up).
    static func looks(_ plan: AnalysisPlan, data: ExperimentData, horizon: Horizon)
        -> (looks: [Look], times: [Int64?], note: String?, spentAt: (time: Int64?, index: Int)?) {
        let users = Double(data.variants.reduce(0) { $0 + $1.users })
        guard users > 0 else { return ([], [], nil, nil) }
        let day = 86_400_000_000.0
        var candidates: [(information: Double, days: Double, time: Int64?)] = []
        var note: String?
        let start = plan.start ?? data.firstTimestamp, now = plan.asOf ?? data.lastTimestamp
        if let start, let now, !data.newUsersByHour.isEmpty {
            var times: [Int64] = []
            switch plan.groupSequential.looks {
            case .daily, .weekdays, .recorded:
                var t = start + Int64(day)
                while t < now {
                    if plan.groupSequential.looks != .weekdays || isWeekday(t - 1) { times.append(t) }
                    t += Int64(day)
                }
                if plan.groupSequential.looks == .recorded {
                    note = "no recorded looks were given (the data do not come from a gateway's store), so a look at the end of each day is assumed"
                }
            case .times(let list, _):
                times = list.filter { $0 > start && $0 < now }.sorted()
            }
            for t in times { candidates.append((data.users(before: t) ?? 0, Double(t - start) / day, t)) }
            candidates.append((users, Double(now - start) / day, now))
        } else if let days = plan.runtimeDays ?? data.observedDays, days > 0 {
            // No arrival times: a look at the end of each day, users arriving evenly.
            var k = 1.0
            while k < days {
                candidates.append((users * k / days, k, nil))
                k += 1
            }
            candidates.append((users, days, nil))
            note = "the data have no arrival times, so earlier looks are taken at the end of each day with users arriving evenly"
        } else {
            candidates.append((users, 0, nil))
            note = "the data have no timestamps, so this report is taken as the first look; the group-sequential test is valid only if it is"
        }
        func spendingTime(_ c: (information: Double, days: Double, time: Int64?)) -> Double {
            switch horizon {
            case .users(let n): return c.information / n
            case .days(let d): return c.days / d
            }
        }
        var looks: [Look] = [], times: [Int64?] = []
        for c in candidates where c.information > 0 {
            let look = Look(information: c.information, spendingTime: spendingTime(c))
            // A look with no new users or too close to the one before replaces it.
            if let last = looks.last, look.information <= last.information || look.spendingTime - last.spendingTime < closestLooks {
                looks[looks.count - 1] = Look(information: max(look.information, last.information), spendingTime: max(look.spendingTime, last.spendingTime))
                times[times.count - 1] = c.time
                continue
            }
            looks.append(look)
            times.append(c.time)
        }
        // A look within a hair of the horizon (the last event a moment before the planned end) is the final one.
        for k in looks.indices where looks[k].spendingTime >= 1 - closestLooks && looks[k].spendingTime < 1 {
            looks[k].spendingTime = 1
        }
        if let final = looks.firstIndex(where: { $0.spendingTime >= 1 }), final < looks.count - 1 {
            return (looks, times, note, (times[final], final))
        }
        return (looks, times, note, nil)
    }

    /// Monday to Friday (UTC) at `time`.
    static func isWeekday(_ time: Int64) -> Bool {
        let days = time >= 0 ? time / 86_400_000_000 : (time + 1) / 86_400_000_000 - 1
        // 1970-01-01 was a Thursday (index 3 with Monday 0).
        let weekday = ((days + 3) % 7 + 7) % 7
        return weekday < 5
    }
}
