import BakeoffCore
import Foundation
import Testing
import BakeoffReport
import BakeoffSimulation

// MARK: - Fixture

/// One row of Fixtures/assignment/ids.tsv, produced by scripts/reference/assignment_fixture.py from the
/// seed's Python `ABRouter`.
struct AssignmentFixtureRow: Sendable {
    var experiment: String
    var userID: String
    var bucket: Int
    /// The reference result (true = treatment) at each of `AssignmentFixture.splits`.
    var treatment: [Bool]
}

struct AssignmentFixtureError: Error, CustomStringConvertible {
    var description: String
}

enum AssignmentFixture {
    /// The splits of the fixture's result columns, in column order, with the equivalent `--variants` value.
    static let splits: [(split: Double, variants: String)] = [
        (0.2, "treatment=0.2,control=0.8"),
        (0.5, "treatment=0.5,control=0.5"),
        (0.05, "treatment=0.05,control=0.95"),
        (0.3333, "treatment=0.3333,control=0.6667"),
    ]

    private static let loaded: Result<[AssignmentFixtureRow], AssignmentFixtureError> = load()

    static func rows() throws -> [AssignmentFixtureRow] {
        try loaded.get()
    }

    /// Splits on bytes (0x0A, 0x09), not Characters, so IDs are taken exactly as Python wrote them.
    private static func load() -> Result<[AssignmentFixtureRow], AssignmentFixtureError> {
        guard let url = Bundle.module.url(forResource: "ids", withExtension: "tsv", subdirectory: "Fixtures/assignment"),
              let data = try? Data(contentsOf: url)
        else {
            return .failure(AssignmentFixtureError(description: "Fixtures/assignment/ids.tsv is missing; run scripts/reference/assignment_fixture.py"))
        }
        let lines = [UInt8](data).split(separator: 0x0A, omittingEmptySubsequences: true).dropFirst()
        var rows: [AssignmentFixtureRow] = []
        rows.reserveCapacity(lines.count)
        for (number, line) in lines.enumerated() {
            let fields = line.split(separator: 0x09, omittingEmptySubsequences: false).map {
                String(decoding: $0, as: UTF8.self)
            }
            guard fields.count == 3 + splits.count, let bucket = Int(fields[2]) else {
                return .failure(AssignmentFixtureError(description: "ids.tsv line \(number + 2) is malformed"))
            }
            rows.append(AssignmentFixtureRow(
                experiment: fields[0], userID: fields[1], bucket: bucket, treatment: fields[3...].map { $0 == "T" }
            ))
        }
        return .success(rows)
    }

    /// One assigner per fixture experiment for `allocation`.
    static func assigners(_ rows: [AssignmentFixtureRow], _ allocation: Allocation) -> [String: Assigner] {
        var result: [String: Assigner] = [:]
        for row in rows where result[row.experiment] == nil {
            result[row.experiment] = Assigner(experiment: row.experiment, allocation: allocation)
        }
        return result
    }

    /// The rows grouped by experiment, in order of first appearance (so hot loops need no dictionary lookup).
    static func byExperiment(_ rows: [AssignmentFixtureRow]) -> [(experiment: String, rows: [AssignmentFixtureRow])] {
        var order: [String] = []
        var groups: [String: [AssignmentFixtureRow]] = [:]
        for row in rows {
            if groups[row.experiment] == nil { order.append(row.experiment) }
            groups[row.experiment, default: []].append(row)
        }
        return order.map { ($0, groups[$0]!) }
    }
}

// MARK: - Agreement with the Python reference

@Suite("Assignment: agreement with the seed's Python ABRouter")
struct AssignmentReferenceTests {
    @Test func fixtureCoversTheIntendedInputs() throws {
        let rows = try AssignmentFixture.rows()
        #expect(rows.count >= 100_000)
        let uniqueIDs = Set(rows.map { Array($0.userID.utf8) })
        #expect(uniqueIDs.count >= 100_000)
        #expect(Set(rows.map(\.experiment)).count >= 2)
        #expect(rows.contains { !$0.experiment.utf8.allSatisfy { $0 < 0x80 } })
        #expect(rows.filter { $0.userID.utf8.count >= 500 }.count >= 100)
        #expect(rows.contains { $0.userID.contains(" ") })
        #expect(rows.contains { $0.userID.unicodeScalars.contains { $0.value > 0xFFFF } })
    }

