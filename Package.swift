// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Bakeoff",
    products: [
        .executable(name: "bakeoff", targets: ["bakeoff"]),
        .library(name: "BakeoffCore", targets: ["BakeoffCore"]),
        .library(name: "BakeoffStatistics", targets: ["BakeoffStatistics"]),
    ],
    targets: [
        // Pure numerics: distributions, tests, intervals, power. No I/O, no clocks.
        .target(name: "BakeoffStatistics"),
        // Experiments, assignment, events, metrics, analysis, reports, simulation.
        // Four MD5 compressions in SSE2 registers, for batch assignment (see the file for why C).
        .target(name: "CMD5x4"),
        .target(name: "BakeoffCore", dependencies: ["BakeoffStatistics", "CMD5x4"]),
        // The thin command-line tool.
        .executableTarget(name: "bakeoff", dependencies: ["BakeoffCore", "BakeoffStatistics"]),
        .testTarget(
            name: "BakeoffStatisticsTests",
            dependencies: ["BakeoffStatistics"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "BakeoffCoreTests",
            dependencies: ["BakeoffCore", "BakeoffStatistics"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "BakeoffCLITests", dependencies: ["BakeoffCore"]),
    ]
)
