//! The log follower of a container: the daemon's log stream (`logs --follow`, stdout and
//! stderr multiplexed) fed into the container's [`LogBuffer`], which splits it into lines and
//! activations exactly as it does for a process's pipes.

use crate::logbuf::LogBuffer;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use whisk_core::logs::Stream;

/// Follows the output of container `id` into `buffer` until the container stops (or the
/// stream fails); then both streams count as ended, so waiting for sentinels ends early.
pub(crate) fn follow(docker: Docker, id: String, buffer: Arc<LogBuffer>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..LogsOptions::default()
        };
        let mut frames = docker.logs(&id, Some(options));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(frame) = frames.next().await {
            match frame {
                // Console: a container with a terminal has a single stream.
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    buffer.feed(Stream::Stdout, &mut out, &message)
                }
                Ok(LogOutput::StdErr { message }) => {
                    buffer.feed(Stream::Stderr, &mut err, &message)
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "container log stream ended");
                    break;
                }
            }
        }
        buffer.close(Stream::Stdout, out);
        buffer.close(Stream::Stderr, err);
    })
}
