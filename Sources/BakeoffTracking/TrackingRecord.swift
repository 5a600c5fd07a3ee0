import BakeoffCore
import BakeoffStatistics

/// What one run records in MLflow: parameters, metrics, tags and files, under keys MLflow accepts.
///
/// Built by `TrackingRecord.analysis` and `.eval` from a report; the recorder only sends it. Keys and values are
/// made valid as they are added (`RecordBuilder`), so a send never fails on a name a user chose.
public struct TrackingRecord: Sendable, Equatable {
    public struct Entry<Value: Sendable & Equatable>: Sendable, Equatable {
        public var key: String
        public var value: Value
        public init(_ key: String, _ value: Value) {
            self.key = key
            self.value = value
        }
    }

    /// A file attached to the run.
    public struct Artifact: Sendable, Equatable {
        public var name: String
        public var contentType: String
        public var bytes: [UInt8]
        public init(name: String, contentType: String, text: String) {
            self.name = name
            self.contentType = contentType
            self.bytes = Array(text.utf8)
        }
    }

    /// The run's name (also its `mlflow.runName` tag).
    public var runName: String
    /// The MLflow experiment the run goes into unless one is named: the Bakeoff experiment's name.
    public var experiment: String
    public var params: [Entry<String>] = []
    public var metrics: [Entry<Double>] = []
    public var tags: [Entry<String>] = []
    public var artifacts: [Artifact] = []
    /// Keys whose value was cut to MLflow's length limit (the full text is in the report artifacts).
    public var truncated: [String] = []

    public init(runName: String, experiment: String) {
        self.runName = runName
        self.experiment = experiment.isEmpty ? "bakeoff" : experiment
    }
}

/// Where a run comes from: the command, what it read, the tool's version and who ran it.
public struct RunSource: Sendable, Equatable {
    /// "bakeoff analyze", "bakeoff eval": the run's `mlflow.source.name`.
    public var command: String
    /// The input as given (an event log's path, a store, a summary file, an eval dataset).
    public var input: String?
    public var version: String
    /// The run's `mlflow.user` (MLflow's own client sends the login name).
    public var user: String?

    public init(command: String, input: String?, version: String, user: String?) {
        self.command = command
        self.input = input
        self.version = version
        self.user = user
    }
}

/// MLflow's limits on what a run holds and on one `runs/log-batch` call (mlflow/utils/validation.py).
public enum MLflowLimits {
    public static let keyLength = 250
    public static let paramValueLength = 6000
    public static let tagValueLength = 8000
    public static let metricsPerBatch = 1000
    public static let paramsPerBatch = 100
    public static let tagsPerBatch = 100
    /// Metrics, params and tags together.
    public static let entitiesPerBatch = 1000
    /// The server refuses a log-batch body above 1,000,000 characters; batches stay well below.
    public static let batchCharacters = 900_000
}

/// A key MLflow accepts, made from parts joined by "/".
///
/// MLflow takes alphanumerics, `_ - . space /` (colons too, except on Windows servers) and refuses a key that
/// would name another file ("a//b", "./a", "a/..") or is longer than 250 characters. Each part's other
/// characters become `_`; a part that is empty, "." or ".." becomes "_"; a key too long keeps its first 241
/// characters and a hash of the whole, so two long keys stay apart.
public enum MLflowKey {
    public static func make(_ parts: [String]) -> String { fitted(parts.map(part).joined(separator: "/")) }

    /// A valid key within the length limit.
    static func fitted(_ key: String) -> String {
        guard key.unicodeScalars.count > MLflowLimits.keyLength else { return key }
        return String(String.UnicodeScalarView(key.unicodeScalars.prefix(MLflowLimits.keyLength - 9))) + "_" + hash(key)
    }

    static func part(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "_" || u == "-" || u == "." || u == " "
            out.append(ok ? u : "_")
        }
        let part = String(out)
        return part.isEmpty || part == "." || part == ".." ? "_" : part
    }

    /// FNV-1a of the UTF-8 bytes, 8 hex digits.
    static func hash(_ text: String) -> String {
        var h: UInt32 = 2_166_136_261
        for b in text.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}

