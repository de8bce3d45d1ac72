// swift-tools-version: 6.2
import PackageDescription

/// `SIOAGENT_WARNINGS_AS_ERRORS=1` (set by scripts/test and scripts/build-release, so CI and the
/// release build): a warning in one of this package's targets fails the build. Only ours: the
/// setting is per target, so the dependencies' own warnings (which SwiftPM hides) cannot break it,
/// which `-Xswiftc -warnings-as-errors` on the command line would not guarantee.
let warningsAsErrors: [SwiftSetting] =
    Context.environment["SIOAGENT_WARNINGS_AS_ERRORS"] == "1" ? [.treatAllWarnings(as: .error)] : []

/// Settings shared by every target.
let swiftSettings: [SwiftSetting] = [
    // Swift 6 language mode: complete strict concurrency checking.
    .swiftLanguageMode(.v6),
    // `any Protocol` is spelled out for existentials.
    .enableUpcomingFeature("ExistentialAny"),
] + warningsAsErrors

// Linux only (glibc): the agent is built on glibc's POSIX calls and NIO's epoll. SwiftPM has no
// way to name Linux as the only platform, so no Apple platform is declared.
let package = Package(
    name: "sioagent",
    products: [
        .executable(name: "sioagent", targets: ["sioagent"]),
        .library(name: "SocketIO", targets: ["SocketIO"]),
        .library(name: "Rules", targets: ["Rules"]),
        .library(name: "Agent", targets: ["Agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        // JSON values shared by the protocol client and the rule language (no I/O).
        .target(
            name: "SIOCore",
            dependencies: [
                .product(name: "OrderedCollections", package: "swift-collections")
            ],
            swiftSettings: swiftSettings
        ),
        // The Socket.IO v5 / Engine.IO v4 client. Knows nothing of rules.
        .target(
            name: "SocketIO",
            dependencies: [
                "SIOCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The system libyaml (Debian: libyaml-dev).
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // YAML documents as node trees with positions, read through libyaml, within limits.
        // The one YAML reader of rule files and the agent's configuration.
        .target(name: "SIOYAML", dependencies: ["SIOCore", "CYAML"], swiftSettings: swiftSettings),
        // The rule language: loading, validation, expressions, matching, timing. Pure.
        .target(
            name: "Rules",
            dependencies: [
                "SIOCore",
                "SIOYAML",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // pidfd_open, close_range and fork/exec for the agent's command runner (syscall(2) is
        // variadic: not callable from Swift).
        // dlsym: posix_spawn extensions found at run time (libdl is part of libc from glibc 2.34).
        .target(name: "CProcessSupport", linkerSettings: [.linkedLibrary("dl")]),
        // The commit and build date that scripts/build-release records (`sioagent --version`,
        // `sioagent_build_info`).
        .target(name: "CBuildInfo"),
        // Unmaps the executable's code pages once start-up is over (the `listen` and `run`
        // commands), so that only the code that runs afterwards stays resident.
        .target(name: "CCodePages"),
        // The runtime: client -> rules -> actions.
        .target(
            name: "Agent",
            dependencies: [
                "SIOCore",
                "SocketIO",
                "Rules",
                "SIOYAML",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "CProcessSupport",
                "CBuildInfo",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The command-line tool: parses arguments and wires the modules.
        .executableTarget(
            name: "sioagent",
            dependencies: [
                "SIOCore",
                "SocketIO",
                "Rules",
                "Agent",
                "CCodePages",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmark client (bench/run.py): answers each `tick` with a `tock` from the event hook.
        .executableTarget(
            name: "sio-bench-client",
            dependencies: [
                "SocketIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/SIOBenchClient",
            swiftSettings: swiftSettings
        ),
        // Rule engine benchmark: `swift run -c release RulesBench` (figures in docs/benchmarks.md).
        .executableTarget(
            name: "RulesBench",
            dependencies: ["Rules", "SIOCore"],
            swiftSettings: swiftSettings
        ),
        // The deterministic simulation: the agent's real cores (outbox, rules, spool and state
        // over a simulated disk) in a world of seeded faults and simulated time.
        .target(
            name: "Simulation",
            dependencies: ["SIOCore", "SocketIO", "Rules", "Agent", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // `scripts/simulate`: runs seeds of the simulation.
        .executableTarget(name: "sioagent-simulate", dependencies: ["Simulation"], swiftSettings: swiftSettings),
        // Paths shared by the test targets: the package, the built binary, the peer's Python.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "SIOCoreTests", dependencies: ["SIOCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "CodePagesTests", dependencies: ["CCodePages"], swiftSettings: swiftSettings),
        .testTarget(name: "SIOYAMLTests", dependencies: ["SIOCore", "SIOYAML"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SocketIOTests",
            dependencies: [
                "SIOCore", "SocketIO", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Peer"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RulesTests", dependencies: ["SIOCore", "SIOYAML", "Rules", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Agent", "SIOCore", "Rules", "SocketIO"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "SIOCore", "SocketIO", "Rules", "Agent", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Peer"],
            swiftSettings: swiftSettings
        ),
    ]
)
