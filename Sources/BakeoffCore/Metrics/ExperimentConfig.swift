import Foundation
import BakeoffStatistics

/// An experiment's plan as a JSON file: its name, split, control, alpha, power, metrics and their roles.
///
/// Example (all keys optional):
/// ```json
/// {"experiment": "support-bot-v2", "control": "control",
///  "variants": [{"name": "control", "weight": 0.8}, {"name": "treatment", "weight": 0.2}],
///  "alpha": 0.05, "power": 0.8, "primary_metric": "task_completion", "mde_relative": 0.05,
///  "metrics": [{"name": "resolved", "feedback": "resolved", "level": "conversation",
///               "kind": "proportion", "goal": "up", "role": "secondary"}]}
/// ```
public struct ExperimentConfig: Sendable {
    public var experiment: String?
    public var control: String?
    public var allocation: Allocation?
    public var alpha: Double?
    public var power: Double?
    public var primaryMetric: String?
    public var minimumDetectableEffect: Double?
    public var minimumDetectableEffectIsRelative = false
    public var metrics: [Metric] = Metric.builtIn
    /// Nil: the caller's default (fixed horizon for `analyze`, sequential for the gateway's live report).
    public var method: TestMethod?
    public var sequentialTuning: Double?
    /// The group-sequential design (`planned_users`, `group_sequential`); nil when the config says nothing of it.
    public var groupSequential: GroupSequentialPlan?
    public var correction: Correction?
    public var prior: GaussianPrior?
    public var minimumRuntimeDays: Double?
    public var fullWeeks: Bool?
    public var maximumRuntimeDays: Double?
    /// The experiment's start (microseconds since the epoch): earlier events are the CUPED pre-period.
    public var start: Int64?
    /// A CUPED covariate file (CSV user_id,metric,value[,units]); `load` resolves a relative path against the config's folder.
    public var covariatesPath: String?

    public init() {}

    public static func load(path: String) throws -> ExperimentConfig {
        var config = try parse(try FileError.contents(of: path), source: path)
        // A covariate file named in the config is found next to it.
        if let file = config.covariatesPath, !file.hasPrefix("/"), let slash = path.lastIndex(of: "/") {
            config.covariatesPath = String(path[...slash]) + file
        }
        return config
    }

    public static func parse(_ data: Data, source: String) throws(ConfigError) -> ExperimentConfig {
        var root = try ConfigObject.parse(data, source: source)
        return try parse(&root, readsPlan: true)
    }