    @Test func everyBucketMatches() throws {
        let rows = try AssignmentFixture.rows()
        let assigners = AssignmentFixture.assigners(rows, try Allocation(split: 0.5))
        var mismatches = 0
        for row in rows {
            let bucket = assigners[row.experiment]!.bucket(for: row.userID)
            if bucket != row.bucket {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("bucket \(bucket) != \(row.bucket) for \(row.experiment.debugDescription) / \(row.userID.debugDescription)")
                }
            }
        }
        #expect(mismatches == 0)
        // The static entry point takes the same path without a cached prefix.
        let staticMismatches = rows.prefix(5_000).filter {
            Assigner.bucket(experiment: $0.experiment, userID: $0.userID) != $0.bucket
        }.count
        #expect(staticMismatches == 0)
    }

    @Test(arguments: AssignmentFixture.splits.indices)
    func everySplitMatches(column: Int) throws {
        let rows = try AssignmentFixture.rows()
        let (split, variants) = AssignmentFixture.splits[column]
        let bySplit = AssignmentFixture.assigners(rows, try Allocation(split: split))
        let byVariants = AssignmentFixture.assigners(rows, try Allocation(parsing: variants))
        var mismatches = 0
        for row in rows {
            let expected = row.treatment[column] ? "treatment" : "control"
            let viaSplit = bySplit[row.experiment]!.variant(for: row.userID)
            let viaVariants = byVariants[row.experiment]!.variant(for: row.userID)
            if viaSplit != expected || viaVariants != expected {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("split \(split): expected \(expected), split gave \(viaSplit), --variants gave \(viaVariants) for \(row.userID.debugDescription)")
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: [
        ("user-1", 9),
        ("user-2", 5316),
        ("user-42", 9366),
        ("", 5470),
        ("user-7393", 3000),
    ])
    func knownBuckets(userID: String, bucket: Int) {
        #expect(Assigner.bucket(experiment: "fine-tuned-v2-test", userID: userID) == bucket)
    }

    @Test func idsAreHashedWithoutUnicodeNormalization() {
        // Swift's == treats these as equal; Python (and so the assignment) does not.
        #expect("caf\u{E9}" == "cafe\u{301}")
        #expect(Assigner.bucket(experiment: "fine-tuned-v2-test", userID: "caf\u{E9}") == 993)
        #expect(Assigner.bucket(experiment: "fine-tuned-v2-test", userID: "cafe\u{301}") == 7978)
    }

    /// The cached "{experiment}:" MD5 state must give the same digest for every prefix length,
    /// including prefixes that end exactly on, just before or just after a 64-byte block.
    @Test func cachedPrefixMatchesHashingTheWholeMessage() throws {
        let userIDs = ["", "u", "user-42", String(repeating: "x", count: 55), String(repeating: "é", count: 40), "🧪微调"]
        for length in 0...140 {
            let experiment = String(repeating: "e", count: length)
            let assigner = Assigner(experiment: experiment, allocation: try Allocation(split: 0.5))
            for userID in userIDs {
                let whole = Int(MD5.digest(experiment + ":" + userID).remainder(dividingBy: 10_000))
                #expect(assigner.bucket(for: userID) == whole, "experiment length \(length), user \(userID.debugDescription)")
                #expect(Assigner.bucket(experiment: experiment, userID: userID) == whole)
            }
        }
    }
}

// MARK: - Batched and raw-byte entry points

@Suite("Assignment: Batch, armIndices(for:) and UTF-8 entry points agree with one-at-a-time")
struct AssignmentBatchTests {
    struct Emitted: Equatable {
        var userID: [UInt8]
        var bucket: Int
        var arm: Int
    }

    /// Feeds `ids` through a Batch; IDs of every length class end up side by side in the same group.
    static func runBatch(_ assigner: Assigner, _ ids: [String]) -> [Emitted] {
        var emitted: [Emitted] = []
        var batch = Assigner.Batch(assigner)
        for var id in ids {
            id.withUTF8 { bytes in
                batch.add(utf8: UnsafeRawBufferPointer(bytes)) { userID, bucket, arm in
                    emitted.append(Emitted(userID: Array(userID), bucket: bucket, arm: arm))
                }
            }
        }
        batch.flush { userID, bucket, arm in emitted.append(Emitted(userID: Array(userID), bucket: bucket, arm: arm)) }
        return emitted
    }

    @Test func batchMatchesTheFixture() throws {
        for (experiment, rows) in AssignmentFixture.byExperiment(try AssignmentFixture.rows()) {
            let assigner = Assigner(experiment: experiment, allocation: try Allocation(split: 0.3333))
            let emitted = Self.runBatch(assigner, rows.map(\.userID))
            #expect(emitted.count == rows.count)
            let wrong = zip(rows, emitted).filter { row, out in
                out.userID != Array(row.userID.utf8) || out.bucket != row.bucket || (out.arm == 0) != row.treatment[3]
            }.count
            #expect(wrong == 0, "\(wrong) wrong results for \(experiment)")
        }
    }

    /// Every mix of tail sizes within a group of four: one block, two blocks and the streaming path.
    @Test(arguments: [0, 5, 40, 63, 64, 120])
    func mixedLengthGroups(experimentLength: Int) throws {
        let experiment = String(repeating: "x", count: experimentLength)
        let assigner = Assigner(experiment: experiment, allocation: try Allocation(parsing: "a=0.25,b=0.25,c=0.5"))
        let lengths = [0, 1, 7, 8, 30, 46, 47, 54, 55, 56, 64, 100, 110, 111, 119, 120, 200, 1000]
        var ids: [String] = []
        for (i, a) in lengths.enumerated() {
            for b in lengths {
                ids.append(String(repeating: "é", count: a / 2) + String(repeating: "u", count: a % 2) + "\(i)")
                ids.append(String(repeating: "k", count: b))
            }
        }
        for count in [ids.count, ids.count - 1, ids.count - 2, ids.count - 3, 3, 1, 0] {
            let subset = Array(ids.prefix(count))
            let emitted = Self.runBatch(assigner, subset)
            let expected = subset.map { Emitted(userID: Array($0.utf8), bucket: assigner.bucket(for: $0), arm: assigner.armIndex(for: $0)) }
            #expect(emitted.count == expected.count)
            #expect(zip(emitted, expected).filter { $0 != $1 }.count == 0, "\(count) IDs")
            #expect(assigner.armIndices(for: subset) == expected.map(\.arm), "\(count) IDs")
            #expect(assigner.buckets(for: subset) == expected.map(\.bucket), "\(count) IDs")
        }
        for id in ids {
            let whole = Int(MD5.digest(experiment + ":" + id).remainder(dividingBy: 10_000))
            let viaBytes = Array(id.utf8).withUnsafeBytes { assigner.bucket(utf8: $0) }
            let armViaBytes = Array(id.utf8).withUnsafeBytes { assigner.armIndex(utf8: $0) }
            #expect(viaBytes == whole)
            #expect(armViaBytes == assigner.armIndex(forBucket: whole))
        }
    }

    @Test func armIndicesMatchTheFixture() throws {
        for (experiment, rows) in AssignmentFixture.byExperiment(try AssignmentFixture.rows()) {
            let assigner = Assigner(experiment: experiment, allocation: try Allocation(split: 0.05))
            let arms = assigner.armIndices(for: rows.map(\.userID))
            let wrong = zip(rows, arms).filter { row, arm in (arm == 0) != row.treatment[2] }.count
            #expect(wrong == 0)
            let buckets = assigner.buckets(for: rows.map(\.userID))
            #expect(buckets.count == rows.count)
            #expect(zip(buckets, rows).filter { $0 != $1.bucket }.count == 0)
        }
    }

    struct Stop: Error {}

    @Test func aThrowingEmitDropsOnlyItsGroup() throws {
        let assigner = Assigner(experiment: "fine-tuned-v2-test", allocation: try Allocation(split: 0.5))
        var batch = Assigner.Batch(assigner)
        var seen: [Int] = []
        #expect(throws: Stop.self) {
            for i in 0..<4 {
                try batch.add(utf8: UnsafeRawBufferPointer(start: nil, count: 0)) { (_, bucket, _) throws(Stop) in
                    seen.append(bucket)
                    if i == 3 { throw Stop() }
                }
            }
        }
        #expect(seen == [5470])
        var after: [Int] = []
        for id in ["user-1", "user-2"] {
            Array(id.utf8).withUnsafeBytes { bytes in batch.add(utf8: bytes) { _, bucket, _ in after.append(bucket) } }
        }
        batch.flush { _, bucket, _ in after.append(bucket) }
        #expect(after == [9, 5316])
    }
}

