// Ready loggers for MLSKit's log lines (`setLogger(logger:level:)`).
import Foundation

#if canImport(os)
import os

/// Sends MLSKit's log lines to the unified logging system: `os.Logger` with
/// `subsystem`, the line's target (`mlskit::client`, `openmls::group::…`) as
/// category. Lines hold no secrets, so they are logged as public.
/// Install with `try setLogger(logger: OSLogLogger(), level: .info)`.
public final class OSLogLogger: Logger {
    private let subsystem: String

    public init(subsystem: String = "dev.mlskit") {
        self.subsystem = subsystem
    }

    public func log(level: LogLevel, target: String, message: String) {
        let logger = os.Logger(subsystem: subsystem, category: target)
        switch level {
        case .error: logger.error("\(message, privacy: .public)")
        case .warn: logger.warning("\(message, privacy: .public)")
        case .info: logger.info("\(message, privacy: .public)")
        case .debug: logger.debug("\(message, privacy: .public)")
        case .trace: logger.trace("\(message, privacy: .public)")
        }
    }
}
#endif
