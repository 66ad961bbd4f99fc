//! Extraction of a blackbox action's zip archive (the actionloop `/init`).

use base64::Engine;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// How deep the action directory sits in the fuzz case's scratch directory: an entry or a
/// link climbing out of it by up to this many levels lands where the check looks.
const DEPTH: [&str; 3] = ["a", "b", "root"];

/// The input as the `code` of a binary blackbox `/init` (base64 of these bytes), written
/// into an empty action directory.
///
/// Nothing appears outside the action directory (the scratch directory around it holds only
/// the directories leading to it) and nothing panics. On success the executable is the
/// regular file `exec` at the root, executable, and every symbolic link left in the
/// directory leads inside it.
pub fn zip_extract(data: &[u8]) {
    let scratch = tempfile::Builder::new()
        .prefix("whisk-fuzz-zip")
        .tempdir()
        .expect("a scratch directory");
    let base = scratch
        .path()
        .canonicalize()
        .expect("the scratch directory");
    let root = DEPTH.iter().fold(base.clone(), |p, c| p.join(c));
    std::fs::create_dir_all(&root).expect("the action directory");
    let code = base64::engine::general_purpose::STANDARD.encode(data);
    let outcome = whisk_exec::materialise_action_code(&code, true, &root);
    only_the_way_in(&base, &root);
    if let Ok(exe) = outcome {
        assert_eq!(exe, root.join("exec"));
        let meta = std::fs::metadata(&exe).expect("the executable exists");
        assert!(meta.is_file() && meta.permissions().mode() & 0o111 != 0);
        assert!(leads_inside(&exe, &root), "exec leads outside");
        for link in links(&root) {
            assert!(
                leads_inside(&link, &root),
                "{} leads outside",
                link.display()
            );
        }
    }
}

/// Panics unless `base` holds nothing but the directories leading to `root`.
fn only_the_way_in(base: &Path, root: &Path) {
    let mut dir = base.to_path_buf();
    for step in DEPTH {
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("a directory on the way")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(
            names,
            [step],
            "written outside the action directory, in {}",
            dir.display()
        );
        dir = dir.join(step);
        let meta = std::fs::symlink_metadata(&dir).expect("the way in");
        assert!(meta.is_dir(), "{} was replaced", dir.display());
    }
    assert_eq!(dir, root);
}

/// Every symbolic link under `dir` (not following links).
fn links(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("a directory") {
            let entry = entry.expect("an entry");
            let kind = entry.file_type().expect("a file type");
            if kind.is_symlink() {
                out.push(entry.path());
            } else if kind.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    out
}

/// Whether `path` leads inside `root` (both absolute, `root` without links): the kernel's
/// answer when the path resolves; for a dangling link, its target taken from the resolved
/// directory that holds it, with `..` applied as written.
fn leads_inside(path: &Path, root: &Path) -> bool {
    if let Ok(real) = path.canonicalize() {
        return real.starts_with(root);
    }
    let Ok(target) = std::fs::read_link(path) else {
        return true; // a missing path: nothing was written there
    };
    let Some(parent) = path.parent().and_then(|p| p.canonicalize().ok()) else {
        return false;
    };
    let mut out = parent;
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    out.starts_with(root)
}
