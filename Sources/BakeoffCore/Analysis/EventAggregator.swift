#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BakeoffStatistics

/// An event that is well-formed JSON but not acceptable for the analysis (for example a proportion
/// feedback whose value is not 0 or 1).
public struct EventRejection: Error, Sendable, Equatable {
    public var message: String
}

/// Folds events, in file order, into the per-user sums every metric needs.
///
/// Why this shape: users are the randomization unit, so each metric is a ratio of per-user sums. The
/// aggregator keeps per-user state (plus compact per-conversation and per-request slots for "last
/// feedback" rules, and for each request field with a quantile metric the request's value and user, 12
/// bytes per request and field), never the events themselves, so a 10-million-line log streams through in
/// one pass. With an experiment start, the events before it go to a second aggregator of the same kind
/// (the pre-experiment period, for covariates).
/// It does no I/O: the caller reads lines and hands over `EventView`s.
public struct EventAggregator: Sendable {
    public let metrics: [Metric]
    /// The experiment analysed; nil until the first event when none was asked for.
    public var experiment: String? { filter.name }
    private var filter: ExperimentFilter

    // Names
    private var variants = InternTable(capacity: 8)
    private var unusedFeedback = InternTable(capacity: 8)
    private var unusedFeedbackCounts: [Int] = []

    // Users
    private var users = InternTable(capacity: 1 << 14)
    private var userFirstTs: [Int64] = []
    private var userFirstVariant: [UInt8] = []
    private var userVariantMask: [UInt64] = []
    private var userFirstDay: [Int32] = []
    private var userMultiDay: [Bool] = []
    /// Per user, per streamed metric: sum of values, units, sum of squares.
    private var userSums: [Double] = []

    // Conversations
    private var conversations = HashIndex(capacity: 1 << 14)
    private var conversationUser: [Int32] = []
    private var conversationTurns: [Int32] = []
    private var conversationFeedbackEvents: [UInt32] = []
    /// Whether requests of several users named this conversation (its units count for the first user).
    private var conversationShared: [Bool] = []
    private var conversationSlots: FeedbackSlots

    // Requests
    private var requests = HashIndex(capacity: 1 << 15)
    private var requestConversation: [Int32] = []
    private var requestFeedbackEvents: [UInt32] = []
    private var requestSlots: FeedbackSlots
    /// Conversation-level feedback that names a request not read yet: resolved at the end.
    private var pending: [PendingFeedback] = []

    // Quantiles, one per request field used by a quantile metric
    private var fieldQuantiles: [FieldQuantiles] = []
    private let quantileFields: [RequestField]

    // Metric plumbing
    private let streamedMetrics: [Int]            // indices into metrics
    private let conversationFeedback: [String: Int]  // feedback name -> conversation slot
    private let requestFeedback: [String: Int]       // feedback name -> request slot
    /// Per feedback name, the values every metric reading it accepts.
    private let feedbackBounds: [String: [ValueBounds]]
    /// Feedback the plan cannot use (a value out of its metric's bounds, a per-request name without a
    /// request): left out and counted, with an example, never fatal.
    private var unusable: [UnusableFeedback] = []
    private var feedbackNameCache: [(bytes: [UInt8], target: FeedbackTarget)] = []

    // Counters
    public private(set) var requestEvents = 0
    public private(set) var feedbackEvents = 0
    public private(set) var duplicateRequests = 0
    public private(set) var sharedConversations = 0
    /// Request events with a negative latency or TTFT, or a token count negative or beyond `maximumTokenCount`
    /// (those values left out).
    public private(set) var implausibleRequestValues = 0
    /// The largest token count taken as real: no model reads or writes a billion tokens in one request.
    public static let maximumTokenCount: Double = 1e9
    /// QA events (`"qa": true`) of the experiment, left out of the analysis.
    public private(set) var qaRequests = 0
    /// Events at or after `until`, left out.
    public private(set) var eventsAfterCut = 0
    /// Only events before this time (microseconds since 1970) count: the analysis as it stood then.
    public private(set) var until: Int64?
    public private(set) var qaFeedback = 0
    public private(set) var firstTimestamp: Int64 = .max
    public private(set) var lastTimestamp: Int64 = .min
    private var sequence: UInt32 = 0

    // Covariates (CUPED)
    /// Requests before this time (microseconds since 1970) form the pre-experiment period.
    public let experimentStart: Int64?
    private let covariateTable: CovariateTable?
    /// The events of the pre-experiment period, aggregated on their own (empty without `experimentStart`).
    private var prePeriod: [EventAggregator] = []
    /// With a pre-experiment period: per user, the same user's index there, or -1.
    private var preUserOfUser: [Int32] = []
    /// With a covariate table: per user, their row in it, or -1.
    private var covariateRowOfUser: [Int32] = []

