//! `whisk-sim` as a user runs it: the report table and chart, generate → report --trace
//! determinism, and the errors for bad input (exit code 2, the library's message).

use std::path::Path;
use std::process::{Command, Output};

const SCHEDULERS: [&str; 3] = ["sharding", "least-loaded", "warm-aware"];
const POLICIES: [&str; 2] = ["fixed-10m", "hybrid-histogram"];
const SMALL: [&str; 4] = ["--functions", "20", "--minutes", "5"];

fn whisk_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whisk-sim"))
        .args(args)
        .output()
        .expect("run whisk-sim")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(args: &[&str]) -> String {
    let out = whisk_sim(args);
    assert!(
        out.status.success(),
        "whisk-sim {args:?} failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts exit code 2 and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = whisk_sim(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "whisk-sim {args:?}: stdout {}\nstderr {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A minimal XML well-formedness check: tags nest and close, the root is `<svg>`.
fn assert_well_formed_svg(svg: &str) {
    let body = svg.trim_start();
    assert!(
        body.starts_with("<svg") || body.starts_with("<?xml"),
        "{}",
        &svg[..svg.len().min(200)]
    );
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().expect("closing tag without opening");
            assert_eq!(open, name.trim(), "mismatched closing tag");
        } else {
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap();
            if stack.is_empty() {
                roots += 1;
                assert_eq!(name, "svg", "root element");
            }
            if !tag.ends_with('/') {
                stack.push(name.to_string());
            }
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert_eq!(roots, 1);
}

#[test]
fn report_prints_every_row_and_comparison_and_writes_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("chart.svg");
    let svg_arg = svg_path.to_str().unwrap();
    let mut args = vec!["report"];
    args.extend(SMALL);
    args.extend(["--invokers", "2,4", "--memory", "1024", "--svg", svg_arg]);
    let out = ok(&args);

    // One block per configuration, each with a header and every scheduler × policy row.
    let blocks: Vec<&str> = out.split("== ").filter(|b| !b.is_empty()).collect();
    assert_eq!(blocks.len(), 2, "{out}");
    assert!(blocks[0].starts_with("2 invokers × 1024 MB"), "{out}");
    assert!(blocks[1].starts_with("4 invokers × 1024 MB"), "{out}");
    for block in &blocks {
        for col in ["invocations", "cold %", "p99 ms", "idle GB·s", "failed"] {
            assert!(block.contains(col), "no column {col}: {block}");
        }
        for policy in POLICIES {
            for scheduler in SCHEDULERS {
                let label = format!("{scheduler} / {policy}");
                let row = block
                    .lines()
                    .find(|l| l.starts_with(&label))
                    .unwrap_or_else(|| panic!("no row {label}: {block}"));
                assert_eq!(row.split_whitespace().count(), 3 + 13, "{row}");
            }
            assert!(
                block.contains(&format!("{policy}: warm-aware vs sharding: cold starts")),
                "no comparison for {policy}: {block}"
            );
        }
    }

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_well_formed_svg(&svg);
    for text in SCHEDULERS.iter().chain(&POLICIES).chain(&[
        "cold-start rate",
        "p99 latency",
        "2 invokers",
        "4 invokers",
    ]) {
        assert!(svg.contains(text), "the chart has no label {text}");
    }
    // Six bars (plus a legend swatch per scheduler) per panel, two panels per configuration.
    assert!(svg.matches("<rect").count() >= 2 * 2 * 6);
}

#[test]
fn generate_then_report_trace_gives_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let path_arg = path.to_str().unwrap();
    let synthetic = ["--functions", "20", "--minutes", "5", "--seed", "7"];

    let mut args = vec!["generate"];
    args.extend(synthetic);
    let to_stdout = ok(&args);
    args.extend(["-o", path_arg]);
    assert_eq!(ok(&args), "");
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(file, to_stdout);
    assert!(file
        .lines()
        .any(|l| l == "at_ms,function,duration_ms,memory_mb,init_ms"));

    let from_file = ok(&["report", "--trace", path_arg]);
    let mut args = vec!["report"];
    args.extend(synthetic);
    let synthetic_report = ok(&args);
    assert_eq!(from_file, synthetic_report);

    // `run` gives one row, the same as the report's.
    let one = ok(&[
        "run",
        "--scheduler",
        "warm-aware",
        "--keep-alive",
        "hybrid",
        "--trace",
        path_arg,
    ]);
    fn row(text: &str) -> Vec<&str> {
        text.lines()
            .find(|l| l.starts_with("warm-aware / hybrid-histogram"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_else(|| panic!("no row in {text}"))
    }
    assert_eq!(row(&one), row(&from_file));
    assert!(!one.contains("sharding /"), "{one}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn malformed_trace_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.csv",
        "at_ms,function,duration_ms,memory_mb,init_ms\n0,f,10,128,100\n5,f,abc,128,100\n",
    );
    let err = fails(&["report", "--trace", &path]);
    assert!(err.contains("line 3:"), "{err}");
    assert!(err.contains("duration_ms 'abc'"), "{err}");
    assert!(err.contains("bad.csv"), "{err}");
}

#[test]
fn trace_larger_than_an_invoker_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "big.csv",
        "at_ms,function,duration_ms,memory_mb,init_ms\n0,small,10,128,100\n5,big,10,512,100\n",
    );
    let err = fails(&["report", "--trace", &path, "--memory", "256"]);
    assert!(err.contains("more than an invoker's 256 MB"), "{err}");
    assert!(err.contains("'big' needs 512 MB"), "{err}");
    let err = fails(&[
        "run",
        "--scheduler",
        "sharding",
        "--trace",
        &path,
        "--memory",
        "1024,256",
    ]);
    assert!(err.contains("more than an invoker's 256 MB"), "{err}");
}

#[test]
fn unreadable_file_and_bad_flags() {
    let err = fails(&["report", "--trace", "/nonexistent/trace.csv"]);
    assert!(err.contains("cannot read /nonexistent/trace.csv"), "{err}");

    // clap's own errors (also exit code 2).
    let err = fails(&["run", "--scheduler", "nope"]);
    assert!(err.contains("invalid value 'nope'"), "{err}");
    assert!(err.contains("warm-aware"), "{err}");
    let err = fails(&["report", "--trace", "x.csv", "--functions", "3"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
