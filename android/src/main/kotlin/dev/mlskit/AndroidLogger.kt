// MLSKit's log lines into Android's Log (logcat). Compiled by the Android
// build only (it needs the Android SDK); the JVM tests cover the Logger
// interface itself through JavaUtilLogger.
package dev.mlskit

import android.util.Log

/**
 * Sends MLSKit's log lines to logcat under [tag], with the line's target in
 * front of the message. Install with `setLogger(AndroidLogger(), LogLevel.INFO)`.
 */
class AndroidLogger(private val tag: String = "mlskit") : Logger {
    override fun log(level: LogLevel, target: String, message: String) {
        val line = "$target: $message"
        when (level) {
            LogLevel.ERROR -> Log.e(tag, line)
            LogLevel.WARN -> Log.w(tag, line)
            LogLevel.INFO -> Log.i(tag, line)
            LogLevel.DEBUG -> Log.d(tag, line)
            LogLevel.TRACE -> Log.v(tag, line)
        }
    }
}