    /// - Parameters:
    ///   - experimentStart: when given, requests before it (microseconds since 1970) are the
    ///     pre-experiment period: they are not part of the experiment (no assignment, no sample-ratio
    ///     check, no metrics, no quantiles) and give each user's pre-experiment value of every metric with
    ///     variance reduction, the metric's own definition applied to them; users are assigned by their
    ///     first request at or after it. Feedback belongs to the period of the request or conversation it
    ///     names when that has been read (otherwise to the period of its own time), so a task completion
    ///     reported just after the start for a conversation held before it counts before it.
    ///   - covariates: pre-experiment values from a file; for the metrics the file has rows for, they take
    ///     the place of the pre-experiment period's.
    public init(metrics: [Metric] = Metric.builtIn, experiment: String? = nil, experimentStart: Int64? = nil,
                covariates: CovariateTable? = nil, until: Int64? = nil) {
        self.metrics = metrics
        self.until = until
        filter = ExperimentFilter(experiment)
        self.experimentStart = experimentStart
        covariateTable = covariates
        if experimentStart != nil {
            let reduced = metrics.filter { $0.kind != .quantile && $0.varianceReduction }.map { m in
                var m = m
                m.rankTest = nil
                return m
            }
            prePeriod = [EventAggregator(metrics: reduced, experiment: experiment)]
        }
        var conv: [String: Int] = [:], req: [String: Int] = [:]
        var streamed: [Int] = []
        var fields: [RequestField] = []
        var bounds: [String: [ValueBounds]] = [:]
        for (i, m) in metrics.enumerated() {
            switch m.source {
            case .feedback(let name):
                if m.level == .request {
                    if req[name] == nil { req[name] = req.count }
                } else if conv[name] == nil {
                    conv[name] = conv.count
                }
                if !(bounds[name] ?? []).contains(m.acceptedValues) { bounds[name, default: []].append(m.acceptedValues) }
            case .errors:
                streamed.append(i)
            case .field(let f):
                // Quantiles and rank tests need each value with its user.
                if (m.kind == .quantile || m.rankTest != nil) && !fields.contains(f) { fields.append(f) }
                if m.kind != .quantile { streamed.append(i) }
            case .turns, .repeatUsage:
                break
            }
        }
        conversationFeedback = conv
        requestFeedback = req
        streamedMetrics = streamed
        quantileFields = fields
        fieldQuantiles = fields.map { _ in FieldQuantiles() }
        feedbackBounds = bounds
        conversationSlots = FeedbackSlots(width: conv.count)
        requestSlots = FeedbackSlots(width: req.count)
    }

    /// This aggregator as it stands, from now on leaving out events at or after `cut`: the start of a daily
    /// point that later events from before the cut (a long stream written after midnight) still join.
    ///
    /// It shares its arrays with this one until either changes (copy on write).
    public func cut(at cut: Int64) -> EventAggregator {
        var copy = self
        copy.until = min(cut, until ?? cut)
        return copy
    }

    /// Sorts the quantile fields' values read since the last call, so that `finish` need not sort them all:
    /// for an aggregation finished again and again as events arrive (the dashboard). `finish` gives the same
    /// with or without it.
    public mutating func prepare() {
        for k in fieldQuantiles.indices { fieldQuantiles[k].prepare() }
    }

    /// Adds one event. Events of other experiments are counted and skipped.
    public mutating func add(_ e: EventView) throws(EventRejection) {
        try add(e, sequence: sequence &+ 1)
    }

    /// Adds one event whose place in the whole log is `sequence` (1-based, increasing in file order), for
    /// logs read in pieces: ties between feedback timestamps go to the later place.
    public mutating func add(_ e: EventView, sequence: UInt32) throws(EventRejection) {
        self.sequence = sequence
        guard filter.accepts(e.experiment) else { return }
        if let until, e.timestamp >= until {
            eventsAfterCut += 1
            return
        }
        if e.qa {
            if e.kind == .request { qaRequests += 1 } else { qaFeedback += 1 }
            return
        }
        if let start = experimentStart {
            var before = e.timestamp < start
            if e.kind == .feedback {
                // Feedback follows the period of its target when only one period has read it.
                if before { before = prePeriod[0].knowsTarget(e) || !knowsTarget(e) }
                else { before = !knowsTarget(e) && prePeriod[0].knowsTarget(e) }
            }
            if before {
                let users = prePeriod[0].users.count
                try prePeriod[0].add(e, sequence: sequence)
                if prePeriod[0].users.count > users, let user = self.users.find(e.userID) {
                    preUserOfUser[user] = Int32(users)
                }
                return
            }
        }
        switch e.kind {
        case .request: try addRequest(e)
        case .feedback: try addFeedback(e)
        }
    }

