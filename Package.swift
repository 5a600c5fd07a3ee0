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
        .target(name: "BakeoffCore", dependencies: ["BakeoffStatistics"]),
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
