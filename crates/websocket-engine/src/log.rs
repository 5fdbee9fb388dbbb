//! Log levels as the session speaks them, and the request log it writes to
//! inside Apache.

use std::os::raw::c_int;

use httpd::conn::Request;
use httpd::log::{Source, APLOG_DEBUG, APLOG_ERR, APLOG_INFO, APLOG_TRACE1, APLOG_WARNING};

/// The levels the engine logs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
    Trace1,
}

impl Level {
    pub fn apache(self) -> c_int {
        match self {
            Level::Error => APLOG_ERR,
            Level::Warning => APLOG_WARNING,
            Level::Info => APLOG_INFO,
            Level::Debug => APLOG_DEBUG,
            Level::Trace1 => APLOG_TRACE1,
        }
    }
}

/// A request's error log under a module's `LogLevel`.
#[derive(Clone, Copy)]
pub struct RequestLog<'r> {
    pub request: Request<'r>,
    pub module_index: c_int,
}

impl crate::session::Log for RequestLog<'_> {
    fn enabled(&self, level: Level) -> bool {
        self.request.log_enabled(self.module_index, level.apache())
    }

    fn write(&self, level: Level, source: Source, msg: &str) {
        self.request.log(self.module_index, level.apache(), source, msg)
    }
}