    private mutating func addRequest(_ e: EventView) throws(EventRejection) {
        var e = e
        // A value no request has (a negative time, a token count no model produces) is left out and counted:
        // one such event, imported or written by an older gateway, must not stop the analysis.
        func plausible(_ x: Double, _ range: ClosedRange<Double>) -> Bool { x.isNaN || range.contains(x) }
        if !plausible(e.latencyMs, 0...Double.greatestFiniteMagnitude) || !plausible(e.ttftMs, 0...Double.greatestFiniteMagnitude)
            || !plausible(e.inputTokens, 0...Self.maximumTokenCount) || !plausible(e.outputTokens, 0...Self.maximumTokenCount) {
            implausibleRequestValues += 1
            if !plausible(e.latencyMs, 0...Double.greatestFiniteMagnitude) { e.latencyMs = .nan }
            if !plausible(e.ttftMs, 0...Double.greatestFiniteMagnitude) { e.ttftMs = .nan }
            if !plausible(e.inputTokens, 0...Self.maximumTokenCount) { e.inputTokens = .nan }
            if !plausible(e.outputTokens, 0...Self.maximumTokenCount) { e.outputTokens = .nan }
        }
        // Validate a new variant before anything is recorded, so a rejected line leaves no trace.
        var variantIndex = variants.find(e.variant) ?? -1
        if variantIndex < 0 {
            if let known = requests.find(hashBytes(e.requestID)), requestConversation[known] >= 0 {
                duplicateRequests += 1  // a copy of a request already read: its variant name does not matter
                return
            }
            guard variants.count < 64 else {
                throw EventRejection(message: "more than 64 variants in one experiment (new variant \"\(String(decoding: e.variant, as: UTF8.self))\")")
            }
            guard let name = String(validating: e.variant, as: UTF8.self) else {
                throw EventRejection(message: "\"variant\" is not valid UTF-8")
            }
            // Reports compare names as Swift strings, which equate canonically equivalent spellings.
            if let twin = (0..<variants.count).map({ variants.string($0) }).first(where: { $0 == name }) {
                throw EventRejection(message: "variant \"\(name)\" differs from variant \"\(twin)\" only in its Unicode normalization; spell it one way")
            }
        }
        let (request, newRequest) = requests.findOrInsert(hashBytes(e.requestID))
        if newRequest {
            requestConversation.append(-1)
            requestFeedbackEvents.append(0)
            requestSlots.append()
        } else if requestConversation[request] >= 0 {
            duplicateRequests += 1
            return
        }
        if variantIndex < 0 { variantIndex = variants.findOrInsert(e.variant).index }
        requestEvents += 1
        if e.timestamp < firstTimestamp { firstTimestamp = e.timestamp }
        if e.timestamp > lastTimestamp { lastTimestamp = e.timestamp }

        let (user, newUser) = users.findOrInsert(e.userID)
        let day = Int32(truncatingIfNeeded: e.timestamp >= 0 ? e.timestamp / 86_400_000_000 : (e.timestamp + 1) / 86_400_000_000 - 1)
        if newUser {
            userFirstTs.append(e.timestamp)
            userFirstVariant.append(UInt8(variantIndex))
            userVariantMask.append(1 << UInt64(variantIndex))
            userFirstDay.append(day)
            userMultiDay.append(false)
            userSums.append(contentsOf: repeatElement(0, count: streamedMetrics.count * 3))
            if !prePeriod.isEmpty { preUserOfUser.append(Int32(prePeriod[0].users.find(e.userID) ?? -1)) }
            if let covariateTable { covariateRowOfUser.append(Int32(covariateTable.row(ofUser: e.userID) ?? -1)) }
        } else {
            if e.timestamp < userFirstTs[user] {
                userFirstTs[user] = e.timestamp
                userFirstVariant[user] = UInt8(variantIndex)
            }
            userVariantMask[user] |= 1 << UInt64(variantIndex)
            if day != userFirstDay[user] { userMultiDay[user] = true }
        }

        let (conversation, newConversation) = conversations.findOrInsert(hashBytes(e.conversationID))
        if newConversation { appendConversation() }
        if conversationUser[conversation] < 0 {
            conversationUser[conversation] = Int32(user)
        } else if conversationUser[conversation] != Int32(user) && !conversationShared[conversation] {
            conversationShared[conversation] = true
            sharedConversations += 1
        }
        conversationTurns[conversation] += 1
        requestConversation[request] = Int32(conversation)

        // Streamed request metrics.
        var base = user * streamedMetrics.count * 3
        for m in streamedMetrics {
            let x: Double
            switch metrics[m].source {
            case .errors: x = e.isOK ? 0 : 1
            case .field(let f): x = e.value(of: f)
            default: x = .nan
            }
            if !x.isNaN {
                userSums[base] += x
                userSums[base + 1] += 1
                userSums[base + 2] += x * x
            }
            base += 3
        }
        for (k, f) in quantileFields.enumerated() {
            let x = e.value(of: f)
            if x.isFinite { fieldQuantiles[k].add(x, user: user) }
        }
    }

    /// Whether the request or conversation a feedback event names has had a request read.
    private func knowsTarget(_ e: EventView) -> Bool {
        if e.requestID.count > 0 {
            guard let r = requests.find(hashBytes(e.requestID)) else { return false }
            return requestConversation[r] >= 0
        }
        guard e.conversationID.count > 0, let c = conversations.find(hashBytes(e.conversationID)) else { return false }
        return conversationUser[c] >= 0
    }

