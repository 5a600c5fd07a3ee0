import BakeoffStatistics

/// People's verdicts beside a pairwise judge's, for one candidate variant against the control: the people's
/// win rate (the judge's statistics: per request win 1, tie 0.5, loss 0, averaged over labelers; the interval
/// from the paired t, the sign test on the requests not tied) and how well judge and people agree on the
/// requests both judged: Cohen's kappa over win / tie / loss, the percent agreement and the confusion table.
///
/// The people saw the first repetition's answers, so the judge is taken on those too (its verdicts in both
/// orders, a flip a tie, as in its win rate). A request's category is its score's: above one half a win, one
/// half a tie, below a loss; two labelers who disagree (a win and a loss) make a tie.
public struct HumanAgreement: Sendable, Equatable {
    /// The categories, in the order of `confusion`'s rows and columns.
    public static let categories: [LabelVerdict] = [.win, .tie, .loss]

    /// The pairwise judge compared with; nil when the plan has none (then only the people's win rate is there).
    public var scorer: String?
    public var variant: String
    public var control: String
    /// Labels used (over every labeler) and how many people gave them.
    public var labels: Int
    public var labelers: Int
    /// Labels on requests the analysis does not have (not in the dataset, or another experiment's): left out.
    public var unmatchedLabels: Int
    /// The people's win rate over the requests they labelled (`scorer` "human"; `firstPositionRate` is the
    /// share of their decisive labels that picked the answer on the left, their side bias; no flip rate).
    public var human: WinRate?
    /// The judge's win rate on the requests both judged (first repetition; no position rates).
    public var judge: WinRate?
    /// Requests with both a judge verdict and a human one.
    public var requests: Int
    /// `confusion[judge][human]`: requests per pair of categories, in the order of `categories`.
    public var confusion: [[Int]]
    /// Share of `requests` where both gave the same category; nil without any.
    public var percentAgreement: Double?
    /// Cohen's kappa over the three categories; nil without requests, or when judge and people each put every
    /// request in one and the same category (agreement is then perfect, but not beyond chance: see
    /// `percentAgreement`).
    public var kappa: CohenKappa?
    /// Kappa with linear weights on the ordered categories (a win taken for a tie counts half a disagreement).
    public var weightedKappa: CohenKappa?

    public init(scorer: String?, variant: String, control: String, labels: Int, labelers: Int, unmatchedLabels: Int,
                human: WinRate?, judge: WinRate?, requests: Int, confusion: [[Int]], percentAgreement: Double?,
                kappa: CohenKappa?, weightedKappa: CohenKappa?) {
        self.scorer = scorer
        self.variant = variant
        self.control = control
        self.labels = labels
        self.labelers = labelers
        self.unmatchedLabels = unmatchedLabels
        self.human = human
        self.judge = judge
        self.requests = requests
        self.confusion = confusion
        self.percentAgreement = percentAgreement
        self.kappa = kappa
        self.weightedKappa = weightedKappa
    }

