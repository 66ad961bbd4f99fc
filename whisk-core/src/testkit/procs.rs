//! Process ids as actions see them, turned into the host's: in a PID namespace of its own
//! (the process executor's sandbox) an action's `process.pid` is small and the same in every
//! container, so an action reports its *process reference* `"<pid namespace> <pid>"` (the
//! text of `/proc/self/ns/pid`, a space, its pid) and tests find the host's process with
//! [`host_pid`]. Without a PID namespace the reference names the host's namespace and pid.

/// A JavaScript expression: the running process's reference.
pub const NODE_SELF: &str = "(require('fs').readlinkSync('/proc/self/ns/pid') + ' ' + process.pid)";

/// A JavaScript function `ref(pid)`: the reference of process `pid` of the action's
/// namespace (e.g. a child's), to paste into an action's source.
pub const NODE_REF: &str =
    "const ref = (pid) => require('fs').readlinkSync('/proc/self/ns/pid') + ' ' + pid;";

/// A Python expression (with `os` imported): the running process's reference.
pub const PYTHON_SELF: &str = "(os.readlink('/proc/self/ns/pid') + ' ' + str(os.getpid()))";

/// The host's pid of the process with reference `reference` (`"pid:[4026532178] 2"`), if it
/// still exists (a zombie does).
pub fn host_pid(reference: &str) -> Option<u32> {
    let (ns, pid) = reference.trim().rsplit_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let host: u32 = e.file_name().to_str()?.parse().ok()?;
        let link = std::fs::read_link(format!("/proc/{host}/ns/pid")).ok()?;
        if link.to_str()? != ns {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{host}/status")).ok()?;
        let innermost = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .last()?
            .parse::<u32>()
            .ok()?;
        (innermost == pid).then_some(host)
    })
}

/// Whether the process with reference `reference` has ended (a zombie has): once its PID
/// namespace is gone, every process of it has.
pub fn gone(reference: &str) -> bool {
    host_pid(reference).is_none_or(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, None | Some('Z') | Some('X'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_by_its_reference() {
        let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let me = format!("{} {}", ns.display(), std::process::id());
        assert_eq!(host_pid(&me), Some(std::process::id()));
        assert!(!gone(&me));
        assert_eq!(host_pid(&format!("{} 0", ns.display())), None);
        assert_eq!(host_pid("pid:[1] 1"), None, "no such namespace");
        assert_eq!(host_pid("nonsense"), None);
        assert!(gone("pid:[1] 1"));
    }
}
