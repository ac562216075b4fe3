//! Log lines from MLSKit and OpenMLS (which validation rule failed, when a
//! group is reloaded after a failed batch, when a retry finds its batch
//! landed) into the app's own logger.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock, RwLock};

use crate::core::storage::overlay::as_callback;
use crate::ffi::error::MlsError;

/// How severe a log line is, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed that the app should look at (a corrupt record, a
    /// store taken over).
    Error,
    /// An input was refused or an operation failed and was rolled back.
    Warn,
    /// Notable events: a retry found its batch landed.
    Info,
    /// Details of failed operations, OpenMLS's validation steps.
    Debug,
    /// Everything OpenMLS traces (very verbose).
    Trace,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    fn of(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// Receives MLSKit's log lines. Implement it over your platform's logger, or
/// use a ready one: Python's `logging` (installed by default, logger
/// `mlskit`), Kotlin `JavaUtilLogger` / `AndroidLogger`, Swift `OSLogLogger`.
///
/// Called from any thread, possibly while MLSKit holds a group's lock: it
/// must return quickly and must not call back into MLSKit (such a call fails
/// with `ReentrantCall`). Lines never contain key material, plaintext, PSKs
/// or exporter secrets.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One line. `target` names where it comes from (`mlskit::client`,
    /// `openmls::group::...`).
    fn log(&self, level: LogLevel, target: String, message: String);
}

/// The process's one `log` logger; forwards to the app's `Logger`.
struct HostLog {
    logger: RwLock<Option<Arc<dyn Logger>>>,
}

static HOST_LOG: HostLog = HostLog {
    logger: RwLock::new(None),
};

impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let logger = match self.logger.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(logger) = logger else { return };
        let (level, target, message) = (
            LogLevel::of(record.level()),
            record.target().to_string(),
            record.args().to_string(),
        );
        // A logger that throws (or a Rust one that panics) loses its line,
        // never the operation that logged it.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            as_callback(|| logger.log(level, target, message))
        }));
    }

    fn flush(&self) {}
}

/// Whether `HOST_LOG` became the process's `log` logger (tried once).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Sends MLSKit's log lines at `level` and more severe to `logger`,
/// replacing the logger set before; `None` stops logging. Can be called any
/// number of times, from any thread.
///
/// Errors: `ValidationFailed` if the process already has another Rust `log`
/// logger (an app that embeds MLSKit's Rust crate with its own logger gets
/// MLSKit's lines there).
#[uniffi::export]
pub fn set_logger(logger: Option<Arc<dyn Logger>>, level: LogLevel) -> Result<(), MlsError> {
    if !*INSTALLED.get_or_init(|| log::set_logger(&HOST_LOG).is_ok()) {
        return Err(MlsError::ValidationFailed {
            reason: "another Rust logger is installed in this process".into(),
        });
    }
    let on = logger.is_some();
    match HOST_LOG.logger.write() {
        Ok(mut guard) => *guard = logger,
        Err(poisoned) => *poisoned.into_inner() = logger,
    }
    log::set_max_level(if on {
        level.filter()
    } else {
        log::LevelFilter::Off
    });
    Ok(())
}

/// Changes which lines reach the logger: `level` and more severe.
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    log::set_max_level(level.filter());
}
