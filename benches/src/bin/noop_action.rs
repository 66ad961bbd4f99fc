//! A native no-op action for OpenWhisk's actionloop protocol (the load harness's `native`
//! scenario): answers every JSON line on stdin with `{}` on file descriptor 3.

use std::io::{BufRead, Write};

fn main() -> std::io::Result<()> {
    let mut results = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/3")?;
    if std::env::var_os("OW_WAIT_FOR_ACK").is_some() {
        results.write_all(b"{\"ok\":true}\n")?;
    }
    for line in std::io::stdin().lock().lines() {
        line?;
        results.write_all(b"{}\n")?;
    }
    Ok(())
}
