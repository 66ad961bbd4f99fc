//! The executable of a `blackbox` action on disk: its `code` written as a file, or the zip
//! archive it is extracted, refusing any entry that would land outside the action's
//! directory.
//!
//! All entry names are checked before anything is written; regular files and directories
//! are written before any symbolic link exists (so no write can pass through one); each link
//! is checked when it is made, and all of them again at the end (a later link can change
//! where an earlier one leads).

use base64::Engine;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The first bytes of a zip archive: a local file header, or an empty archive.
const ZIP_MAGIC: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];
/// The file type bits of a unix mode, and the types that matter here.
const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFDIR: u32 = 0o040000;
/// How many symbolic links [`resolve`] follows before it stops (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

const OUTSIDE: &str = "would be extracted outside the action directory";
const LINK_OUTSIDE: &str = "is a symbolic link pointing outside the action directory";

/// Writes the executable given by an `/init` value's `code` (base64 when `binary`) under
/// `root` and returns its path, `root/exec`. The error is the message of the failed init.
///
/// A zip archive (base64 `code` starting with a zip signature) is extracted into `root`;
/// no entry is written outside it, and no symbolic link it leaves behind on success leads
/// outside it. `root` must exist and be empty.
pub fn materialise(code: &str, binary: bool, root: &Path) -> Result<PathBuf, String> {
    let exe = root.join("exec");
    let data = if binary {
        let data = decode_base64(code)?;
        if data.len() >= 4 && ZIP_MAGIC.contains(&&data[..4]) {
            extract(&data, root)?;
            let real_root = resolve(root);
            if !exe.is_file() || !resolve(&exe).starts_with(&real_root) {
                return Err(
                    "Missing exec: the action archive has no executable file 'exec' at its root."
                        .into(),
                );
            }
            let mode = std::fs::metadata(&exe).map_or(0, |m| m.permissions().mode());
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(mode | 0o755)).map_err(
                |e| {
                    format!(
                        "Cannot extract the action archive: entry 'exec': {}",
                        os_message(&e)
                    )
                },
            )?;
            return Ok(exe);
        }
        data
    } else {
        code.as_bytes().to_vec()
    };
    write_file(&exe, &data, 0o755)
        .map_err(|e| format!("Cannot write the action executable: {}", os_message(&e)))?;
    Ok(exe)
}

/// Base64 as OpenWhisk's clients send it, line breaks and other whitespace skipped.
fn decode_base64(code: &str) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = code.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("The action code is not valid base64: {e}"))
}

/// An OS error's text without the path (paths are the platform's, not the action's).
fn os_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Creates `path` (never through a symbolic link) with `data` and `mode`.
fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The refusal of entry `name`.
fn refuse(name: &str, why: &str) -> String {
    format!("Invalid action archive: entry '{name}' {why}.")
}

/// The path components of zip entry `name`; refuses names that could escape the root.
fn entry_parts(name: &str) -> Result<Vec<&str>, String> {
    if name.contains('\0') {
        return Err(refuse(name, "has an invalid name"));
    }
    let bytes = name.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if name.starts_with(['/', '\\']) || drive || name.split(['/', '\\']).any(|p| p == "..") {
        return Err(refuse(name, OUTSIDE));
    }
    Ok(name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect())
}

/// What `path` (absolute) leads to, following symbolic links as far as they exist, like a
/// non-strict `realpath`: components that do not exist are taken as they are.
fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut followed = 0;
    while let Some(next) = todo.pop() {
        match next.components().next() {
            Some(Component::RootDir) => out = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::Normal(name)) => {
                let candidate = out.join(name);
                match std::fs::read_link(&candidate) {
                    Ok(target) if followed < MAX_LINKS => {
                        followed += 1;
                        todo.extend(
                            target
                                .components()
                                .rev()
                                .map(|c| PathBuf::from(c.as_os_str())),
                        );
                    }
                    _ => out = candidate,
                }
            }
            _ => {}
        }
    }
    out
}