// MARK: - Stability when allocations grow

@Suite("Assignment: growing an arm never moves its users out")
struct AssignmentMonotonicityTests {
    @Test func growingTheSplitKeepsTreatmentUsersInTreatment() throws {
        let groups = AssignmentFixture.byExperiment(try AssignmentFixture.rows())
        var violations = 0
        var disagreements = 0
        for (experiment, rows) in groups {
            var wasTreatment = [Bool](repeating: false, count: rows.count)
            for percent in 1...99 {
                let split = Double(percent) / 100
                let assigner = Assigner(experiment: experiment, allocation: try Allocation(split: split))
                for (i, row) in rows.enumerated() {
                    let isTreatment = assigner.armIndex(for: row.userID) == 0
                    if wasTreatment[i] && !isTreatment {
                        violations += 1
                        if violations <= 5 {
                            Issue.record("\(row.userID.debugDescription) left treatment when the split grew to \(split)")
                        }
                    }
                    if isTreatment != (Double(row.bucket) / 10000.0 < split) { disagreements += 1 }
                    wasTreatment[i] = isTreatment
                }
            }
        }
        #expect(violations == 0)
        #expect(disagreements == 0)
    }

    @Test func growingTheFirstOfThreeArmsKeepsItsUsers() throws {
        let groups = AssignmentFixture.byExperiment(try AssignmentFixture.rows())
        var left = 0
        var disagreements = 0
        for (experiment, rows) in groups {
            var wasInA = [Bool](repeating: false, count: rows.count)
            for percent in stride(from: 1, through: 97, by: 2) {
                let first = Double(percent) / 100
                let rest = (1 - first) / 2
                let allocation = try Allocation(arms: [
                    .init(name: "a", weight: first), .init(name: "b", weight: rest), .init(name: "c", weight: rest),
                ])
                let assigner = Assigner(experiment: experiment, allocation: allocation)
                for (i, row) in rows.enumerated() {
                    let inA = assigner.armIndex(for: row.userID) == 0
                    if wasInA[i] && !inA { left += 1 }
                    // Arm "a" holds exactly the users `split first` would treat.
                    if inA != (Double(row.bucket) / 10000.0 < first) { disagreements += 1 }
                    wasInA[i] = inA
                }
            }
        }
        #expect(left == 0, "\(left) times a user left arm a as it grew")
        #expect(disagreements == 0)
    }

