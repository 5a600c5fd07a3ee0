/// The known name nearest `name` in spelling, when close enough to be a likely typo ("did you mean ...?"), as
/// git and swift-argument-parser suggest: case and `-`/`_` are ignored, and the edit distance may be at most a
/// third of the name's length (1 to 3).
package func closestName(_ name: String, among known: [String]) -> String? {
    func normal(_ s: String) -> [Character] { Array(s.lowercased().replacingOccurrences(of: "-", with: "_")) }
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let target = normal(name)
    guard let (best, d) = known.map({ ($0, distance(target, normal($0))) }).min(by: { $0.1 < $1.1 }),
          d <= max(1, min(3, best.count / 3)) else { return nil }
    return best
}
