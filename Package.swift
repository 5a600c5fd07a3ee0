// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Bakeoff",
    products: [
        .executable(name: "bakeoff", targets: ["bakeoff"]),
        .library(name: "BakeoffCore", targets: ["BakeoffCore"]),
        .library(name: "BakeoffStatistics", targets: ["BakeoffStatistics"]),
        .library(name: "BakeoffStore", targets: ["BakeoffStore"]),
        .library(name: "BakeoffGateway", targets: ["BakeoffGateway"]),
    ],
    targets: [
        // Pure numerics: distributions, tests, intervals, power. No I/O, no clocks.
        .target(name: "BakeoffStatistics"),
        // Experiments, assignment, events, metrics, analysis, reports, simulation.
        // Four MD5 compressions in SSE2 registers, for batch assignment (see the file for why C).
        .target(name: "CMD5x4"),
        .target(name: "BakeoffCore", dependencies: ["BakeoffStatistics", "CMD5x4"]),
        // C libraries from Debian (the Makefile installs the -dev packages).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        // libmicrohttpd's variadic connection-info call, wrapped for Swift.
        .target(name: "CMicroHTTPDSupport", dependencies: ["CMicroHTTPD"]),
        // Typed wrappers for libcurl's variadic setopt/getinfo, which Swift cannot call.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        // The embedded event store (SQLite, WAL): one writer thread, group commits, export.
        .target(name: "BakeoffStore", dependencies: ["BakeoffCore", "CSQLite"]),
        // The live gateway: HTTP server, upstream client, routing, feedback, metrics, mock upstream, load tool.
        .target(name: "BakeoffGateway", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffStore", "CMicroHTTPD", "CMicroHTTPDSupport", "CCurl"]),
        // Every command, its options, parsing and help: runnable in process (tests) with its own console.
        .target(name: "BakeoffCLI", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffStore", "BakeoffGateway"]),
        // The thin command-line tool: BakeoffCLI on the process's streams.
        .executableTarget(name: "bakeoff", dependencies: ["BakeoffCLI"]),
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
        .testTarget(name: "BakeoffStoreTests", dependencies: ["BakeoffStore", "BakeoffCore"]),
        .testTarget(name: "BakeoffGatewayTests", dependencies: ["BakeoffGateway", "BakeoffCore"]),
        .testTarget(name: "BakeoffCLITests", dependencies: ["BakeoffCLI", "BakeoffCore"]),
    ]
)