    @Test func laterBoundariesMatchTheEquivalentSplit() throws {
        // 0.1 + 0.2 is 0.30000000000000004 in floating point; arm b must still end where `split 0.3` does.
        let rows = try AssignmentFixture.rows()
        let three = AssignmentFixture.assigners(rows, try Allocation(parsing: "a=0.1,b=0.2,c=0.7"))
        let split01 = AssignmentFixture.assigners(rows, try Allocation(split: 0.1))
        let split03 = AssignmentFixture.assigners(rows, try Allocation(split: 0.3))
        var disagreements = 0
        for row in rows {
            let arm = three[row.experiment]!.armIndex(for: row.userID)
            if (arm == 0) != (split01[row.experiment]!.armIndex(for: row.userID) == 0) { disagreements += 1 }
            if (arm <= 1) != (split03[row.experiment]!.armIndex(for: row.userID) == 0) { disagreements += 1 }
        }
        #expect(disagreements == 0)
        // "user-7393" is in bucket 3000 (normalized 0.3): not below 0.3, so arm c.
        let assigner = Assigner(experiment: "fine-tuned-v2-test", allocation: try Allocation(parsing: "a=0.1,b=0.2,c=0.7"))
        #expect(assigner.variant(for: "user-7393") == "c")
    }
}

// MARK: - Allocation

@Suite("Allocation: construction and lookup")
struct AllocationTests {
    @Test func splitIsTreatmentThenControl() throws {
        let allocation = try Allocation(split: 0.2)
        #expect(allocation.names == ["treatment", "control"])
        #expect(allocation.arms.map(\.weight) == [0.2, 0.8])
        #expect(allocation == (try Allocation(parsing: "treatment=0.2,control=0.8")))
        #expect(allocation.armIndex(forNormalized: 0.1999) == 0)
        #expect(allocation.armIndex(forNormalized: 0.2) == 1)
    }

    @Test func splitExtremes() throws {
        let none = try Allocation(split: 0)
        let all = try Allocation(split: 1)
        for bucket in [0, 1, 5000, 9999] {
            let x = Double(bucket) / 10000.0
            #expect(none.armIndex(forNormalized: x) == 1)
            #expect(all.armIndex(forNormalized: x) == 0)
        }
    }

    @Test func parsingTakesArmsInOrderAndIgnoresSpaces() throws {
        let allocation = try Allocation(parsing: " a = 0.5 , b=0.3,  c =0.2 ")
        #expect(allocation.names == ["a", "b", "c"])
        #expect(allocation.arms.map(\.weight) == [0.5, 0.3, 0.2])
        #expect(allocation.armIndex(forNormalized: 0.4999) == 0)
        #expect(allocation.armIndex(forNormalized: 0.5) == 1)
        #expect(allocation.armIndex(forNormalized: 0.7999) == 1)
        #expect(allocation.armIndex(forNormalized: 0.8) == 2)
        #expect(allocation.armIndex(forNormalized: 0.9999) == 2)
    }

