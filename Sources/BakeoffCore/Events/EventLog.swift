import Foundation

/// A problem in an event log, located by file and line.
public struct EventLogError: RemedyCarrying, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var column: Int?
    public var message: String
    public var remedy: Remedy?

    public init(path: String, line: Int? = nil, column: Int? = nil, message: String, remedy: Remedy? = nil) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.remedy = remedy
    }

    public var description: String {
        var s = path
        if let line { s += ":\(line)" }
        if let column { s += ":\(column)" }
        return s + ": " + message
    }
}

/// Reads an event log into the per-variant sums of an experiment.
public enum EventLog {
    public struct Options: Sendable {
        public var experiment: String?
        public var metrics: [Metric] = Metric.builtIn
        /// Count and report malformed lines instead of stopping at the first.
        public var skipInvalid = false
        /// Called after each block with bytes read and the file size (nil for a pipe).
        public var progress: (@Sendable (Int64, Int64?) -> Void)?
        /// Pieces to read a large log in, to keep memory fixed; nil chooses by the file's size (in memory
        /// below 512 MB, then one piece per 128 MB); 1 reads it in memory.
        public var partitions: Int?
        /// The experiment's start, microseconds since 1970: requests before it are the pre-experiment
        /// period, read only for the covariates of variance reduction (see `EventAggregator.init`). Nil:
        /// every event is part of the experiment.
        public var experimentStart: Int64?
        /// Only events before this time (microseconds since 1970): the analysis as it stood then.
        public var until: Int64?
        /// Pre-experiment values per user from a covariate file (`CovariateTable.load(path:metrics:)`),
        /// for the metrics it lists.
        public var covariates: CovariateTable?
        public init() {}
    }

    public static func aggregate(path: String, options: Options) throws -> ExperimentData {
        var size: Int64 = 0
        var st = stat()
        if path != "-", stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { size = Int64(st.st_size) }
        let partitions = options.partitions ?? PartitionedLog.automaticPartitions(fileBytes: size)
        if partitions > 1, path != "-", let data = try PartitionedLog.aggregate(path: path, options: options, partitions: partitions) {
            let events = data.requestEvents + data.feedbackEvents + data.dataQuality.linesSkipped
                + data.dataQuality.qaRequestsExcluded + data.dataQuality.qaFeedbackExcluded
                + data.dataQuality.preExperimentRequests + data.dataQuality.preExperimentFeedback
                + data.dataQuality.otherExperiments.reduce(0) { $0 + $1.count }
            return try check(data, path: path, options: options, empty: events == 0)
        }
        return try aggregateInMemory(path: path, options: options)
    }

    static func aggregateInMemory(path: String, options: Options) throws -> ExperimentData {
        var reader: LineReader
        do { reader = try LineReader(path: path) } catch { throw error }
        var lines = LineAggregator(source: path, options: options)
        let total = reader.totalBytes
        let progress = options.progress
        do throws(ReadError<EventLogError>) {
            try reader.forEachLine(progress: progress.map { p in { p($0, total) } }) { (line, number) throws(EventLogError) in
                try lines.add(line, number: number)
            }
        } catch {
            switch error {
            case .file(let f): throw f
            case .body(let e): throw e
            }
        }
        return try lines.finish()
    }

    /// Folds log lines, handed over one by one, into an experiment's data: the one path from text to
    /// `ExperimentData` for every source of lines (a file, the event store).
    ///
    /// Why public: the event store reads its lines from SQLite and must analyse them exactly as the
    /// exported log would be analysed.
    public struct LineAggregator: ~Copyable {
        /// Names the source in errors (a file path, a database path).
        public let source: String
        private let skipInvalid: Bool
        private var parser = EventParser()
        private var aggregator: EventAggregator
        private var skipped = 0
        private var examples: [String] = []
        private var blank = 0
        private var lines = 0
        private let options: Options

        public init(source: String, options: Options) {
            self.source = source
            self.options = options
            skipInvalid = options.skipInvalid
            aggregator = EventAggregator(metrics: options.metrics, experiment: options.experiment,
                                         experimentStart: options.experimentStart, covariates: options.covariates, until: options.until)
        }

        /// Adds one line (without its newline); `number` is its 1-based place, used in errors.
        public mutating func add(_ line: UnsafeRawBufferPointer, number: Int) throws(EventLogError) {
            var none: [EventAggregator] = []
            try add(line, number: number, alsoTo: &none)
        }

        /// Adds one line to this aggregator and to `cuts` (made by `cut(at:)`), parsing it once; `observe` sees
        /// each parsed event first.
        ///
        /// A line the aggregator rejects is offered to the cuts as well: each keeps the place of every line
        /// (for ties between feedback timestamps) as a whole read of the log does.
        public mutating func add(_ line: UnsafeRawBufferPointer, number: Int, alsoTo cuts: inout [EventAggregator],
                                 observe: ((EventView) -> Void)? = nil) throws(EventLogError) {
            lines = number
            if line.count == 0 || EventLog.isBlank(line) { blank += 1; return }
            let event: EventView
            do throws(EventParseError) { event = try parser.parse(line) } catch {
                try skip(EventLogError(path: source, line: number, column: error.column, message: error.message), number)
                return
            }
            try add(parsed: event, number: number, alsoTo: &cuts, observe: observe)
        }

