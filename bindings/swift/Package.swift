// swift-tools-version:6.0
// MLSKit for Swift on Linux and macOS: the UniFFI-generated bindings over the
// Rust library `libmlskit`, plus thin Swift idioms (Sources/MLSKit/Extensions.swift),
// and the executable MLSKitCrossMember of the cross-language test.
//
// Generate the bindings first (`bash bindings/swift/run-tests.sh` does it).
// The Rust library is found in $MLSKIT_LIB_DIR, else in the repository's
// target/debug. Its folder is passed to the linker with -L and -rpath through
// `unsafeFlags`, which SwiftPM allows only in a root package: apps consume
// the xcframework package in ios/ instead.
import Foundation
import PackageDescription

let libDir = Context.environment["MLSKIT_LIB_DIR"]
    ?? URL(fileURLWithPath: Context.packageDirectory)
        .appendingPathComponent("../../target/debug").standardized.path

let package = Package(
    name: "MLSKit",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "MLSKit", targets: ["MLSKit"]),
    ],
    targets: [
        // The generated C header and a modulemap with `link "mlskit"`.
        .systemLibrary(name: "MLSKitFFI", path: "Sources/MLSKitFFI/include"),
        .target(
            name: "MLSKit",
            dependencies: ["MLSKitFFI"],
            path: "Sources/MLSKit",
            linkerSettings: [
                .linkedLibrary("mlskit"),
                .unsafeFlags(["-L", libDir, "-Xlinker", "-rpath", "-Xlinker", libDir]),
            ]
        ),
        // The Swift member of the cross-language test (tests/cross_language/,
        // run through cross-member.sh). An executable target, not a product:
        // the library product above is unchanged.
        .executableTarget(
            name: "MLSKitCrossMember",
            dependencies: ["MLSKit"],
            // A link to tests/cross_language/swift (SwiftPM takes no target outside the package).
            path: "Sources/MLSKitCrossMember"
        ),
        .testTarget(
            name: "MLSKitTests",
            dependencies: ["MLSKit"],
            path: "Tests/MLSKitTests"
        ),
    ]
)
