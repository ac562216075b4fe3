// swift-tools-version:5.9
// MLSKit for iOS and macOS apps: the Rust core as a binary target
// (MLSKitFFI.xcframework: static libmlskit.a for iOS device, iOS simulator
// arm64+x86_64, macOS arm64+x86_64, with the C header and modulemap of module
// MLSKitFFI) and the Swift API on top (Sources/MLSKit: the UniFFI-generated
// MLSKit.swift plus bindings/swift's hand-written Sources/MLSKit/*.swift).
//
// Both are written by build-xcframework.sh (on a Mac) and never committed.
// To publish, zip the xcframework and swap the binary target for
//   .binaryTarget(name: "MLSKitFFI", url: "https://…/MLSKitFFI.xcframework.zip",
//                 checksum: "<swift package compute-checksum MLSKitFFI.xcframework.zip>")
import PackageDescription

let package = Package(
    name: "MLSKit",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "MLSKit", targets: ["MLSKit"]),
    ],
    targets: [
        .binaryTarget(name: "MLSKitFFI", path: "MLSKitFFI.xcframework"),
        .target(
            name: "MLSKit",
            dependencies: ["MLSKitFFI"],
            path: "Sources/MLSKit"
        ),
    ]
)