        /// Adds one line parsed already (on another thread: `ParsedLines`), as `add(_:number:alsoTo:observe:)`.
        public mutating func add(parsed event: EventView, number: Int, alsoTo cuts: inout [EventAggregator],
                                 observe: ((EventView) -> Void)? = nil) throws(EventLogError) {
            lines = number
            observe?(event)
            for i in cuts.indices {
                do throws(EventRejection) { try cuts[i].add(event) } catch {}
            }
            do throws(EventRejection) { try aggregator.add(event) } catch {
                try skip(EventLogError(path: source, line: number, message: error.message), number)
            }
        }

        /// Sorts what `snapshot` would otherwise sort in full each time (see `EventAggregator.prepare`).
        public mutating func prepare() { aggregator.prepare() }

        /// The aggregator as it stands, leaving out events at or after `cut` from now on (see
        /// `EventAggregator.cut(at:)`).
        public func cut(at cut: Int64) -> EventAggregator { aggregator.cut(at: cut) }

        /// The data so far, as `finish` would give it, without ending the read.
        public func snapshot() throws -> ExperimentData { try context.data(of: aggregator) }

        /// What the read knows besides the aggregation (lines skipped, the source, the options), to finish an
        /// aggregation of it on another thread.
        public var context: Context {
            Context(source: source, options: options, skipped: skipped, examples: examples, blank: blank, lines: lines)
        }

        /// See `context`.
        public struct Context: Sendable {
            let source: String
            let options: Options
            let skipped: Int
            let examples: [String]
            let blank: Int
            let lines: Int

            /// The data of `aggregator` (this read's, or a cut of it), after the checks every way of reading shares.
            public func data(of aggregator: EventAggregator) throws -> ExperimentData {
                var data = aggregator.finish()
                data.dataQuality.linesSkipped = skipped
                data.dataQuality.skippedExamples = examples
                data.dataQuality.blankLines = blank
                var options = self.options
                if let until = aggregator.until { options.until = until }
                return try EventLog.check(data, path: source, options: options, empty: lines == 0 || lines == blank)
            }
        }

        private mutating func skip(_ error: EventLogError, _ number: Int) throws(EventLogError) {
            guard skipInvalid else { throw error }
            skipped += 1
            if examples.count < 5 { examples.append("line \(number): \(error.message)") }
        }

        /// The data, after the checks every way of reading shares (an empty source, an unknown or ambiguous
        /// experiment, nothing valid).
        public consuming func finish() throws -> ExperimentData { try snapshot() }
    }

    /// The checks every way of reading shares: an empty log, an unknown or ambiguous experiment, nothing valid.
    package static func check(_ data: ExperimentData, path: String, options: Options, empty: Bool) throws -> ExperimentData {
        let skipped = data.dataQuality.linesSkipped
        let examples = data.dataQuality.skippedExamples
        if empty {
            throw EventLogError(path: path, message: "no events: the file is empty")
        }
        if let start = options.experimentStart, data.requestEvents == 0, data.dataQuality.preExperimentRequests > 0 {
            throw EventLogError(path: path, message: "no requests at or after the experiment start \(formatTimestamp(start)): all \(data.dataQuality.preExperimentRequests) requests are before it")
        }
        if let wanted = options.experiment, data.requestEvents == 0 && data.feedbackEvents == 0 {
            let others = data.dataQuality.otherExperiments.map { "\($0.name) (\($0.count) events)" }.joined(separator: ", ")
            throw EventLogError(path: path, message: "experiment \"\(wanted)\" not found" + (others.isEmpty ? "" : "; the log holds: \(others)"))
        }
        if options.experiment == nil, !data.dataQuality.otherExperiments.isEmpty {
            let all = ([NamedCount(name: data.experiment, count: data.requestEvents + data.feedbackEvents)] + data.dataQuality.otherExperiments)
                .sorted { $0.count > $1.count }
            let listed = all.prefix(5).map { "\($0.name) (\($0.count) events)" }.joined(separator: ", ")
            let rest = all.count > 5 ? " and \(all.count - 5) more with \(all.dropFirst(5).reduce(0) { $0 + $1.count }) events" : ""
            throw EventLogError(path: path, message: "the log holds several experiments: \(listed)\(rest); choose one", remedy: .chooseExperiment)
        }
        if skipped > 0 && data.requestEvents == 0 {
            throw EventLogError(path: path, message: "no valid request events (\(skipped) lines skipped as invalid; first: \(examples.first ?? ""))")
        }
        return data
    }

    fileprivate static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        for b in line where b != 0x20 && b != 0x09 && b != 0x0D { return false }
        return true
    }
}