/// The kind of one archive entry.
enum Entry {
    Dir,
    File { executable: bool },
    Link,
}

/// Extracts zip archive `data` into `root` (see the module documentation).
fn extract(data: &[u8], root: &Path) -> Result<(), String> {
    let invalid = |e: &dyn std::fmt::Display| format!("Invalid action archive: {e}");
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| invalid(&e))?;
    let mut entries = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|e| invalid(&e))?;
        let name = file.name().map_err(|e| invalid(&e))?.to_string();
        let mode = file.unix_mode().unwrap_or(0);
        let kind = if mode & S_IFMT == S_IFLNK {
            Entry::Link
        } else if file.is_dir() || mode & S_IFMT == S_IFDIR {
            Entry::Dir
        } else {
            Entry::File {
                executable: mode & 0o111 != 0,
            }
        };
        let parts: Vec<String> = entry_parts(&name)?
            .into_iter()
            .map(str::to_string)
            .collect();
        entries.push((i, name, parts, kind));
    }
    let real_root = resolve(root);
    let cannot = |name: &str, e: &dyn std::fmt::Display| {
        format!("Cannot extract the action archive: entry '{name}': {e}")
    };
    let mut links = Vec::new();
    for (i, name, parts, kind) in &entries {
        if parts.is_empty() {
            continue; // the root itself
        }
        let target = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        match kind {
            Entry::Dir => {
                std::fs::create_dir_all(&target).map_err(|e| cannot(name, &os_message(&e)))?
            }
            Entry::Link => links.push((*i, name, target)),
            &Entry::File { executable } => {
                let mut content = Vec::new();
                archive
                    .by_index(*i)
                    .and_then(|mut f| f.read_to_end(&mut content).map_err(Into::into))
                    .map_err(|e| invalid(&e))?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| cannot(name, &os_message(&e)))?;
                }
                let mode = if executable { 0o755 } else { 0o644 };
                write_file(&target, &content, mode).map_err(|e| cannot(name, &os_message(&e)))?;
            }
        }
    }
    let leads_inside = |p: &Path| resolve(p).starts_with(&real_root);
    for (i, name, target) in &links {
        let mut content = Vec::new();
        archive
            .by_index(*i)
            .and_then(|mut f| f.read_to_end(&mut content).map_err(Into::into))
            .map_err(|e| invalid(&e))?;
        let link = String::from_utf8(content).map_err(|e| cannot(name, &e))?;
        if link.is_empty() || link.contains('\0') || link.starts_with('/') {
            return Err(refuse(name, LINK_OUTSIDE));
        }
        let parent = target.parent().unwrap_or(root);
        if !leads_inside(parent) {
            return Err(refuse(name, OUTSIDE));
        }
        std::fs::create_dir_all(parent).map_err(|e| cannot(name, &os_message(&e)))?;
        std::os::unix::fs::symlink(&link, target).map_err(|e| cannot(name, &os_message(&e)))?;
        if !leads_inside(target) {
            return Err(refuse(name, LINK_OUTSIDE));
        }
    }
    match links.iter().find(|(_, _, target)| !leads_inside(target)) {
        Some((_, name, _)) => Err(refuse(name, LINK_OUTSIDE)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_that_could_escape_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/x",
            "\\x",
            "C:x",
            "a\\..\\x",
            "a\0b",
        ] {
            assert!(entry_parts(bad).is_err(), "{bad:?}");
        }
        assert_eq!(entry_parts("./a//b/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn resolve_follows_links_and_keeps_missing_parts() {
        let dir = std::env::temp_dir().join(format!("whisk-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real")).unwrap();
        let _ = std::fs::remove_file(dir.join("up"));
        let _ = std::fs::remove_file(dir.join("here"));
        std::os::unix::fs::symlink("../..", dir.join("up")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("here")).unwrap();
        let real = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            resolve(&dir.join("here/missing")),
            real.join("real/missing")
        );
        assert!(!resolve(&dir.join("up/x")).starts_with(&real));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
