/// How traffic is divided between arms: consecutive ranges of the normalized bucket, in the order given.
///
/// Arm `i` gets every normalized bucket `x` with `x < boundary[i]` that no earlier arm took; the last arm
/// takes the rest. The first boundary is exactly the first weight, so a two-arm allocation
/// `[treatment=s, control=1-s]` behaves bit for bit like the reference `ABRouter` with `split=s`
/// (`normalized < split`), and growing only the first arm never moves anyone out of it.
public struct Allocation: Sendable, Equatable {
    /// One arm: its name (what `variant(for:)` returns) and its share of traffic.
    public struct Arm: Sendable, Equatable {
        public var name: String
        public var weight: Double

        public init(name: String, weight: Double) {
            self.name = name
            self.weight = weight
        }
    }

    /// The arms, in range order.
    public let arms: [Arm]

    /// Upper ends of the ranges of every arm but the last.
    ///
    /// `boundaries[0]` is `arms[0].weight` exactly. Later ones are running sums rounded to 12 decimal
    /// places, so that `a=0.1,b=0.2,c=0.7` ends `b` at 0.3 exactly as `split 0.3` would (the float sum
    /// is 0.30000000000000004, which would hand normalized 0.3 to `b`). Normalized buckets are multiples
    /// of 1e-4, so the rounding changes nothing else.
    private let boundaries: [Double]

    /// Treatment gets `split`, control the rest: `[treatment=split, control=1-split]`.
    public init(split: Double) throws(AssignmentError) {
        guard split >= 0, split <= 1 else {
            throw AssignmentError("split must be between 0 and 1 (got \(split))")
        }
        try self.init(
            validating: [Arm(name: "treatment", weight: split), Arm(name: "control", weight: 1 - split)],
            context: nil
        )
    }

    /// Arms with weights >= 0 that sum to 1 (within 1e-9) and distinct, non-empty names.
    public init(arms: [Arm]) throws(AssignmentError) {
        try self.init(validating: arms, context: nil)
    }

    /// Parses a split such as `a=0.5,b=0.3,c=0.2` (spaces around names and weights are ignored).
    ///
    /// Error messages start with `context` (where the value came from) and quote the piece that is wrong.
    public init(parsing spec: String, context: String = "variants") throws(AssignmentError) {
        let example = "e.g. treatment=0.2,control=0.8"
        let trimmedSpec = allocationTrim(Substring(spec))
        guard !trimmedSpec.isEmpty else {
            throw AssignmentError("\(context): expected name=weight pairs separated by commas, \(example) (got an empty value)")
        }
        var arms: [Arm] = []
        for rawPiece in spec.split(separator: ",", omittingEmptySubsequences: false) {
            let piece = allocationTrim(rawPiece)
            guard !piece.isEmpty else {
                throw AssignmentError("\(context): empty entry in '\(spec)' (stray comma?); expected name=weight pairs, \(example)")
            }
            guard let equals = piece.firstIndex(of: "=") else {
                throw AssignmentError("\(context): '\(piece)' is not name=weight, \(example)")
            }
            let name = allocationTrim(piece[..<equals])
            let weightText = allocationTrim(piece[piece.index(after: equals)...])
            guard !name.isEmpty else {
                throw AssignmentError("\(context): '\(piece)' has no arm name before '='")
            }
            guard !weightText.isEmpty else {
                throw AssignmentError("\(context): arm '\(name)' has no weight after '=', e.g. \(name)=0.5")
            }
            guard let weight = Double(weightText), weight.isFinite else {
                throw AssignmentError("\(context): weight '\(weightText)' of arm '\(name)' is not a number")
            }
            arms.append(Arm(name: String(name), weight: weight))
        }
        try self.init(validating: arms, context: context)
    }

    private init(validating arms: [Arm], context: String?) throws(AssignmentError) {
        func fail(_ message: String) -> AssignmentError {
            AssignmentError(context.map { "\($0): \(message)" } ?? message)
        }
        guard !arms.isEmpty else { throw fail("at least one arm is needed") }
        for arm in arms {
            guard !arm.name.isEmpty else { throw fail("arm names must not be empty") }
            guard arm.weight.isFinite, arm.weight >= 0 else {
                throw fail("weight of arm '\(arm.name)' is \(arm.weight), weights must be >= 0")
            }
        }
        var seen: Set<String> = []
        for arm in arms where !seen.insert(arm.name).inserted {
            throw fail("arm '\(arm.name)' appears more than once, names must be unique")
        }
        let sum = arms.reduce(0.0) { $0 + $1.weight }
        guard abs(sum - 1) <= 1e-9 else {
            let listed = arms.map { "\($0.name)=\($0.weight)" }.joined(separator: ",")
            throw fail("weights sum to \(allocationRound12(sum)), they must sum to 1 (got \(listed))")
        }
        var boundaries: [Double] = []
        boundaries.reserveCapacity(arms.count - 1)
        var running = 0.0
        for (i, arm) in arms.dropLast().enumerated() {
            running += arm.weight
            boundaries.append(i == 0 ? arm.weight : allocationRound12(running))
        }
        self.arms = arms
        self.boundaries = boundaries
    }

    /// The arm names, in range order.
    public var names: [String] { arms.map(\.name) }

    /// The arm for normalized bucket `x` (in [0, 1)): the first arm `i` with `x < boundary[i]`, else the last.
    @inline(__always)
    public func armIndex(forNormalized x: Double) -> Int {
        for (i, boundary) in boundaries.enumerated() where x < boundary {
            return i
        }
        return boundaries.count
    }
}

/// `x` rounded to 12 decimal places (the double nearest that decimal).
private func allocationRound12(_ x: Double) -> Double {
    (x * 1e12).rounded() / 1e12
}

private func allocationTrim(_ s: Substring) -> Substring {
    var s = s
    while let first = s.first, first.isWhitespace { s.removeFirst() }
    while let last = s.last, last.isWhitespace { s.removeLast() }
    return s
}
