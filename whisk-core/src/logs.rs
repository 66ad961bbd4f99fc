//! Activation log lines: capture form, OpenWhisk's `time stream: message` text, and limits.

use std::time::SystemTime;

/// The line a runtime prints on stdout and stderr after each activation.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One captured line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When it was read.
    pub time: SystemTime,
    /// Its stream.
    pub stream: Stream,
    /// The text without the newline.
    pub message: String,
}

impl LogLine {
    /// A line read now.
    pub fn now(stream: Stream, message: impl Into<String>) -> Self {
        Self {
            time: SystemTime::now(),
            stream,
            message: message.into(),
        }
    }

    /// OpenWhisk's format `"%-30s %s: %s"`: RFC 3339 time with nanoseconds padded to 30.
    pub fn format(&self) -> String {
        let time = humantime::format_rfc3339_nanos(self.time).to_string();
        format!("{:<30} {}: {}", time, self.stream.as_str(), self.message)
    }
}

/// The line that ends logs cut at `limit_bytes`.
pub fn truncation_line(limit_bytes: u64) -> String {
    format!("Logs were truncated because the total bytes size exceeds the limit of {limit_bytes} bytes.")
}

/// The line appended when an activation failed as a developer error.
pub const DEVELOPER_ERROR_LINE: &str =
    "The action did not initialize or run as expected. Log data might be missing.";

/// Formats `lines`, keeping whole lines up to `limit_bytes` of message text and then
/// OpenWhisk's truncation line.
pub fn format_with_limit(lines: &[LogLine], limit_bytes: u64) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut used: u64 = 0;
    for line in lines {
        let size = line.message.len() as u64;
        if used + size > limit_bytes {
            out.push(LogLine::now(Stream::Stderr, truncation_line(limit_bytes)).format());
            return out;
        }
        used += size;
        out.push(line.format());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn openwhisk_line_format() {
        let l = LogLine {
            time: UNIX_EPOCH + Duration::from_nanos(1_704_067_200_123_456_789),
            stream: Stream::Stdout,
            message: "hi".into(),
        };
        assert_eq!(l.format(), "2024-01-01T00:00:00.123456789Z stdout: hi");
    }

    #[test]
    fn truncates_at_limit() {
        let lines: Vec<_> = (0..5)
            .map(|i| LogLine::now(Stream::Stdout, format!("line{i}")))
            .collect();
        let out = format_with_limit(&lines, 12);
        assert_eq!(out.len(), 3);
        assert!(out[2].ends_with(
            "stderr: Logs were truncated because the total bytes size exceeds the limit of 12 bytes."
        ));
        assert_eq!(format_with_limit(&lines, 1000).len(), 5);
    }
}
