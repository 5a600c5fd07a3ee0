/// One person's verdict on one request: a candidate variant's answer against the control's (the first
/// repetition's answers, as the label sheet showed them).
public struct HumanLabel: Sendable, Equatable {
    public var requestID: String
    /// The candidate's name and the control's (as the analysis names them).
    public var variant: String
    public var control: String
    public var verdict: LabelVerdict
    /// Who labelled (several labelers of one request are averaged, as repetitions are).
    public var labeler: String
    /// Whether the candidate's answer was shown on the left, when known (for the labelers' side bias).
    public var variantWasLeft: Bool?
    public var note: String?

    public init(requestID: String, variant: String, control: String, verdict: LabelVerdict, labeler: String,
                variantWasLeft: Bool? = nil, note: String? = nil) {
        self.requestID = requestID
        self.variant = variant
        self.control = control
        self.verdict = verdict
        self.labeler = labeler
        self.variantWasLeft = variantWasLeft
        self.note = note
    }

    /// Whether the labeler picked the answer on the left (nil for a tie or when the side is not known).
    public var pickedLeft: Bool? {
        guard let left = variantWasLeft, verdict != .tie else { return nil }
        return (verdict == .win) == left
    }
}

extension LabelKey {
    /// A filled sheet's labels joined with the key: per item, the request and the candidate's verdict against
    /// the control. Items of `filled` the key does not know are left out (`FilledLabels.parse` reports them).
    public func humanLabels(_ filled: FilledLabels, labeler: String) -> [(entry: Entry, label: HumanLabel)] {
        let byCode = Dictionary(entries.map { ($0.code, $0) }, uniquingKeysWith: { a, _ in a })
        return filled.rows.compactMap { row in
            guard let e = byCode[row.code] else { return nil }
            return (e, HumanLabel(requestID: e.requestID, variant: e.variant, control: e.control, verdict: e.verdict(row.choice),
                                  labeler: labeler, variantWasLeft: e.variantIsLeft, note: row.note))
        }
    }
}
