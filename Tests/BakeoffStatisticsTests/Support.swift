import Foundation
import Testing

/// Reference values from scipy / statsmodels / gbstats, written by scripts/reference/stats_fixtures.py.
enum Fixture {
    static func load<T: Decodable>(_ name: String, as type: T.Type = T.self) -> T {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
            fatalError("missing fixture \(name).json")
        }
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(T.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot decode \(name).json: \(error)")
        }
    }
}

/// The accuracy bar: agreement to 1e-9 relative or 1e-12 absolute (either suffices).
enum Accuracy {
    static let relative = 1e-9
    static let absolute = 1e-12

    static func relativeError(_ actual: Double, _ expected: Double) -> Double {
        if actual == expected { return 0 }
        if expected == 0 { return actual.isNaN ? .nan : .infinity }
        return abs(actual - expected) / abs(expected)
    }

    static func agrees(_ actual: Double, _ expected: Double, relative: Double = relative, absolute: Double = absolute) -> Bool {
        if actual == expected { return true }
        let diff = abs(actual - expected)
        return diff <= absolute || diff <= relative * abs(expected)
    }
}

/// Tracks the worst relative error of a batch of comparisons and fails the test on any miss.
///
/// Set BAKEOFF_STATS_REPORT=1 to print each batch's worst relative error (used for the
/// accuracy summary in the report; quiet otherwise).
struct ErrorTally {
    let name: String
    private(set) var worstRelative = 0.0
    private(set) var worstContext = ""
    private(set) var count = 0

    init(_ name: String) { self.name = name }

    mutating func check(
        _ actual: Double, _ expected: Double, _ context: @autoclosure () -> String,
        relative: Double = Accuracy.relative, absolute: Double = Accuracy.absolute,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        count += 1
        let ok = Accuracy.agrees(actual, expected, relative: relative, absolute: absolute)
        // Relative error is only meaningful where the absolute floor does not apply.
        if abs(expected) > absolute * 1e3 || !ok {
            let error = Accuracy.relativeError(actual, expected)
            if !(error <= worstRelative) {
                worstRelative = error
                worstContext = context()
            }
        }
        #expect(ok, "\(name): \(context()): got \(actual), expected \(expected)", sourceLocation: sourceLocation)
    }

    func report() {
        if ProcessInfo.processInfo.environment["BAKEOFF_STATS_REPORT"] != nil {
            print("[accuracy] \(name): \(count) values, worst relative error \(worstRelative) at \(worstContext)")
        }
    }
}

@Suite("Fixtures")
struct FixtureSanityTests {
    private struct Numbers: Decodable { let values: [Double] }

    @Test("JSON doubles decode exactly")
    func exactDecoding() throws {
        let json = #"{"values": [0.1, 0.30000000000000004, 2.2250738585072014e-308, 1e-300, 0.49999999681690116, 1.7976931348623157e+308]}"#
        let decoded = try JSONDecoder().decode(Numbers.self, from: Data(json.utf8))
        #expect(decoded.values == [0.1, 0.30000000000000004, 2.2250738585072014e-308, 1e-300, 0.49999999681690116, 1.7976931348623157e+308])
    }
}

/// SplitMix64: a deterministic generator so property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// Uniform in (0, 1) and a standard normal (Box-Muller), for simulations in tests.
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }
    mutating func normal() -> Double { (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform()) }
}