    private mutating func appendConversation() {
        conversationUser.append(-1)
        conversationTurns.append(0)
        conversationFeedbackEvents.append(0)
        conversationShared.append(false)
        conversationSlots.append()
    }

    private mutating func addFeedback(_ e: EventView) throws(EventRejection) {
        let target = feedbackTarget(e.name)
        guard case .unused = target else {
            feedbackEvents += 1
            if let bounds = feedbackBounds[target.name]?.first(where: { !$0.contains(e.value) }) {
                return noteUnusable(e, name: target.name, reason: "value not \(bounds.requirement)")
            }
            if case .request = target, e.requestID.count == 0 {
                return noteUnusable(e, name: target.name, reason: "per request, but names no request_id")
            }
            try record(e, target)
            return
        }
        feedbackEvents += 1
        let (i, inserted) = unusedFeedback.findOrInsert(e.name)
        if inserted { unusedFeedbackCounts.append(0) }
        unusedFeedbackCounts[i] += 1
    }

    private mutating func record(_ e: EventView, _ target: FeedbackTarget) throws(EventRejection) {
        switch target {
        case .unused:
            return
        case .conversation(_, let slot):
            if e.requestID.count > 0 {
                let request = requestIndex(e.requestID)
                requestFeedbackEvents[request] += 1
                let conversation = requestConversation[request]
                if conversation >= 0 {
                    requestFeedbackEvents[request] -= 1
                    conversationFeedbackEvents[Int(conversation)] += 1
                    conversationSlots.offer(Int(conversation), slot, value: e.value, ts: e.timestamp, seq: sequence)
                } else {
                    pending.append(PendingFeedback(request: Int32(request), slot: Int32(slot), value: e.value, ts: e.timestamp, seq: sequence))
                }
            } else {
                let (conversation, inserted) = conversations.findOrInsert(hashBytes(e.conversationID))
                if inserted { appendConversation() }
                conversationFeedbackEvents[conversation] += 1
                conversationSlots.offer(conversation, slot, value: e.value, ts: e.timestamp, seq: sequence)
            }
        case .request(_, let slot):
            let request = requestIndex(e.requestID)
            requestFeedbackEvents[request] += 1
            requestSlots.offer(request, slot, value: e.value, ts: e.timestamp, seq: sequence)
        }
    }

    /// Counts a feedback event the plan cannot use, keeping the first example of each name and reason.
    private mutating func noteUnusable(_ e: EventView, name: String, reason: String) {
        if let i = unusable.firstIndex(where: { $0.name == name && $0.reason == reason }) {
            unusable[i].count += 1
            return
        }
        let target = e.requestID.count > 0 ? "request \(String(decoding: e.requestID, as: UTF8.self))"
            : "conversation \(String(decoding: e.conversationID, as: UTF8.self))"
        unusable.append(UnusableFeedback(name: name, reason: reason, count: 1,
                                         example: "\(name) = \(JSONWriter.number(e.value)) for \(target)"))
    }

    private mutating func requestIndex(_ id: UnsafeRawBufferPointer) -> Int {
        let (request, inserted) = requests.findOrInsert(hashBytes(id))
        if inserted {
            requestConversation.append(-1)
            requestFeedbackEvents.append(0)
            requestSlots.append()
        }
        return request
    }

    private mutating func feedbackTarget(_ name: UnsafeRawBufferPointer) -> FeedbackTarget {
        for entry in feedbackNameCache where bytesEqual(name, entry.bytes) { return entry.target }
        let s = String(decoding: name, as: UTF8.self)
        let target: FeedbackTarget
        if let slot = conversationFeedback[s] {
            target = .conversation(s, slot)
        } else if let slot = requestFeedback[s] {
            target = .request(s, slot)
        } else {
            target = .unused
        }
        if target.name.isEmpty { return target }  // unused names are counted, not cached
        feedbackNameCache.append((Array(name), target))
        return target
    }

