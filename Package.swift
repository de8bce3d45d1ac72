// swift-tools-version: 6.2
import PackageDescription

/// Settings shared by every target.
let swiftSettings: [SwiftSetting] = [
    // Swift 6 language mode: complete strict concurrency checking.
    .swiftLanguageMode(.v6),
    // `any Protocol` is spelled out for existentials.
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "sioagent",
    platforms: [.macOS(.v15)],
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
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
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
        // The rule language: loading, validation, expressions, matching, timing. Pure.
        .target(
            name: "Rules",
            dependencies: [
                "SIOCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // The runtime: client -> rules -> actions.
        .target(
            name: "Agent",
            dependencies: [
                "SIOCore",
                "SocketIO",
                "Rules",
                .product(name: "Yams", package: "Yams"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
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
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
        // Rule engine benchmark: `swift run -c release RulesBench` (figures in README).
        .executableTarget(
            name: "RulesBench",
            dependencies: ["Rules", "SIOCore"],
            swiftSettings: swiftSettings
        ),
        // Paths shared by the test targets: the package, the built binary, the peer's Python.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "SIOCoreTests", dependencies: ["SIOCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SocketIOTests",
            dependencies: [
                "SIOCore", "SocketIO", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Peer"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RulesTests", dependencies: ["SIOCore", "Rules", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "SIOCore", "SocketIO", "Rules", "Agent", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Peer"],
            swiftSettings: swiftSettings
        ),
    ]
)
