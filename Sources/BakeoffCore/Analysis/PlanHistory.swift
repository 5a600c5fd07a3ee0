import BakeoffStatistics

/// An experiment's plan as flat, ordered settings ("alpha" → "0.05"), so that two plans can be compared
/// setting by setting and a change after the start can be shown in the report.
///
/// Why flat text: the gateway records a snapshot each time it starts with a plan that differs from the
/// last one recorded, and the report lists what changed; the text form is what the store keeps.
public struct PlanSnapshot: Sendable, Equatable {
    public var settings: [Setting]

    public struct Setting: Sendable, Equatable {
        public var key: String
        public var value: String

        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(settings: [Setting]) { self.settings = settings }

    /// The settings a plan fixes before the start: split, control, alpha, power, MDE, method, correction,
    /// runtime bounds, and each metric's definition, role and margin.
    public init(config: ExperimentConfig, allocation: Allocation?, control: String?, defaultMethod: TestMethod) {
        var s: [Setting] = []
        func add(_ key: String, _ value: String?) { if let value { s.append(Setting(key: key, value: value)) } }
        let plan = config.plan
        add("split", (allocation ?? config.allocation).map { $0.arms.map { "\($0.name)=\(JSONWriter.number($0.weight))" }.joined(separator: ", ") })
        add("control", control ?? config.control)
        add("alpha", JSONWriter.number(plan.alpha))
        add("power", JSONWriter.number(plan.power))
        add("primary_metric", config.primaryMetric ?? config.metrics.first { $0.role == .primary }?.name)
        if let mde = config.minimumDetectableEffect {
            add(config.minimumDetectableEffectIsRelative ? "mde_relative" : "mde", JSONWriter.number(mde))
        }
        let method = config.method ?? defaultMethod
        add("method", method.rawValue)
        if method == .sequential { add("sequential_tuning", JSONWriter.number(plan.sequentialTuning)) }
        if method == .groupSequential || method == .auto {
            add("spending", plan.groupSequential.spending.name)
            if plan.groupSequential.futility { add("futility", "non-binding") }
            add("planned_users", plan.groupSequential.plannedUsers.map(JSONWriter.number))
            switch plan.groupSequential.looks {
            case .daily, .weekdays, .recorded: add("looks", plan.groupSequential.looks.name)
            case .times(let times, let recorded): add("looks", recorded ? "recorded" : times.map(formatTimestamp).joined(separator: ", "))
            }
        }
        add("correction", plan.correction.configName)
        add("prior", config.prior.map { "mean \(JSONWriter.number($0.mean)), variance \(JSONWriter.number($0.variance))" })
        add("min_runtime_days", JSONWriter.number(plan.minimumRuntimeDays) + (plan.fullWeeks ? " (full weeks)" : ""))
        add("max_runtime_days", plan.maximumRuntimeDays.map(JSONWriter.number))
        add("start", config.start.map(formatTimestamp))
        for m in config.metrics {
            var parts = [m.kind.rawValue, "\(m.level.rawValue) level", "goal \(m.goal.rawValue)", m.role.rawValue, Self.describe(m.source)]
            if let q = m.quantile { parts.append("quantile \(JSONWriter.number(q))") }
            if let margin = m.margin {
                parts.append(margin.isRelative ? "margin \(JSONWriter.number(margin.value * 100))%" : "margin \(JSONWriter.number(margin.value))")
            }
            if let rank = m.rankTest { parts.append(rank.rawValue) }
            if !m.varianceReduction { parts.append("no CUPED") }
            // Bounds decide which values count; the built-in ones (CSAT 1-5) are part of the metric's definition.
            if let b = m.bounds, b != Metric.builtIn.first(where: { $0.name == m.name })?.bounds {
                parts.append(b.integers ? "scale \(JSONWriter.number(b.lower))-\(JSONWriter.number(b.upper))" : "values \(JSONWriter.number(b.lower)) to \(JSONWriter.number(b.upper))")
            }
            add("metric \(m.name)", parts.joined(separator: ", "))
        }
        settings = s
    }

    private static func describe(_ source: MetricSource) -> String {
        switch source {
        case .feedback(let name): return "feedback \(name)"
        case .turns: return "turns"
        case .repeatUsage: return "repeat usage"
        case .errors: return "errors"
        case .field(let f): return "field \(f.rawValue)"
        }
    }

