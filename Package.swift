// swift-tools-version: 6.0
import PackageDescription

// The targets and what each may import (README, "Architecture"). Events flow one way:
// events -> store -> sufficient statistics -> tests -> report -> decision.
let package = Package(
    name: "Bakeoff",
    products: [
        .executable(name: "bakeoff", targets: ["bakeoff"]),
        .library(name: "BakeoffStatistics", targets: ["BakeoffStatistics"]),
        .library(name: "BakeoffCore", targets: ["BakeoffCore"]),
        .library(name: "BakeoffReport", targets: ["BakeoffReport"]),
        .library(name: "BakeoffStore", targets: ["BakeoffStore"]),
        .library(name: "BakeoffHTTP", targets: ["BakeoffHTTP"]),
        .library(name: "BakeoffGateway", targets: ["BakeoffGateway"]),
        .library(name: "BakeoffTelemetry", targets: ["BakeoffTelemetry"]),
        .library(name: "BakeoffEval", targets: ["BakeoffEval"]),
        .library(name: "BakeoffTracking", targets: ["BakeoffTracking"]),
    ],
    targets: [
        // Pure numerics: distributions, tests, intervals, power. No I/O, no clocks.
        .target(name: "BakeoffStatistics"),
        // Four MD5 compressions in SSE2 registers, for batch assignment (see the file for why C).
        .target(name: "CMD5x4"),
        // The domain: plans, metrics, events, assignment, aggregation, analysis, decisions. Bytes in, values out.
        .target(name: "BakeoffCore", dependencies: ["BakeoffStatistics", "CMD5x4"]),
        // Renderers: a report as a table, Markdown, JSON or an HTML page with charts.
        .target(name: "BakeoffReport", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffEval"]),
        // Simulated experiments and the calibration that checks every method by simulation.
        .target(name: "BakeoffSimulation", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffEval"]),
        // C libraries from Debian (the Makefile installs the -dev packages).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        // PostgreSQL's client library: the shared event store of several gateways.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // libmicrohttpd's variadic connection-info call, wrapped for Swift.
        .target(name: "CMicroHTTPDSupport", dependencies: ["CMicroHTTPD"]),
        // Typed wrappers for libcurl's variadic setopt/getinfo, which Swift cannot call.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        // Everything that touches disk: the event store (SQLite, WAL, one writer, group commits), its migrations.
        .target(name: "BakeoffStore", dependencies: ["BakeoffCore", "CSQLite", "CLibPQ"]),
        // HTTP in and out, knowing nothing of OpenAI: the libmicrohttpd server and the libcurl client.
        .target(name: "BakeoffHTTP", dependencies: ["BakeoffCore", "CMicroHTTPD", "CMicroHTTPDSupport", "CCurl"]),
        // OpenTelemetry: spans, W3C trace context, OTLP over HTTP (protobuf and JSON), the batching exporter.
        .target(name: "BakeoffTelemetry", dependencies: ["BakeoffCore", "BakeoffHTTP"]),
        // The live gateway: OpenAI's protocol, routing, assignment, feedback, metrics.
        .target(name: "BakeoffGateway", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffReport", "BakeoffStore", "BakeoffHTTP", "BakeoffEval", "BakeoffTelemetry"]),
        // Offline evals, as pure logic: request datasets and samples, scorers, judge verdicts, paired analysis, decisions.
        .target(name: "BakeoffEval", dependencies: ["BakeoffCore", "BakeoffStatistics"]),
        // Runs an offline eval: every request to every variant through the gateway's upstream path, judges, the results cache.
        .target(name: "BakeoffEvalRunner", dependencies: ["BakeoffEval", "BakeoffCore", "BakeoffStatistics", "BakeoffStore", "BakeoffHTTP", "BakeoffGateway"]),
        // Runs recorded in MLflow: a report as parameters, metrics, tags and files (pure), and the REST client that sends them.
        .target(name: "BakeoffTracking", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffHTTP", "BakeoffReport", "BakeoffEval"]),
        // Development tools, in no library product: the mock upstream (an OpenAI server of its own), the load generator, simulated traffic.
        .target(name: "BakeoffDevTools", dependencies: ["BakeoffCore", "BakeoffHTTP", "BakeoffGateway", "BakeoffSimulation"]),
        // Every command, its options (declared once: parsing and help come from them), runnable in process.
        .target(name: "BakeoffCLI", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffReport", "BakeoffSimulation",
                                                    "BakeoffStore", "BakeoffHTTP", "BakeoffGateway", "BakeoffDevTools",
                                                    "BakeoffEval", "BakeoffEvalRunner", "BakeoffTracking"]),
        // The executable: BakeoffCLI on the process's streams, a few lines.
        .executableTarget(name: "bakeoff", dependencies: ["BakeoffCLI"]),
        // Builders of hand-made events and data for the tests (no test target holds another's helpers).
        .target(name: "BakeoffTestSupport", dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffSimulation", "BakeoffStore", "BakeoffHTTP", "BakeoffGateway", "BakeoffTelemetry"], path: "Tests/BakeoffTestSupport"),
        .testTarget(
            name: "BakeoffStatisticsTests",
            dependencies: ["BakeoffStatistics"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "BakeoffCoreTests",
            dependencies: ["BakeoffCore", "BakeoffStatistics", "BakeoffReport", "BakeoffSimulation", "BakeoffTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "BakeoffReportTests", dependencies: ["BakeoffReport", "BakeoffCore", "BakeoffSimulation", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffSimulationTests", dependencies: ["BakeoffSimulation", "BakeoffCore", "BakeoffStatistics", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffStoreTests", dependencies: ["BakeoffStore", "BakeoffCore", "BakeoffReport", "BakeoffSimulation", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffHTTPTests", dependencies: ["BakeoffHTTP", "BakeoffCore", "BakeoffDevTools", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffGatewayTests", dependencies: ["BakeoffGateway", "BakeoffHTTP", "BakeoffCore", "BakeoffStore", "BakeoffDevTools", "BakeoffTestSupport", "BakeoffTelemetry"]),
        .testTarget(name: "BakeoffTelemetryTests", dependencies: ["BakeoffTelemetry", "BakeoffCore", "BakeoffHTTP", "BakeoffTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BakeoffDevToolsTests", dependencies: ["BakeoffDevTools", "BakeoffHTTP", "BakeoffCore", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffEvalTests", dependencies: ["BakeoffEval", "BakeoffCore", "BakeoffStatistics"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BakeoffEvalRunnerTests", dependencies: ["BakeoffEvalRunner", "BakeoffEval", "BakeoffCore", "BakeoffHTTP", "BakeoffGateway", "BakeoffStore", "BakeoffDevTools", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffTrackingTests", dependencies: ["BakeoffTracking", "BakeoffCore", "BakeoffEval", "BakeoffHTTP", "BakeoffReport", "BakeoffSimulation", "BakeoffTestSupport"]),
        .testTarget(name: "BakeoffCLITests", dependencies: ["BakeoffCLI", "BakeoffCore", "BakeoffEval", "BakeoffDevTools", "BakeoffStatistics", "BakeoffTestSupport"]),
    ]
)