    @Test func singleArmAndZeroWeightArms() throws {
        let single = try Allocation(parsing: "everyone=1")
        #expect(single.armIndex(forNormalized: 0.9999) == 0)
        let withEmpty = try Allocation(parsing: "a=0.5,b=0,c=0.5")
        #expect(withEmpty.armIndex(forNormalized: 0.4999) == 0)
        #expect(withEmpty.armIndex(forNormalized: 0.5) == 2)
    }

    @Test func variantNamesComeFromTheAllocation() throws {
        let allocation = try Allocation(parsing: "baseline=0.34,ft-v1=0.33,ft-v2=0.33")
        let assigner = Assigner(experiment: "fine-tuned-v2-test", allocation: allocation)
        var counts: [String: Int] = [:]
        var inconsistent = 0
        for i in 0..<30_000 {
            let variant = assigner.variant(for: "user-\(i)")
            counts[variant, default: 0] += 1
            if variant != allocation.names[assigner.armIndex(for: "user-\(i)")] { inconsistent += 1 }
        }
        #expect(inconsistent == 0)
        #expect(Set(counts.keys) == ["baseline", "ft-v1", "ft-v2"])
        for (name, share) in [("baseline", 0.34), ("ft-v1", 0.33), ("ft-v2", 0.33)] {
            #expect(abs(Double(counts[name]!) / 30_000 - share) < 0.02)
        }
    }

    @Test(arguments: [
        ("a=0.5,b=0.4", "--variants: weights sum to 0.9, they must sum to 1 (got a=0.5,b=0.4)"),
        ("a=0.5,b=0.6", "--variants: weights sum to 1.1, they must sum to 1 (got a=0.5,b=0.6)"),
        ("", "--variants: expected name=weight pairs separated by commas, e.g. treatment=0.2,control=0.8 (got an empty value)"),
        ("a=0.5,,b=0.5", "--variants: empty entry in 'a=0.5,,b=0.5' (stray comma?); expected name=weight pairs, e.g. treatment=0.2,control=0.8"),
        ("a=0.5,b", "--variants: 'b' is not name=weight, e.g. treatment=0.2,control=0.8"),
        ("=0.5,b=0.5", "--variants: '=0.5' has no arm name before '='"),
        ("a=,b=1", "--variants: arm 'a' has no weight after '=', e.g. a=0.5"),
        ("a=half,b=0.5", "--variants: weight 'half' of arm 'a' is not a number"),
        ("a=nan,b=0.5", "--variants: weight 'nan' of arm 'a' is not a number"),
        ("a=1.5,b=-0.5", "--variants: weight of arm 'b' is -0.5, weights must be >= 0"),
        ("a=0.5,a=0.5", "--variants: arm 'a' appears more than once, names must be unique"),
    ])
    func parsingErrorsNameTheBadPiece(spec: String, message: String) {
        #expect(throws: AssignmentError(message)) { try Allocation(parsing: spec, context: "--variants") }
        // Without a context the library names no flag.
        #expect(throws: AssignmentError(message.replacingOccurrences(of: "--variants:", with: "variants:"))) { try Allocation(parsing: spec) }
    }

    @Test(arguments: [-0.1, 1.0000001, Double.nan, Double.infinity])
    func splitOutsideZeroToOneIsRejected(split: Double) {
        #expect {
            try Allocation(split: split)
        } throws: { error in
            (error as? AssignmentError)?.message.hasPrefix("split must be between 0 and 1") == true
        }
    }

    @Test func armsAreValidated() {
        #expect(throws: AssignmentError("at least one arm is needed")) { try Allocation(arms: []) }
        #expect(throws: AssignmentError("arm names must not be empty")) {
            try Allocation(arms: [.init(name: "", weight: 1)])
        }
        #expect(throws: AssignmentError("weights sum to 0.3, they must sum to 1 (got a=0.1,b=0.2)")) {
            try Allocation(arms: [.init(name: "a", weight: 0.1), .init(name: "b", weight: 0.2)])
        }
        // Within 1e-9 of 1 is accepted.
        #expect(throws: Never.self) {
            try Allocation(arms: [.init(name: "a", weight: 0.1), .init(name: "b", weight: 0.2), .init(name: "c", weight: 0.7)])
        }
    }

    @Test func errorsDescribeThemselves() {
        let error = AssignmentError("--variants: something")
        #expect(error.description == "--variants: something")
        #expect("\(error)" == "--variants: something")
    }
}