    /// The live plan these settings describe (split, control, alpha, power, primary metric, method, correction,
    /// runtime bounds, start, MDE): what a reader of the store without the gateway's config analyses with.
    /// A setting it lacks keeps the live default (the `auto` method); the metrics are not in it.
    public var livePlan: AnalysisPlan {
        var plan = AnalysisPlan()
        plan.method = .auto
        let settings = Dictionary(self.settings.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
        if let split = settings["split"] { plan.allocation = try? Allocation(parsing: split) }
        if let control = settings["control"] { plan.control = control }
        if let alpha = settings["alpha"].flatMap(Double.init) { plan.alpha = alpha }
        if let power = settings["power"].flatMap(Double.init) { plan.power = power }
        if let primary = settings["primary_metric"] { plan.primaryMetric = primary }
        if let method = settings["method"].flatMap(TestMethod.init(rawValue:)) { plan.method = method }
        if let tuning = settings["sequential_tuning"].flatMap(Double.init) { plan.sequentialTuning = tuning }
        if let spending = settings["spending"].flatMap(AlphaSpending.init(name:)) { plan.groupSequential.spending = spending }
        if let users = settings["planned_users"].flatMap(Double.init) { plan.groupSequential.plannedUsers = users }
        plan.groupSequential.futility = settings["futility"] != nil
        switch settings["looks"] {
        case "daily"?: plan.groupSequential.looks = .daily
        case "weekdays"?: plan.groupSequential.looks = .weekdays
        case "recorded"?: plan.groupSequential.looks = .recorded
        case let text?:
            let times = text.split(separator: ",").compactMap { parseTime(String($0.drop { $0 == " " })) }
            if !times.isEmpty { plan.groupSequential.looks = .times(times) }
        case nil: break
        }
        if let correction = settings["correction"].flatMap(Correction.init(configName:)) { plan.correction = correction }
        if let text = settings["min_runtime_days"], let days = Double(text.split(separator: " ").first ?? "") {
            plan.minimumRuntimeDays = days
            plan.fullWeeks = text.contains("full weeks")
        }
        if let days = settings["max_runtime_days"].flatMap(Double.init) { plan.maximumRuntimeDays = days }
        if let start = settings["start"].flatMap(parseTime) { plan.start = start }
        if let mde = settings["mde"].flatMap(Double.init) { plan.minimumDetectableEffect = mde }
        if let mde = settings["mde_relative"].flatMap(Double.init) {
            plan.minimumDetectableEffect = mde
            plan.minimumDetectableEffectIsRelative = true
        }
        return plan
    }

    /// One setting per line, key and value separated by a tab.
    public var text: String {
        settings.map { "\($0.key)\t\($0.value)" }.joined(separator: "\n")
    }

    /// Reads `text`; lines without a tab are skipped.
    public init(text: String) {
        settings = text.split(separator: "\n").compactMap { line in
            guard let tab = line.firstIndex(of: "\t") else { return nil }
            return Setting(key: String(line[..<tab]), value: String(line[line.index(after: tab)...]))
        }
    }

    /// What changed from `old` to this plan, one entry per setting: "alpha: 0.05 → 0.1".
    public func changes(from old: PlanSnapshot) -> [String] {
        var out: [String] = []
        let before = Dictionary(old.settings.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(settings.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        for s in settings {
            if let was = before[s.key] {
                if was != s.value { out.append("\(s.key): \(was) → \(s.value)") }
            } else {
                out.append("\(s.key): added (\(s.value))")
            }
        }
        for s in old.settings where after[s.key] == nil { out.append("\(s.key): removed (was \(s.value))") }
        return out
    }

    /// The changes made after the experiment started, from the recorded snapshots (oldest first).
    ///
    /// A snapshot recorded at or before `start` (the first request, or the plan's start) is the plan
    /// the experiment started with; each later snapshot that differs from the one before is a change.
    public static func changesAfterStart(_ history: [(timestamp: Int64, snapshot: PlanSnapshot)], start: Int64?) -> [PlanChange] {
        guard let start else { return [] }
        var out: [PlanChange] = []
        var previous: PlanSnapshot?
        for entry in history.sorted(by: { $0.timestamp < $1.timestamp }) {
            defer { previous = entry.snapshot }
            guard entry.timestamp > start, let previous else { continue }
            let changes = entry.snapshot.changes(from: previous)
            if !changes.isEmpty { out.append(PlanChange(timestamp: entry.timestamp, changes: changes)) }
        }
        return out
    }
}