    /// The per-variant sums of every metric, with data-quality counts.
    public func finish() -> ExperimentData {
        let variantNames = (0..<variants.count).map { variants.string($0) }
        let userCount = users.count
        var usersPerVariant = Array(repeating: 0, count: variantNames.count)
        var mixedUsers = 0
        for u in 0..<userCount {
            usersPerVariant[Int(userFirstVariant[u])] += 1
            if userVariantMask[u].nonzeroBitCount > 1 { mixedUsers += 1 }
        }

        let (conversationSlots, conversationFeedbackEvents, requestFeedbackEvents) = resolvedFeedback()
        var missingTargets = 0
        for c in 0..<conversationUser.count where conversationUser[c] < 0 {
            missingTargets += Int(conversationFeedbackEvents[c])
        }
        for r in 0..<requestConversation.count where requestConversation[r] < 0 {
            missingTargets += Int(requestFeedbackEvents[r])
        }

        // Per field, per variant (by each user's final first variant).
        let fieldValues = quantileFields.indices.map { k in
            metrics.contains { $0.kind == .quantile && $0.source == .field(quantileFields[k]) }
                ? fieldQuantiles[k].perVariant(userFirstVariant, variantCount: variantNames.count) : ([], [])
        }
        var overLevelLimit: [String] = []
        // Pre-experiment period, for covariates.
        let pre = prePeriod.first
        let preSlots = pre?.resolvedFeedback().slots
        let preUsers = pre?.users.count ?? 0
        var pm = [Double](repeating: 0, count: preUsers), pd = pm, pq = pm
        var results: [MetricData] = []
        var m = [Double](repeating: 0, count: userCount)
        var d = [Double](repeating: 0, count: userCount)
        var q = [Double](repeating: 0, count: userCount)
        for (index, metric) in metrics.enumerated() {
            if metric.kind == .quantile {
                guard case .field(let field) = metric.source, let k = quantileFields.firstIndex(of: field) else { continue }
                let (sketches, clustered) = fieldValues[k]
                results.append(MetricData(quantileMetric: metric, sketches: sketches, clustered: clustered, users: usersPerVariant))
                continue
            }
            // Rank tests: units per distinct value, per variant.
            var ordinal = metric.rankTest == nil ? nil : OrdinalCounter(variants: variantNames.count)
            if ordinal == nil {
                userTotals(index, conversationSlots, &m, &d, &q)
            } else {
                userTotals(index, conversationSlots, &m, &d, &q) { user, x in ordinal!.add(x, variant: Int(userFirstVariant[user])) }
                switch metric.source {
                case .errors:  // values 0 and 1: from the per-user sums
                    for u in 0..<userCount where d[u] > 0 {
                        let v = Int(userFirstVariant[u])
                        if d[u] > m[u] { ordinal!.add(0, variant: v, count: Int(d[u] - m[u])) }
                        if m[u] > 0 { ordinal!.add(1, variant: v, count: Int(m[u])) }
                    }
                case .field(let field):
                    fieldQuantiles[quantileFields.firstIndex(of: field)!].forEach { x, user in
                        ordinal!.add(x, variant: Int(userFirstVariant[user]))
                    }
                default:
                    break
                }
            }
            var perVariant = Array(repeating: RatioMoments(), count: variantNames.count)
            var units = Array(repeating: SampleMoments(n: 0, sum: 0, sumOfSquares: 0), count: variantNames.count)
            for u in 0..<userCount where d[u] > 0 {
                let v = Int(userFirstVariant[u])
                perVariant[v].add(numerator: m[u], denominator: d[u])
                units[v].n += d[u]
                units[v].sum += m[u]
                units[v].sumOfSquares += q[u]
            }
            var data = MetricData(metric: metric, perVariant: perVariant, unitMoments: units, quantiles: nil, quantileCounts: nil, sketches: nil)
            if let ordinal {
                let counts = ordinal.counts
                data.ordinal = counts
                if counts == nil { overLevelLimit.append(metric.name) }
            }

            // Covariates: the file's values for the metrics it lists, else the pre-experiment period's.
            var covariate: ((Int) -> (Double, Double))?
            if metric.varianceReduction, let table = covariateTable, let column = table.column(of: metric.name) {
                covariate = { u in
                    let row = Int(covariateRowOfUser[u])
                    return row < 0 ? (0, 0) : table.cell(row: row, column: column) ?? (0, 0)
                }
            } else if metric.varianceReduction, let pre, let k = pre.metrics.firstIndex(where: { $0.name == metric.name }) {
                pre.userTotals(k, preSlots!, &pm, &pd, &pq)
                covariate = { [pm, pd] u in
                    let p = Int(preUserOfUser[u])
                    return p < 0 ? (0, 0) : (pm[p], pd[p])
                }
            }
            if let covariate {
                var moments = Array(repeating: RatioCUPEDMoments(), count: variantNames.count)
                var withData = Array(repeating: 0, count: variantNames.count)
                for u in 0..<userCount where d[u] > 0 {
                    let v = Int(userFirstVariant[u])
                    let (mp, dp) = covariate(u)
                    moments[v].add(numerator: m[u], denominator: d[u], preNumerator: mp, preDenominator: dp)
                    if dp > 0 { withData[v] += 1 }
                }
                data.covariates = moments
                data.usersWithCovariate = withData
            }
            results.append(data)
        }

        var requestsPerVariant = Array(repeating: 0, count: variantNames.count)
        for c in 0..<conversationUser.count where conversationUser[c] >= 0 {
            requestsPerVariant[Int(userFirstVariant[Int(conversationUser[c])])] += Int(conversationTurns[c])
        }

        var quality = DataQuality(
            usersInSeveralVariants: mixedUsers,
            feedbackWithMissingTarget: missingTargets,
            duplicateRequestIDs: duplicateRequests,
            conversationsOfSeveralUsers: sharedConversations,
            qaRequestsExcluded: qaRequests,
            qaFeedbackExcluded: qaFeedback,
            otherExperiments: filter.otherExperiments,
            unusedFeedbackNames: (0..<unusedFeedback.count).map { NamedCount(name: unusedFeedback.string($0), count: unusedFeedbackCounts[$0]) }
                .sorted { $0.count > $1.count })
        quality.ordinalMetricsOverLevelLimit = overLevelLimit
        quality.eventsAfterCut = eventsAfterCut
        quality.unusableFeedback = UnusableFeedback.combine(unusable + (pre?.unusable ?? []))
        quality.implausibleRequestValues = implausibleRequestValues + (pre?.implausibleRequestValues ?? 0)
        quality.preExperimentRequests = pre?.requestEvents ?? 0
        quality.preExperimentFeedback = pre?.feedbackEvents ?? 0
        if let pre {
            var counts = Array(repeating: 0, count: pre.variants.count)
            for v in pre.userFirstVariant { counts[Int(v)] += 1 }
            quality.preExperimentVariants = counts.indices.filter { counts[$0] > 0 }
                .map { NamedCount(name: pre.variants.string($0), count: counts[$0]) }.sorted { $0.name < $1.name }
        }
        let covariateUsersSeen = covariateRowOfUser.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }
        quality.covariateUsersNotInExperiment = (covariateTable?.userCount ?? 0) - covariateUsersSeen
        var data = ExperimentData(
            experiment: experiment ?? "",
            variants: zip(variantNames.indices, variantNames).map {
                VariantData(name: $1, users: usersPerVariant[$0], requests: requestsPerVariant[$0])
            },
            metrics: results,
            requestEvents: requestEvents,
            feedbackEvents: feedbackEvents,
            firstTimestamp: requestEvents > 0 ? firstTimestamp : nil,
            lastTimestamp: requestEvents > 0 ? lastTimestamp : nil,
            dataQuality: quality)
        data.covariateFileUsers = covariateTable?.userCount ?? 0
        data.covariateFileUsersSeen = covariateUsersSeen
        data.newUsersByHour = HourCount.histogram(userFirstTs.lazy.map(HourCount.start(of:)))
        return data
    }

    /// Conversation-level feedback slots with the feedback that arrived before its request resolved, and
    /// the feedback events per conversation and per request after that.
    private func resolvedFeedback() -> (slots: FeedbackSlots, conversationEvents: [UInt32], requestEvents: [UInt32]) {
        var conversationSlots = self.conversationSlots
        var conversationFeedbackEvents = self.conversationFeedbackEvents
        var requestFeedbackEvents = self.requestFeedbackEvents
        for p in pending {
            let conversation = requestConversation[Int(p.request)]
            if conversation >= 0 {
                requestFeedbackEvents[Int(p.request)] -= 1
                conversationFeedbackEvents[Int(conversation)] += 1
                conversationSlots.offer(Int(conversation), Int(p.slot), value: p.value, ts: p.ts, seq: p.seq)
            }
        }
        return (conversationSlots, conversationFeedbackEvents, requestFeedbackEvents)
    }

    /// Per user (indexed like `users`), the sum of metric `index`'s unit values (m), its units (d) and the
    /// sum of squared unit values (q); `conversationSlots` from `resolvedFeedback()`.
    /// `unit` is called with each unit's user and value (not for `.errors` and `.field`, whose values are
    /// only summed per user as they stream).
    private func userTotals(_ index: Int, _ conversationSlots: FeedbackSlots,
                            _ m: inout [Double], _ d: inout [Double], _ q: inout [Double],
                            unit: ((Int, Double) -> Void)? = nil) {
        let userCount = users.count
        for u in 0..<userCount { m[u] = 0; d[u] = 0; q[u] = 0 }
        func add(_ user: Int, _ x: Double) {
            m[user] += x
            d[user] += 1
            q[user] += x * x
            unit?(user, x)
        }
        let metric = metrics[index]
        switch metric.source {
        case .feedback(let name):
            if metric.level == .request {
                let slot = requestFeedback[name]!
                for r in 0..<requestConversation.count where requestConversation[r] >= 0 {
                    if let x = requestSlots.value(r, slot) {
                        add(Int(conversationUser[Int(requestConversation[r])]), x)
                    }
                }
            } else {
                let slot = conversationFeedback[name]!
                for c in 0..<conversationUser.count where conversationUser[c] >= 0 {
                    if let x = conversationSlots.value(c, slot) { add(Int(conversationUser[c]), x) }
                }
            }
        case .turns:
            for c in 0..<conversationUser.count where conversationUser[c] >= 0 {
                add(Int(conversationUser[c]), Double(conversationTurns[c]))
            }
        case .repeatUsage:
            for u in 0..<userCount { add(u, userMultiDay[u] ? 1 : 0) }
        case .errors, .field:
            let position = streamedMetrics.firstIndex(of: index)!
            let stride = streamedMetrics.count * 3
            for u in 0..<userCount {
                m[u] = userSums[u * stride + position * 3]
                d[u] = userSums[u * stride + position * 3 + 1]
                q[u] = userSums[u * stride + position * 3 + 2]
            }
        }
    }

}