/// Adds entries to a record: keys made valid, values cut to MLflow's limits, nil and non-finite numbers left
/// out, and a key given twice kept once (same value) or numbered ("_2", different value).
package struct RecordBuilder {
    package var record: TrackingRecord
    private var used: [String: String] = [:]

    package init(runName: String, experiment: String) { record = TrackingRecord(runName: runName, experiment: experiment) }

    package mutating func param(_ parts: [String], _ value: String?) {
        guard let value, let key = unique(parts, "p" + value) else { return }
        record.params.append(.init(key, cut(value, MLflowLimits.paramValueLength, key)))
    }

    package mutating func param(_ parts: [String], _ value: Double?) { param(parts, value.map(Self.number)) }
    package mutating func param(_ parts: [String], _ value: Int?) { param(parts, value.map(String.init)) }

    package mutating func metric(_ parts: [String], _ value: Double?) {
        guard let value, value.isFinite, let key = unique(parts, "m" + String(value)) else { return }
        record.metrics.append(.init(key, value))
    }

    package mutating func metric(_ parts: [String], _ value: Int?) { metric(parts, value.map(Double.init)) }

    package mutating func tag(_ parts: [String], _ value: String?) {
        guard let value, let key = unique(parts, "t" + value) else { return }
        record.tags.append(.init(key, cut(value, MLflowLimits.tagValueLength, key)))
    }

    /// The key for `parts`, or nil when it already holds the same value. Params, metrics and tags each have
    /// their own names in MLflow; `kind` (the value's first character) keeps them apart here.
    private mutating func unique(_ parts: [String], _ kindAndValue: String) -> String? {
        let base = MLflowKey.make(parts)
        let kind = String(kindAndValue.prefix(1))
        var key = base, n = 1
        while let existing = used[kind + key] {
            if existing == kindAndValue { return nil }
            n += 1
            key = MLflowKey.fitted(base + "_\(n)")
        }
        used[kind + key] = kindAndValue
        return key
    }

    /// `value` cut to `limit` characters (as MLflow counts them: Unicode scalars), the last one an ellipsis.
    private mutating func cut(_ value: String, _ limit: Int, _ key: String) -> String {
        guard value.unicodeScalars.count > limit else { return value }
        record.truncated.append(key)
        return String(String.UnicodeScalarView(value.unicodeScalars.prefix(limit - 1))) + "…"
    }

    /// A parameter's number as people write it: 0.05, 14, 1e-06.
    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}

extension RecordBuilder {
    /// The tags every run has: MLflow's own (name, source, user, description) and the tool's.
    mutating func standardTags(_ source: RunSource, command: String, schema: String, note: String) {
        tag(["mlflow.runName"], record.runName)
        tag(["mlflow.source.name"], source.command)
        tag(["mlflow.source.type"], "LOCAL")
        tag(["mlflow.user"], source.user)
        tag(["mlflow.note.content"], note)
        tag(["bakeoff.command"], command)
        tag(["bakeoff.version"], source.version)
        tag(["bakeoff.schema"], schema)
    }

    /// One arm against the control: `NAME/ARM/lift`, `lift_ci_low`, `lift_ci_high`, `relative_lift`,
    /// `relative_lift_ci_low`, `relative_lift_ci_high`, `p_value`, `adjusted_p_value`.
    mutating func comparison(_ name: String, _ arm: String, lift: Double?, interval: ConfidenceInterval?, relative: Double?,
                             relativeInterval: RelativeInterval?, p: Double?, adjustedP: Double?) {
        metric([name, arm, "lift"], lift)
        metric([name, arm, "lift_ci_low"], interval?.lower)
        metric([name, arm, "lift_ci_high"], interval?.upper)
        metric([name, arm, "relative_lift"], relative)
        if case .bounded(let lo, let hi)? = relativeInterval {
            metric([name, arm, "relative_lift_ci_low"], lo)
            metric([name, arm, "relative_lift_ci_high"], hi)
        }
        metric([name, arm, "p_value"], p)
        metric([name, arm, "adjusted_p_value"], adjustedP)
    }
}