    /// Reads a config from an object that may sit inside a larger file (errors carry `root.path` as prefix).
    ///
    /// With `readsPlan` false, `experiment`, `control`, `split` and `variants` are not read (they are then
    /// unknown keys): the gateway takes them from its own experiment entry.
    package static func parse(_ root: inout ConfigObject, readsPlan: Bool) throws(ConfigError) -> ExperimentConfig {
        var config = ExperimentConfig()
        if readsPlan {
            config.experiment = try root.string("experiment")
            config.control = try root.string("control")
        }
        config.alpha = try root.double("alpha", in: 1e-12...0.5)
        config.power = try root.double("power", in: 0.01...0.999999)
        if readsPlan, let split = try root.double("split") {
            do { config.allocation = try Allocation(split: split) } catch { throw root.fail("split", error.message) }
        }
        if readsPlan, let variants = try root.objects("variants") {
            if config.allocation != nil { throw root.fail("variants", "give either \"split\" or \"variants\", not both") }
            var arms: [Allocation.Arm] = []
            for var v in variants {
                guard let name = try v.string("name") else { throw v.fail("name", "each variant needs a \"name\"") }
                guard let weight = try v.double("weight", in: 0...1) else { throw v.fail("weight", "each variant needs a \"weight\"") }
                try v.finish()
                arms.append(Allocation.Arm(name: name, weight: weight))
            }
            do { config.allocation = try Allocation(arms: arms) } catch { throw root.fail("variants", error.message) }
        }
        if let mde = try root.double("mde") {
            config.minimumDetectableEffect = mde
        }
        if let mde = try root.double("mde_relative") {
            if config.minimumDetectableEffect != nil { throw root.fail("mde_relative", "give either \"mde\" or \"mde_relative\", not both") }
            config.minimumDetectableEffect = mde
            config.minimumDetectableEffectIsRelative = true
        }
        config.method = try root.enumValue("method", TestMethod.self)
        config.sequentialTuning = try root.double("sequential_tuning", in: 1...1e12)
        config.groupSequential = try readGroupSequential(&root)
        if let name = try root.string("correction") {
            guard let correction = Correction(configName: name) else {
                throw root.fail("correction", "must be \"holm\" (Holm-Bonferroni), \"bh\" (Benjamini-Hochberg) or \"none\", got \"\(name)\"")
            }
            config.correction = correction
        }
        if var prior = try root.object("prior") {
            guard let mean = try prior.double("mean") else { throw prior.fail("mean", "a prior needs \"mean\" (the expected relative lift, e.g. 0)") }
            guard let variance = try prior.double("variance"), variance > 0 else {
                throw prior.fail("variance", "a prior needs a positive \"variance\" of the relative lift (e.g. 0.09 for a 30% standard deviation)")
            }
            try prior.finish()
            config.prior = GaussianPrior(mean: mean, variance: variance, scale: .relative)
        }
        config.minimumRuntimeDays = try root.double("min_runtime_days", in: 0...3650)
        config.fullWeeks = try root.bool("full_weeks")
        config.maximumRuntimeDays = try root.double("max_runtime_days", in: 1e-9...3650)
        if let maximum = config.maximumRuntimeDays {
            var bounds = AnalysisPlan()
            if let minimum = config.minimumRuntimeDays { bounds.minimumRuntimeDays = minimum }
            if let fullWeeks = config.fullWeeks { bounds.fullWeeks = fullWeeks }
            if maximum < bounds.effectiveMinimumRuntimeDays {
                throw root.fail("max_runtime_days", "\(JSONWriter.number(maximum)) is shorter than the minimum runtime (\(JSONWriter.number(bounds.effectiveMinimumRuntimeDays)) days\(bounds.fullWeeks ? ", \"min_runtime_days\" rounded up to full weeks" : ""))")
            }
        }
        if let text = try root.string("start") {
            guard let start = parseTime(text) else {
                throw root.fail("start", "\"\(text)\" is not an RFC 3339 time such as \"2026-11-01T00:00:00Z\"")
            }
            config.start = start
        }
        if let path = try root.string("covariates") {
            guard !path.isEmpty else { throw root.fail("covariates", "give the path of a CSV file user_id,metric,value[,units]") }
            config.covariatesPath = path
        }
        let builtIn = try root.bool("builtin_metrics") ?? true
        var metrics = builtIn ? Metric.builtIn : []
        if let entries = try root.objects("metrics") {
            for var entry in entries {
                let metric = try readMetric(&entry, existing: metrics)
                try entry.finish()
                if let i = metrics.firstIndex(where: { $0.name == metric.name }) { metrics[i] = metric } else { metrics.append(metric) }
                if metric.role == .primary {
                    for i in metrics.indices where metrics[i].name != metric.name && metrics[i].role == .primary {
                        metrics[i].role = .secondary
                    }
                }
            }
        }
        if let primary = try root.string("primary_metric") {
            guard let i = metrics.firstIndex(where: { $0.name == primary }) else {
                throw root.fail("primary_metric", "\"\(primary)\" is not a metric (metrics: \(metrics.map(\.name).joined(separator: ", ")))")
            }
            guard metrics[i].kind != .quantile else { throw root.fail("primary_metric", "a quantile metric cannot be primary yet") }
            guard metrics[i].goal != .none else {
                throw root.fail("primary_metric", "\"\(primary)\" has no goal direction; give it \"goal\": \"up\" or \"down\" in \"metrics\"")
            }
            for j in metrics.indices where metrics[j].role == .primary { metrics[j].role = .secondary }
            metrics[i].role = .primary
            config.primaryMetric = primary
        }
        if metrics.isEmpty { throw root.fail("metrics", "no metrics: set \"builtin_metrics\" to true or define some") }
        var seenFeedback: [String: MetricLevel] = [:]
        for m in metrics {
            if case .feedback(let name) = m.source {
                if let level = seenFeedback[name], level != m.level, level == .request || m.level == .request {
                    throw root.fail("metrics", "feedback \"\(name)\" is used both per request and per conversation; use one level")
                }
                seenFeedback[name] = m.level
            }
        }
        config.metrics = metrics
        try root.finish()
        return config
    }

    static func readMetric(_ o: inout ConfigObject, existing: [Metric]) throws(ConfigError) -> Metric {
        guard let name = try o.string("name"), !name.isEmpty else { throw o.fail("name", "each metric needs a \"name\"") }
        let base = existing.first { $0.name == name }
        let feedback = try o.string("feedback")
        let field = try o.enumValue("field", RequestField.self)
        if feedback != nil && field != nil { throw o.fail("field", "give either \"feedback\" or \"field\", not both") }
        let source: MetricSource
        if let feedback { source = .feedback(feedback) } else if let field { source = .field(field) } else if let base {
            source = base.source
        } else {
            throw o.fail("feedback", "a new metric needs \"feedback\" (a feedback name) or \"field\" (\(RequestField.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let kind = try o.enumValue("kind", MetricKind.self) ?? base?.kind ?? (field != nil ? .mean : .proportion)
        var level = try o.enumValue("level", MetricLevel.self) ?? base?.level ?? (field != nil ? .request : .conversation)
        if case .field = source {
            guard level == .request else { throw o.fail("level", "request fields are per request") }
        }
        if case .feedback = source, level == .user {
            throw o.fail("level", "feedback metrics are per \"conversation\" or per \"request\"")
        }
        if base == nil, case .field = source { level = .request }
        var quantile = base?.quantile
        if let q = try o.double("quantile") {
            guard q > 0 && q < 1 else { throw o.fail("quantile", "must be between 0 and 1, got \(q)") }
            quantile = q
        }
        if kind == .quantile {
            guard case .field = source else { throw o.fail("kind", "quantiles are computed from request fields (\"field\")") }
            guard quantile != nil else { throw o.fail("quantile", "a quantile metric needs \"quantile\" (for example 0.95)") }
        }
        let goal = try o.enumValue("goal", Goal.self) ?? base?.goal ?? .up
        let role = try o.enumValue("role", MetricRole.self) ?? base?.role ?? .secondary
        if role == .primary && kind == .quantile { throw o.fail("role", "a quantile metric cannot be primary yet") }
        if role != .secondary && goal == .none {
            throw o.fail("goal", "a \(role.rawValue) metric needs a direction: \"up\" or \"down\"")
        }
        let title = try o.string("title") ?? base?.title
        var metric = Metric(name: name, title: title, level: level, kind: kind, goal: goal, role: role, source: source,
                            quantile: kind == .quantile ? quantile : nil)
        metric.margin = base?.margin
        metric.rankTest = base?.rankTest
        metric.varianceReduction = base?.varianceReduction ?? true
        let absolute = try o.double("margin", in: 0...1e300)
        let relative = try o.double("margin_relative", in: 0...1e6)
        if absolute != nil && relative != nil { throw o.fail("margin_relative", "give either \"margin\" or \"margin_relative\", not both") }
        if let value = absolute ?? relative {
            guard role == .guardrail else {
                throw o.fail(absolute != nil ? "margin" : "margin_relative", "a margin applies to guardrails; give this metric \"role\": \"guardrail\"")
            }
            metric.margin = GuardrailMargin(value: value, isRelative: relative != nil)
        }
        if let test = try o.enumValue("rank_test", RankTest.self) {
            guard kind != .quantile else { throw o.fail("rank_test", "a rank test applies to per-unit scores, not to quantile metrics") }
            metric.rankTest = test
        }
        if let cuped = try o.bool("cuped") { metric.varianceReduction = cuped }
        metric.bounds = kind == .proportion ? nil : base?.bounds
        let scale = try o.doubles("scale")
        let lower = try o.double("min"), upper = try o.double("max")
        if scale != nil || lower != nil || upper != nil {
            let key = scale != nil ? "scale" : lower != nil ? "min" : "max"
            guard case .feedback = source else { throw o.fail(key, "value bounds apply to feedback metrics") }
            guard kind == .mean else { throw o.fail(key, "a \(kind == .proportion ? "yes/no metric takes 0 or 1" : "quantile metric has no feedback values"); bounds apply to \"kind\": \"mean\"") }
        }
        if let scale {
            guard lower == nil && upper == nil else { throw o.fail("scale", "give either \"scale\" (a rating scale of whole numbers) or \"min\"/\"max\", not both") }
            guard scale.count == 2, scale[0] < scale[1], scale.allSatisfy({ $0 == $0.rounded() && abs($0) <= 1e12 }) else {
                throw o.fail("scale", "must be [lowest, highest], two whole numbers with lowest < highest (e.g. [1, 5] for CSAT)")
            }
            metric.bounds = ValueBounds(lower: scale[0], upper: scale[1], integers: true)
        } else if lower != nil || upper != nil {
            let l = lower ?? ValueBounds.defaultNumeric.lower, u = upper ?? ValueBounds.defaultNumeric.upper
            guard l.isFinite, u.isFinite, l < u else {
                throw o.fail(lower != nil ? "min" : "max", "\"min\" must be below \"max\" (got \(JSONWriter.number(l)) and \(JSONWriter.number(u)))")
            }
            metric.bounds = ValueBounds(lower: l, upper: u, integers: false)
        }
        return metric
    }

    /// `planned_users` and the `group_sequential` object: spending function and looks.
    static func readGroupSequential(_ root: inout ConfigObject) throws(ConfigError) -> GroupSequentialPlan? {
        let planned = try root.double("planned_users", in: 2...1e12)
        guard var object = try root.object("group_sequential") else {
            return planned.map { var p = GroupSequentialPlan(); p.plannedUsers = $0; return p }
        }
        var plan = GroupSequentialPlan()
        plan.plannedUsers = planned
        if let name = try object.string("spending") {
            guard let spending = AlphaSpending(name: name) else {
                throw object.fail("spending", "must be \"obrien-fleming\", \"pocock\" or \"power:RHO\" (the power family alpha * t^RHO, RHO in (0, 20], e.g. \"power:3\"), got \"\(name)\"")
            }
            plan.spending = spending
        }
        plan.futility = try object.bool("futility") ?? false
        if let looks = object.take("looks") {
            if let name = looks.string {
                switch name {
                case "daily": plan.looks = .daily
                case "weekdays": plan.looks = .weekdays
                case "recorded": plan.looks = .recorded
                default:
                    throw object.fail("looks", "must be \"daily\", \"weekdays\", \"recorded\" (the reads of the live report and the dashboard, as the gateway's store keeps them) or an array of RFC 3339 times (the planned looks), got \"\(name)\"")
                }
            } else if let items = looks.array {
                var times: [Int64] = []
                for (i, item) in items.enumerated() {
                    guard let text = item.string, let t = parseTime(text) else {
                        throw ConfigError(source: object.source, path: "\(object.childPath("looks"))[\(i)]",
                                          message: "must be an RFC 3339 time such as \"2026-11-08T00:00:00Z\", got \(item.described)")
                    }
                    times.append(t)
                }
                guard !times.isEmpty else { throw object.fail("looks", "an array of looks needs at least one time") }
                plan.looks = .times(times.sorted())
            } else {
                throw object.fail("looks", "must be \"daily\", \"weekdays\", \"recorded\" or an array of RFC 3339 times, got \(looks.described)")
            }
        }
        try object.finish()
        return plan
    }

    /// The analysis plan this config describes, before command-line overrides.
    public var plan: AnalysisPlan {
        var plan = AnalysisPlan()
        if let alpha { plan.alpha = alpha }
        if let power { plan.power = power }
        plan.control = control
        plan.allocation = allocation
        plan.primaryMetric = primaryMetric
        plan.minimumDetectableEffect = minimumDetectableEffect
        plan.minimumDetectableEffectIsRelative = minimumDetectableEffectIsRelative
        if let method { plan.method = method }
        if let sequentialTuning { plan.sequentialTuning = sequentialTuning }
        if let groupSequential { plan.groupSequential = groupSequential }
        if let correction { plan.correction = correction }
        plan.prior = prior
        if let minimumRuntimeDays { plan.minimumRuntimeDays = minimumRuntimeDays }
        if let fullWeeks { plan.fullWeeks = fullWeeks }
        plan.maximumRuntimeDays = maximumRuntimeDays
        plan.start = start
        return plan
    }
}

extension FileError {
    /// A whole file's bytes, or the error naming why not ("no such file", "cannot be read").
    static func contents(of path: String) throws(FileError) -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError(path: path, message: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return data
    }
}