@inline(__always)
func bytesEqual(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return b.withUnsafeBytes { bb in a.count == 0 || memcmp(a.baseAddress!, bb.baseAddress!, a.count) == 0 }
}

private enum FeedbackTarget {
    case conversation(String, Int)
    case request(String, Int)
    case unused

    var name: String {
        switch self {
        case .conversation(let n, _), .request(let n, _): return n
        case .unused: return ""
        }
    }
}

private struct PendingFeedback {
    var request: Int32
    var slot: Int32
    var value: Double
    var ts: Int64
    var seq: UInt32
}

/// One request field's values, each with its user, for the quantile metrics of the field.
///
/// Every value is kept (12 bytes per request and field: the value and a 32-bit user index) until the end,
/// when each user's values land in the user's final variant (the first request by time may come late in
/// the file) and each value gets its rank among its user's values, which the clustered quantile test
/// needs. A log read in pieces holds one piece's values at a time.
package struct FieldQuantiles {
    private var users: [UInt32] = []
    private var values: [Double] = []
    /// The first `sortedValues.count` values in order of value (ties in file order) with their users, kept by
    /// `prepare` so that an aggregation finished again and again (the dashboard's refresh, its daily cuts)
    /// sorts only the new values, and reads them in order without a random access per value.
    private var sortedValues: [Double] = []
    private var sortedUsers: [UInt32] = []

    /// Brings the sorted values up to every value: sorts the new ones and merges them in (a stable sort of all
    /// of them gives the same order).
    mutating func prepare() {
        let old = sortedValues.count, count = values.count
        guard count > old else { return }
        // The new values with their users sorted by value (stable: ties stay in file order).
        let (freshValues, freshUsers) = RadixSort.sorted(Array(values[old..<count]), carrying: Array(users[old..<count]))
        if old == 0 {
            sortedValues = freshValues
            sortedUsers = freshUsers
            return
        }
        var mergedValues: [Double] = [], mergedUsers: [UInt32] = []
        mergedValues.reserveCapacity(count)
        mergedUsers.reserveCapacity(count)
        var i = 0, j = 0
        while i < old && j < freshValues.count {
            // Every old value was read before every fresh one: on a tie the old one comes first.
            if freshValues[j] < sortedValues[i] {
                mergedValues.append(freshValues[j]); mergedUsers.append(freshUsers[j]); j += 1
            } else {
                mergedValues.append(sortedValues[i]); mergedUsers.append(sortedUsers[i]); i += 1
            }
        }
        mergedValues.append(contentsOf: sortedValues[i...]); mergedUsers.append(contentsOf: sortedUsers[i...])
        mergedValues.append(contentsOf: freshValues[j...]); mergedUsers.append(contentsOf: freshUsers[j...])
        sortedValues = mergedValues
        sortedUsers = mergedUsers
    }

    package init() {}

    @inline(__always)
    package mutating func add(_ x: Double, user: Int) {
        users.append(UInt32(truncatingIfNeeded: user))
        values.append(x)
    }

    /// Calls `body` with each value and its user, in file order.
    func forEach(_ body: (Double, Int) -> Void) {
        for i in values.indices { body(values[i], Int(users[i])) }
    }

    /// Per variant: the values for numpy-style quantiles, and with their users' steps for the clustered
    /// quantile test.
    package func perVariant(_ firstVariants: [UInt8], variantCount: Int) -> (sketches: [QuantileSketch], clustered: [ClusteredQuantileSketch]) {
        var perUser = [UInt32](repeating: 0, count: firstVariants.count)
        for u in users { perUser[Int(u)] &+= 1 }
        var sizes = [Int](repeating: 0, count: variantCount)
        var squares = [Double](repeating: 0, count: variantCount)
        for u in perUser.indices where perUser[u] > 0 {
            let v = Int(firstVariants[u]), c = Double(perUser[u])
            sizes[v] += Int(perUser[u])
            squares[v] += c * c
        }
        // In value order when `prepare` has sorted every value: each value goes straight to its variant's
        // sketches (a variant with more values than a sketch holds exactly never holds them all).
        if sortedValues.count == values.count {
            let lowest = sortedValues.first ?? 0, highest = sortedValues.last ?? 0
            var plain = sizes.map { QuantileSketch.SortedBuilder(count: $0) }
            var clustered = sizes.map { ClusteredQuantileSketch.SortedBuilder(count: $0, lowest: lowest, highest: highest) }
            var rank = [UInt32](repeating: 0, count: perUser.count)
            for k in sortedValues.indices {
                let u = Int(sortedUsers[k]), v = Int(firstVariants[u]), x = sortedValues[k]
                plain[v].add(x)
                clustered[v].add(.init(value: x, squareStep: 2 &* rank[u] &+ 1, userCount: perUser[u]))
                rank[u] &+= 1
            }
            return (plain.map { $0.sketch() }, clustered.indices.map { clustered[$0].sketch(countSumSquares: squares[$0]) })
        }
        // Entries carry their user in `squareStep` until ranked.
        var entries: [[ClusteredQuantileSketch.Entry]] = sizes.map { size in
            var a: [ClusteredQuantileSketch.Entry] = []
            a.reserveCapacity(size)
            return a
        }
        for i in values.indices {
            let u = users[i]
            entries[Int(firstVariants[Int(u)])].append(.init(value: values[i], squareStep: u, userCount: perUser[Int(u)]))
        }
        var rank = perUser
        for u in rank.indices { rank[u] = 0 }
        var sketches: [QuantileSketch] = []
        var clustered: [ClusteredQuantileSketch] = []
        for v in 0..<variantCount {
            entries[v].sort { $0.value < $1.value }
            var ascending: [Double] = []
            ascending.reserveCapacity(entries[v].count)
            entries[v].withUnsafeMutableBufferPointer { buffer in
                for j in buffer.indices {
                    let u = Int(buffer[j].squareStep)
                    buffer[j].squareStep = 2 &* rank[u] &+ 1
                    rank[u] &+= 1
                    ascending.append(buffer[j].value)
                }
            }
            sketches.append(QuantileSketch(sorted: ascending))
            clustered.append(ClusteredQuantileSketch(sorted: entries[v], countSumSquares: squares[v]))
            entries[v] = []
        }
        return (sketches, clustered)
    }
}

