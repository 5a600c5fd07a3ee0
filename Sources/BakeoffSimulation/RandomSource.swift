#if canImport(Glibc)
import Glibc
import BakeoffCore
import BakeoffStatistics
#elseif canImport(Darwin)
import Darwin
#endif

/// A seeded generator (xoshiro256**) with the distributions the simulator needs.
///
/// Why our own: runs must be reproducible from a seed on every platform, which `SystemRandomNumberGenerator` is not.
public struct RandomSource: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    public mutating func bernoulli(_ p: Double) -> Bool { uniform() < p }

    public mutating func normal() -> Double {
        var u = uniform()
        while u == 0 { u = uniform() }
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * uniform())
    }

    /// Log-normal with the given median and 95th percentile.
    public mutating func logNormal(median: Double, p95: Double) -> Double {
        let sigma = max(0, log(p95 / median)) / 1.6448536269514722
        return median * exp(sigma * normal())
    }

    /// Gamma(shape, scale 1), Marsaglia and Tsang.
    public mutating func gamma(shape: Double) -> Double {
        if shape < 1 {
            return gamma(shape: shape + 1) * pow(max(uniform(), 1e-300), 1 / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// Beta with mean `mean` and concentration `kappa` (a + b); kappa = infinity gives the constant.
    public mutating func beta(mean: Double, concentration kappa: Double) -> Double {
        if mean <= 0 { return 0 }
        if mean >= 1 { return 1 }
        if !kappa.isFinite { return mean }
        let a = gamma(shape: mean * kappa), b = gamma(shape: (1 - mean) * kappa)
        return a + b > 0 ? a / (a + b) : mean
    }

    public mutating func poisson(_ lambda: Double) -> Int {
        if lambda <= 0 { return 0 }
        if lambda > 30 { return max(0, Int((lambda + lambda.squareRoot() * normal()).rounded())) }
        let l = exp(-lambda)
        var k = 0
        var p = uniform()
        while p > l {
            k += 1
            p *= uniform()
        }
        return k
    }

    public mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }
}
