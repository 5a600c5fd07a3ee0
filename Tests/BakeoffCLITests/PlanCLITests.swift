import BakeoffCore
import BakeoffStatistics
import Foundation
import Testing

/// `bakeoff plan --looks K`: the group-sequential design beside the fixed horizon and the confidence sequence, in
/// the table and the JSON, and its usage mistakes.
@Suite("bakeoff plan, group-sequential")
struct PlanCLITests {
    static let article = ["plan", "--baseline", "0.75", "--mde", "0.05"]

    /// Equal but for the last bit a JSON number's round trip through Foundation's parser may change.
    static func close(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-14 * max(1, abs($1)) }
    }

    @Test func jsonCarriesTheDesignItsBoundariesAndTheConfidenceSequence() throws {
        let r = try CLI.run(Self.article + ["--power", "0.9", "--looks", "5", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let gs = try #require(json["group_sequential"] as? [String: Any])
        #expect(gs["looks"] as? Int == 5)
        #expect(gs["spending"] as? String == "obrien-fleming")
        #expect(gs["alternative"] as? String == "two-sided")
        let design = GroupSequentialDesign(alpha: 0.05, spending: .obrienFleming).sampleSize(power: 0.9, fractions: [0.2, 0.4, 0.6, 0.8, 1])
        let inflation = try #require(gs["inflation_factor"] as? Double)
        #expect(Self.close([inflation], [design.inflationFactor]))
        #expect(abs(inflation - 1.03) < 0.01)
        let exact = try #require(json["exact_control_n"] as? Double)
        let perGroup = Int((exact * inflation).rounded(.up))
        #expect(gs["maximum_control_n"] as? Int == perGroup)
        #expect(gs["maximum_total_n"] as? Int == 2 * perGroup)
        let alternative = try #require(gs["expected_total_n_alternative"] as? Int)
        let null = try #require(gs["expected_total_n_null"] as? Int)
        #expect(alternative < (json["total_n"] as? Int ?? 0) && null <= 2 * perGroup && null > alternative)
        let boundaries = try #require(gs["boundaries"] as? [[String: Any]])
        #expect(boundaries.compactMap { $0["look"] as? Int } == [1, 2, 3, 4, 5])
        #expect(Self.close(boundaries.compactMap { $0["z"] as? Double }, design.boundaries))
        #expect(boundaries.last?["total_n"] as? Int == 2 * perGroup)
        let lastP = try #require(boundaries.last?["nominal_p"] as? Double)
        #expect(abs(lastP - 2 * Normal.sf(design.boundaries[4])) < 1e-15)
        let sequence = try #require(json["confidence_sequence"] as? [String: Any])
        let users = try #require(SequentialTest.users(effect: 0.05, variance: 0.75 * 0.25, ratio: 1, alpha: 0.05, power: 0.9))
        #expect(sequence["total_n"] as? Int == Int(users))
        // Without --looks the JSON is as it was.
        let plain = try CLI.run(Self.article + ["--format", "json"])
        let plainJSON = try #require(JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])
        #expect(plainJSON["group_sequential"] == nil && plainJSON["confidence_sequence"] == nil)
    }

    @Test func pocockSpendingAndOneSidedDesignsAreTheLibrarys() throws {
        let pocock = try CLI.run(Self.article + ["--power", "0.9", "--looks", "5", "--spending", "pocock", "--format", "json"])
        let json = try #require(JSONSerialization.jsonObject(with: Data(pocock.stdout.utf8)) as? [String: Any])
        let gs = try #require(json["group_sequential"] as? [String: Any])
        let inflation = try #require(gs["inflation_factor"] as? Double)
        let direct = GroupSequentialDesign(alpha: 0.05, spending: .pocock).sampleSize(power: 0.9, fractions: [0.2, 0.4, 0.6, 0.8, 1])
        #expect(Self.close([inflation], [direct.inflationFactor]))
        #expect(abs(inflation - 1.2) < 0.02)
        let oneSided = try CLI.run(Self.article + ["--looks", "3", "--spending", "power:3", "--one-sided", "--format", "json"])
        let one = try #require(JSONSerialization.jsonObject(with: Data(oneSided.stdout.utf8)) as? [String: Any])
        let design = try #require(one["group_sequential"] as? [String: Any])
        #expect(design["spending"] as? String == "power:3")
        #expect(design["alternative"] as? String == "larger")
        let z = try #require((design["boundaries"] as? [[String: Any]])?.compactMap { $0["z"] as? Double })
        #expect(Self.close(z, GroupSequentialDesign(alpha: 0.05, spending: .power(rho: 3), twoSided: false).boundaries(Look.fractions([1.0 / 3, 2.0 / 3, 1]))))
    }

    @Test func theTableShowsTheBoundariesAndTheThreeWaysOfTestingSideBySide() throws {
        let r = try CLI.run(Self.article + ["--looks", "5", "--daily-users", "500"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = r.stdout
        #expect(out.contains("per group         1179 users"), "the fixed-horizon part is unchanged: \(out)")
        #expect(out.contains("Group-sequential: 5 equally spaced looks, O'Brien-Fleming-type spending, two-sided"))
        #expect(out.contains("inflation factor 1.0"))
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.firstIndex { $0.contains("|z| boundary") && $0.contains("nominal p (two-sided)") })
        #expect(lines[header + 1].hasPrefix("----"))
        let looks = lines[(header + 2)...].prefix { !$0.isEmpty }
        #expect(looks.count == 5, "\(out)")
        #expect(looks.allSatisfy { $0.count == lines[header].count }, "aligned: \(out)")
        for label in ["fixed horizon", "group-sequential", "confidence sequence"] {
            #expect(lines.contains { $0.hasPrefix(label) }, "\(label) missing: \(out)")
        }
        #expect(out.contains("at most;") && out.contains("expected with the effect"))
        #expect(out.contains("at 500 a day"))
        #expect(out.contains("always valid, any number of looks (two-sided, N* 5000)"))
    }

    @Test func badLooksAndSpendingAreUsageMistakesNamingTheFlag() throws {
        let zero = try CLI.run(Self.article + ["--looks", "0"])
        #expect(zero.status == 2)
        #expect(zero.stderr.contains("--looks must be from 1 to \(SampleSize.maximumLooks) (e.g. 5: a look after each fifth of the users), got 0"), "\(zero.stderr)")
        let nonsense = try CLI.run(Self.article + ["--looks", "5", "--spending", "nonsense"])
        #expect(nonsense.status == 2)
        #expect(nonsense.stderr.contains("--spending must be one of obrien-fleming, pocock, power, power:RHO, got \"nonsense\""), "\(nonsense.stderr)")
        let typo = try CLI.run(Self.article + ["--looks", "5", "--spending", "pocok"])
        #expect(typo.status == 2 && typo.stderr.contains("did you mean \"pocock\"?"), "\(typo.stderr)")
        let rho = try CLI.run(Self.article + ["--looks", "5", "--spending", "power:0"])
        #expect(rho.status == 2 && rho.stderr.contains("power:RHO, got \"power:0\""), "\(rho.stderr)")
        let alone = try CLI.run(Self.article + ["--spending", "pocock"])
        #expect(alone.status == 2 && alone.stderr.contains("--spending goes with --looks K"), "\(alone.stderr)")
        let paired = try CLI.run(["plan", "--win-rate", "0.55", "--looks", "3"])
        #expect(paired.status == 2 && paired.stderr.contains("--looks is for the live test's users"), "\(paired.stderr)")
        let help = try CLI.run(["help", "plan"])
        #expect(help.stdout.contains("--looks K") && help.stdout.contains("--spending obrien-fleming|pocock|power|power:RHO"))
    }
}