/// Units per distinct value and variant, for a rank test, up to `EventAggregator.ordinalLevelLimit` values.
struct OrdinalCounter {
    private var index: [Double: Int] = [:]
    private var levels: [Double] = []
    /// Per variant, per level (in the order first seen).
    private var perVariant: [[Int]]
    private var overflow = false

    init(variants: Int) { perVariant = Array(repeating: [], count: variants) }

    mutating func add(_ x: Double, variant: Int, count: Int = 1) {
        if overflow { return }
        let k: Int
        if let known = index[x] {
            k = known
        } else {
            guard levels.count < EventAggregator.ordinalLevelLimit else {
                overflow = true
                index = [:]
                levels = []
                perVariant = []
                return
            }
            k = levels.count
            index[x] = k
            levels.append(x)
            for v in perVariant.indices { perVariant[v].append(0) }
        }
        perVariant[variant][k] += count
    }

    /// The counts with levels ascending; nil past the limit.
    var counts: OrdinalCounts? {
        if overflow { return nil }
        let order = levels.indices.sorted { levels[$0] < levels[$1] }
        return OrdinalCounts(levels: order.map { levels[$0] }, counts: perVariant.map { c in order.map { c[$0] } })
    }
}

extension EventAggregator {
    /// The most distinct unit values a metric's rank-test counts (`MetricData.ordinal`) keep; a metric with
    /// more gets no counts and is listed in `DataQuality.ordinalMetricsOverLevelLimit` (ordinal scores have
    /// a handful of levels; a metric with thousands is not ordinal).
    public static let ordinalLevelLimit = 1000
}