    /// Agreement of a judge's per-request scores (`judgeScores[i]` for `requestIDs[i]`: 1 the variant won,
    /// 0.5 tie, 0 lost, nil not judged, as `EvalAnalysis.winRate` gives them) with people's labels. Labels of
    /// other variants or controls are ignored; labels of requests not in `requestIDs` are counted in
    /// `unmatchedLabels`.
    public static func compute(scorer: String?, variant: String, control: String, requestIDs: [String], judgeScores: [Double?],
                               labels: [HumanLabel], alpha: Double = 0.05) -> HumanAgreement {
        precondition(judgeScores.count == requestIDs.count, "one judge score (or nil) per request")
        var index: [String: Int] = [:]
        for (i, id) in requestIDs.enumerated() where index[id] == nil { index[id] = i }
        var sums = [Double](repeating: 0, count: requestIDs.count)
        var counts = [Int](repeating: 0, count: requestIDs.count)
        var used = 0, unmatched = 0, leftPicks = 0, decisive = 0
        var labelers: Set<String> = []
        for label in labels where label.variant == variant && label.control == control {
            guard let i = index[label.requestID] else { unmatched += 1; continue }
            sums[i] += label.verdict.score
            counts[i] += 1
            used += 1
            labelers.insert(label.labeler)
            if let left = label.pickedLeft {
                decisive += 1
                if left { leftPicks += 1 }
            }
        }
        let humanScores: [Double?] = requestIDs.indices.map { counts[$0] > 0 ? sums[$0] / Double(counts[$0]) : nil }

        var human = Self.winRate(scorer: "human", variant: variant, scores: humanScores.compactMap { $0 }, judgments: used, alpha: alpha)
        if human != nil && decisive > 0 { human!.firstPositionRate = Double(leftPicks) / Double(decisive) }

        var confusion = [[Int]](repeating: [Int](repeating: 0, count: 3), count: 3)
        var judgeCategories: [Int] = [], humanCategories: [Int] = [], judgeBoth: [Double] = []
        for i in requestIDs.indices {
            guard let j = judgeScores[i], let h = humanScores[i] else { continue }
            let a = categories.firstIndex(of: LabelVerdict(score: j))!, b = categories.firstIndex(of: LabelVerdict(score: h))!
            confusion[a][b] += 1
            judgeCategories.append(a)
            humanCategories.append(b)
            judgeBoth.append(j)
        }
        let both = judgeCategories.count
        let agreed = (0..<3).reduce(0) { $0 + confusion[$1][$1] }
        return HumanAgreement(
            scorer: scorer, variant: variant, control: control, labels: used, labelers: labelers.count, unmatchedLabels: unmatched,
            human: human, judge: scorer == nil ? nil : Self.winRate(scorer: scorer!, variant: variant, scores: judgeBoth, judgments: both, alpha: alpha),
            requests: both, confusion: confusion, percentAgreement: both > 0 ? Double(agreed) / Double(both) : nil,
            kappa: CohenKappa(table: confusion, alpha: alpha), weightedKappa: CohenKappa(table: confusion, weights: .linear, alpha: alpha))
    }

    /// A win rate from per-request scores, as `EvalAnalysis.winRate` makes the judge's.
    static func winRate(scorer: String, variant: String, scores: [Double], judgments: Int, alpha: Double) -> WinRate? {
        guard !scores.isEmpty else { return nil }
        let wins = scores.filter { $0 > 0.5 }.count, losses = scores.filter { $0 < 0.5 }.count
        let t = PairedStatistics.pairedT(scores.map { $0 - 0.5 }, alpha: alpha)
        return WinRate(scorer: scorer, variant: variant, requests: scores.count, wins: wins, ties: scores.count - wins - losses,
                       losses: losses, winRate: 0.5 + t.mean, ciLow: max(0, 0.5 + t.ciLow), ciHigh: min(1, 0.5 + t.ciHigh),
                       pValue: PairedStatistics.signTest(wins: wins, losses: losses), adjustedPValue: nil,
                       firstPositionRate: nil, flipRate: nil, judgments: judgments, sdScore: t.sd)
    }
}

extension EvalAnalysis {
    /// People's labels against the eval's pairwise judges: one `HumanAgreement` per pairwise judge of the plan
    /// and candidate variant that has labels (per candidate with labels when the plan has no pairwise judge:
    /// the people's win rate alone). The judge is taken on the first repetition, the one labelers saw.
    ///
    /// `labels` name variants as `o.variants` does (the CLI maps the cache's labels to the current names).
    public static func humanAgreement(_ o: EvalObservations, plan: EvalPlan, labels: [HumanLabel]) -> [HumanAgreement] {
        let control = o.variants[o.control]
        let ids = o.items.map(\.id)
        let candidates = o.variants.indices.filter { v in v != o.control && labels.contains { $0.variant == o.variants[v] && $0.control == control } }
        let judges = plan.scorers.enumerated().filter { $0.element.isPairwise }
        var out: [HumanAgreement] = []
        for v in candidates {
            if judges.isEmpty {
                out.append(.compute(scorer: nil, variant: o.variants[v], control: control, requestIDs: ids,
                                    judgeScores: [Double?](repeating: nil, count: ids.count), labels: labels, alpha: plan.alpha))
            }
            for (s, scorer) in judges {
                let judgments = o.judgments.filter { $0.scorer == s && $0.repetition == 0 }
                let (_, scores) = winRate(scorer: scorer.name, judgments: judgments, variant: v, control: o.control, names: o.variants,
                                          items: o.items.count, repetitions: 1, alpha: plan.alpha)
                out.append(.compute(scorer: scorer.name, variant: o.variants[v], control: control, requestIDs: ids,
                                    judgeScores: scores, labels: labels, alpha: plan.alpha))
            }
        }
        return out
    }
}
