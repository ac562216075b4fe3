// Ready loggers for MLSKit's log lines. java.util.logging exists on the JVM
// and on Android, so this file also goes into the AAR (the Android `Log`
// adapter lives in android/src/main/kotlin).
package dev.mlskit

import java.util.logging.Level

/**
 * Sends MLSKit's log lines to `java.util.logging`: target `openmls::group::x`
 * goes to the logger `mlskit.openmls.group.x`, a child of [root] (`"mlskit"`).
 * SLF4J apps get them through the `jul-to-slf4j` bridge.
 *
 * Install with [install], or `setLogger(JavaUtilLogger(), LogLevel.INFO)`.
 */
class JavaUtilLogger(private val root: String = "mlskit") : Logger {
    override fun log(level: LogLevel, target: String, message: String) {
        java.util.logging.Logger.getLogger(root + "." + target.replace("::", "."))
            .log(julLevel(level), message)
    }

    companion object {
        /** The `java.util.logging` level of an MLSKit level. */
        fun julLevel(level: LogLevel): Level = when (level) {
            LogLevel.ERROR -> Level.SEVERE
            LogLevel.WARN -> Level.WARNING
            LogLevel.INFO -> Level.INFO
            LogLevel.DEBUG -> Level.FINE
            LogLevel.TRACE -> Level.FINEST
        }

        /** Installs a [JavaUtilLogger] for lines at [level] and more severe. */
        fun install(level: LogLevel = LogLevel.INFO) = setLogger(JavaUtilLogger(), level)
    }
}