/// "Last feedback" slots, `width` per unit: the value with the latest timestamp, ties to the later line.
struct FeedbackSlots {
    let width: Int
    private var values: [Double] = []
    private var timestamps: [Int64] = []
    private var sequences: [UInt32] = []

    init(width: Int) { self.width = width }

    mutating func append() {
        guard width > 0 else { return }
        for _ in 0..<width {
            values.append(0)
            timestamps.append(.min)
            sequences.append(0)
        }
    }

    mutating func offer(_ unit: Int, _ slot: Int, value: Double, ts: Int64, seq: UInt32) {
        let i = unit * width + slot
        if ts > timestamps[i] || (ts == timestamps[i] && seq >= sequences[i]) {
            values[i] = value
            timestamps[i] = ts
            sequences[i] = seq
        }
    }

    func value(_ unit: Int, _ slot: Int) -> Double? {
        let i = unit * width + slot
        return sequences[i] == 0 ? nil : values[i]
    }

}

/// Picks one experiment's events from a log: the one named, or else the first one seen; counts the others.
struct ExperimentFilter {
    private(set) var wanted: [UInt8]?
    private var others = InternTable(capacity: 8)
    private var counts: [Int] = []

    init(_ experiment: String?) { wanted = experiment.map { Array($0.utf8) } }

    /// The experiment's name, once known.
    var name: String? { wanted.map { String(decoding: $0, as: UTF8.self) } }

    /// Whether an event of `experiment` belongs to the analysis; the first event decides when none was named.
    @inline(__always)
    mutating func accepts(_ experiment: UnsafeRawBufferPointer) -> Bool {
        guard let wanted else {
            self.wanted = Array(experiment)
            return true
        }
        if bytesEqual(experiment, wanted) { return true }
        let (i, inserted) = others.findOrInsert(experiment)
        if inserted { counts.append(0) }
        counts[i] += 1
        return false
    }

    /// Events of other experiments, most first.
    var otherExperiments: [NamedCount] {
        (0..<others.count).map { NamedCount(name: others.string($0), count: counts[$0]) }
            .sorted { ($0.count, $1.name) > ($1.count, $0.name) }
    }
}
