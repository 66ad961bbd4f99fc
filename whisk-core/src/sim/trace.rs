//! Invocation traces: the [`Trace`] type the simulator replays, whisk's own trace CSV format,
//! and a reader for the public Azure Functions 2019 trace.
//!
//! # The model
//!
//! A [`Trace`] is a list of [`Function`]s (an OpenWhisk action each: name, memory limit,
//! runtime kind) and a list of [`Invocation`]s sorted by arrival time. Times are integer
//! milliseconds from the start of the trace. An invocation carries its own run time
//! (`duration_ms`, without any cold start) and the initialisation time its function's container
//! needs when the invocation has to start one (`init_ms`, the cold-start cost); whether it
//! actually runs cold is for the simulator to decide.
//!
//! # whisk's trace CSV format
//!
//! Plain text, UTF-8, one record per line; this is what [`Trace::write_csv`] writes (and what
//! [`generate`](super::generate) produces) and what [`Trace::parse_csv`] reads:
//!
//! ```text
//! # a comment
//! at_ms,function,duration_ms,memory_mb,init_ms
//! 0,resize-image,120,256,350
//! 15,send-mail,800,128,300
//! 15,resize-image,95,256,350
//! ```
//!
//! - Lines whose first non-blank character is `#` are comments; blank lines are ignored. Both
//!   may appear anywhere, also before the header.
//! - The first other line must be the header `at_ms,function,duration_ms,memory_mb,init_ms`
//!   exactly (blanks around fields are ignored, everywhere).
//! - Every following line is one invocation with exactly 5 comma-separated fields:
//!   - `at_ms`: arrival time in ms from the trace start, a non-negative integer;
//!   - `function`: the action name, a valid OpenWhisk entity name
//!     ([`EntityName`]; it cannot contain a comma);
//!   - `duration_ms`: the run time in ms (cold start excluded), a non-negative integer;
//!   - `memory_mb`: the function's memory limit in MB, a positive integer, **the same on every
//!     line of a function** (a differing value is an error naming both lines);
//!   - `init_ms`: the container initialisation time in ms paid if this invocation starts a
//!     container, a non-negative integer. It may differ between lines of one function (it is
//!     kept per invocation).
//! - Lines need not be in time order: the parser sorts invocations by `at_ms` with a stable
//!   sort, so equal times keep their file order.
//! - Functions are numbered in the order of their first line in the file. The format stores
//!   no runtime kind: every parsed function gets [`DEFAULT_KIND`]. Functions without any
//!   invocation are not written. So `parse_csv(write_csv(t))` equals `t` up to the numbering of
//!   functions, the kinds, and functions that are never invoked.
//! - Integers are plain ASCII digits (no sign, no decimal point) that fit in a `u64`.
//!
//! Errors ([`TraceError`]) name the 1-based line they were found on, e.g.
//! `line 17: duration_ms 'abc' is not a non-negative integer`.
//!
//! # The Azure Functions 2019 trace
//!
//! [`read_azure`] and [`read_azure_day`] read the CSV files of the public *Azure Functions
//! Trace 2019* (<https://github.com/Azure/AzurePublicDataset>, `AzureFunctionsDataset2019.md`;
//! Shahrad et al., "Serverless in the Wild", USENIX ATC 2020). The column names used here are
//! the ones of that document (revision 2, 2020-06-18); columns are found by name in each file's
//! header, so their order does not matter and extra columns are ignored:
//!
//! - `invocations_per_function_md.anon.dXX.csv` (required): `HashOwner, HashApp,
//!   HashFunction, Trigger, 1, ..., 1440`, the number of invocations of each function in each
//!   minute of one day. Rows with the same `(HashOwner, HashApp, HashFunction)` are merged
//!   (their counts add up). Counts must be non-negative integers.
//! - `function_durations_percentiles.anon.dXX.csv` (optional): `HashOwner, HashApp,
//!   HashFunction, Average, Count, Minimum, Maximum, percentile_Average_0, _1, _25, _50, _75,
//!   _99, _100` in ms. Only the seven `percentile_Average_*` columns are used (numbers, decimals
//!   allowed); the first row of a function wins.
//! - `app_memory_percentiles.anon.dXX.csv` (optional; the dataset has no file for days 13 and
//!   14): `HashOwner, HashApp, SampleCount, AverageAllocatedMb, AverageAllocatedMb_pct1, ...,
//!   _pct100`. Only `AverageAllocatedMb` is used; the first row of an app wins.
//!
//! How the counts become a trace:
//!
//! - Minutes are numbered from 0 (column `1` is minute 0). [`AzureOptions::minutes`] keeps a
//!   range of them; the trace starts at the range's first minute.
//! - Functions with no invocation in the range are dropped; [`AzureOptions::top_n`] keeps only
//!   the N functions with the most invocations. Functions are numbered by decreasing
//!   invocation count (ties: file order), so function 0 is the busiest.
//! - The `c` invocations of a minute are spread within it: for `timer`-triggered functions
//!   evenly (`k * 60000 / c` ms into the minute, so a timer stays periodic), for every other
//!   trigger at uniformly random offsets (a Poisson process within the minute). The random
//!   numbers come from a stream per function derived from [`AzureOptions::seed`] and the
//!   function's hashes, so a function's times do not depend on which other functions are kept.
//! - Each invocation's run time is sampled from its function's percentiles: a uniform `u` in
//!   `[0, 1)` is mapped piecewise-linearly through the points (0, p0), (0.01, p1), (0.25, p25),
//!   (0.5, p50), (0.75, p75), (0.99, p99), (1, p100), rounded to ms, at least 1 ms. A function
//!   missing from the durations file (or without one) runs [`AzureOptions::default_duration_ms`].
//! - Memory is per application (Azure allocates per app): its `AverageAllocatedMb` rounded
//!   **up** to a multiple of 64 MB and clamped to OpenWhisk's action range 128..=512 MB. An app
//!   missing from the memory file (or without one) gets [`AzureOptions::default_memory_mb`].
//!   Note the dataset's figure is committed memory, not a configured limit.
//! - The dataset has no cold-start times: every invocation gets [`AzureOptions::init_ms`].
//! - A function is named by the first 12 characters of its `HashFunction` (longer if two
//!   functions would share a name, then `-2`, `-3`, ...); it must be a valid entity name (the
//!   dataset's hex hashes are). Its kind is [`DEFAULT_KIND`].
//!
//! A whole day is large (the released sample has tens of thousands of functions and hundreds
//! of millions of invocations a day): use `minutes` and `top_n` to cut it down.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::ops::Range;
use std::path::Path;

use super::generate::Rng;
use crate::entity::EntityName;

/// The runtime kind given to functions whose source does not name one.
pub const DEFAULT_KIND: &str = "nodejs:20";

/// The header line of whisk's trace CSV format.
pub const CSV_HEADER: &str = "at_ms,function,duration_ms,memory_mb,init_ms";

const CSV_FIELDS: [&str; 5] = ["at_ms", "function", "duration_ms", "memory_mb", "init_ms"];

/// One function (an OpenWhisk action) of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The action name, a valid OpenWhisk entity name, unique within the trace.
    pub name: String,
    /// The action's memory limit in MB (what a container of it books on an invoker).
    pub memory_mb: u64,
    /// The runtime kind, e.g. `nodejs:20` ([`DEFAULT_KIND`] unless the source says otherwise).
    pub kind: String,
}

impl Function {
    /// A function with the [`DEFAULT_KIND`].
    pub fn new(name: impl Into<String>, memory_mb: u64) -> Self {
        Self {
            name: name.into(),
            memory_mb,
            kind: DEFAULT_KIND.to_string(),
        }
    }
}

/// One invocation of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation {
    /// Arrival time in ms from the start of the trace.
    pub at_ms: u64,
    /// The invoked function: an index into [`Trace::functions`].
    pub function: usize,
    /// Run time in ms, without any cold start.
    pub duration_ms: u64,
    /// Initialisation time in ms of the function's container, paid when this invocation has
    /// to start one (a cold start).
    pub init_ms: u64,
}

/// An invocation trace: functions and their invocations, sorted by [`Invocation::at_ms`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The functions; [`Invocation::function`] indexes this list.
    pub functions: Vec<Function>,
    /// The invocations, sorted by arrival time.
    pub invocations: Vec<Invocation>,
}

/// Why a trace could not be read, or does not fit a platform.
///
/// The parse errors carry the 1-based line number they were found on; their message starts
/// with `line N: `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The header line is missing or is not the expected one.
    #[error("line {line}: expected the header '{expected}', found '{found}'")]
    Header {
        /// The line.
        line: usize,
        /// The expected header.
        expected: String,
        /// What the line holds (`end of input` when there is no header at all).
        found: String,
    },
    /// A line has the wrong number of fields.
    #[error("line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// The line.
        line: usize,
        /// How many fields the header has.
        expected: usize,
        /// How many fields the line has.
        found: usize,
    },
    /// A field that must be a non-negative integer is not one.
    #[error("line {line}: {field} '{value}' is not a non-negative integer")]
    NotInteger {
        /// The line.
        line: usize,
        /// The field (column) name.
        field: String,
        /// The offending text.
        value: String,
    },
    /// A field that must be a non-negative number is not one.
    #[error("line {line}: {field} '{value}' is not a non-negative number")]
    NotNumber {
        /// The line.
        line: usize,
        /// The field (column) name.
        field: String,
        /// The offending text.
        value: String,
    },
    /// A function name is not a valid OpenWhisk entity name.
    #[error("line {line}: function name '{name}' is not a valid entity name: {reason}")]
    InvalidName {
        /// The line.
        line: usize,
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A function has a memory limit of 0 MB.
    #[error("line {line}: memory_mb of function '{function}' is 0; it must be at least 1")]
    ZeroMemory {
        /// The line.
        line: usize,
        /// The function.
        function: String,
    },
    /// A function's memory differs from the one given on its first line.
    #[error(
        "line {line}: function '{function}' has memory_mb {memory_mb}, \
         but line {first_line} gave it {first_memory_mb}"
    )]
    InconsistentMemory {
        /// The line.
        line: usize,
        /// The function.
        function: String,
        /// The memory on this line.
        memory_mb: u64,
        /// The function's first line.
        first_line: usize,
        /// The memory on the function's first line.
        first_memory_mb: u64,
    },
    /// A required column is missing from a header (Azure dataset files).
    #[error("line {line}: the header has no column '{column}'")]
    MissingColumn {
        /// The line of the header.
        line: usize,
        /// The missing column.
        column: String,
    },
    /// An error in one of several input files; `file` names it.
    #[error("{file}: {source}")]
    In {
        /// The file (a path, or `invocations` / `durations` / `memory` for readers).
        file: String,
        /// The error in that file.
        source: Box<TraceError>,
    },
    /// A function needs more memory than an invoker has.
    #[error(
        "function '{function}' needs {memory_mb} MB of memory, \
         more than an invoker's {invoker_memory_mb} MB"
    )]
    DoesNotFit {
        /// The function.
        function: String,
        /// Its memory limit.
        memory_mb: u64,
        /// The invoker's memory.
        invoker_memory_mb: u64,
    },
    /// Reading or writing failed (including text that is not UTF-8).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl TraceError {
    /// The 1-based line the error was found on, if it is a parse error (also inside
    /// [`TraceError::In`]).
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Header { line, .. }
            | Self::FieldCount { line, .. }
            | Self::NotInteger { line, .. }
            | Self::NotNumber { line, .. }
            | Self::InvalidName { line, .. }
            | Self::ZeroMemory { line, .. }
            | Self::InconsistentMemory { line, .. }
            | Self::MissingColumn { line, .. } => Some(*line),
            Self::In { source, .. } => source.line(),
            Self::DoesNotFit { .. } | Self::Io(_) => None,
        }
    }

    fn in_file(self, file: impl Into<String>) -> Self {
        Self::In {
            file: file.into(),
            source: Box::new(self),
        }
    }
}

impl Trace {
    /// The time from the trace start to the end of the last run (`at_ms + duration_ms`, cold
    /// starts excluded); 0 for a trace without invocations.
    pub fn duration_ms(&self) -> u64 {
        self.invocations
            .iter()
            .map(|i| i.at_ms.saturating_add(i.duration_ms))
            .max()
            .unwrap_or(0)
    }

    /// The largest memory limit of any function; 0 for a trace without functions.
    pub fn max_memory_mb(&self) -> u64 {
        self.functions
            .iter()
            .map(|f| f.memory_mb)
            .max()
            .unwrap_or(0)
    }

    /// Checks that every function fits on an invoker with `invoker_memory_mb` MB of memory
    /// for containers; otherwise [`TraceError::DoesNotFit`] names the first function that
    /// does not.
    pub fn check_fits(&self, invoker_memory_mb: u64) -> Result<(), TraceError> {
        match self
            .functions
            .iter()
            .find(|f| f.memory_mb > invoker_memory_mb)
        {
            None => Ok(()),
            Some(f) => Err(TraceError::DoesNotFit {
                function: f.name.clone(),
                memory_mb: f.memory_mb,
                invoker_memory_mb,
            }),
        }
    }

    /// Parses whisk's trace CSV format (see the [module docs](self)).
    pub fn parse_csv<R: BufRead>(reader: R) -> Result<Trace, TraceError> {
        let mut functions: Vec<Function> = Vec::new();
        // name -> (index, first line)
        let mut index: HashMap<String, (usize, usize)> = HashMap::new();
        let mut invocations = Vec::new();
        let mut header_seen = false;
        let mut last_line = 0;
        for (i, line) in reader.lines().enumerate() {
            let line_no = i + 1;
            last_line = line_no;
            let line = line?;
            let text = line.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            if !header_seen {
                if fields != CSV_FIELDS {
                    return Err(TraceError::Header {
                        line: line_no,
                        expected: CSV_HEADER.into(),
                        found: text.into(),
                    });
                }
                header_seen = true;
                continue;
            }
            if fields.len() != CSV_FIELDS.len() {
                return Err(TraceError::FieldCount {
                    line: line_no,
                    expected: CSV_FIELDS.len(),
                    found: fields.len(),
                });
            }
            let at_ms = parse_u64(line_no, "at_ms", fields[0])?;
            let name = fields[1];
            let duration_ms = parse_u64(line_no, "duration_ms", fields[2])?;
            let memory_mb = parse_u64(line_no, "memory_mb", fields[3])?;
            let init_ms = parse_u64(line_no, "init_ms", fields[4])?;
            let function = match index.get(name) {
                Some(&(idx, first_line)) => {
                    let first_memory_mb = functions[idx].memory_mb;
                    if memory_mb != first_memory_mb {
                        return Err(TraceError::InconsistentMemory {
                            line: line_no,
                            function: name.into(),
                            memory_mb,
                            first_line,
                            first_memory_mb,
                        });
                    }
                    idx
                }
                None => {
                    validate_name(line_no, name)?;
                    if memory_mb == 0 {
                        return Err(TraceError::ZeroMemory {
                            line: line_no,
                            function: name.into(),
                        });
                    }
                    functions.push(Function::new(name, memory_mb));
                    index.insert(name.to_string(), (functions.len() - 1, line_no));
                    functions.len() - 1
                }
            };
            invocations.push(Invocation {
                at_ms,
                function,
                duration_ms,
                init_ms,
            });
        }
        if !header_seen {
            return Err(TraceError::Header {
                line: last_line + 1,
                expected: CSV_HEADER.into(),
                found: "end of input".into(),
            });
        }
        invocations.sort_by_key(|i| i.at_ms);
        Ok(Trace {
            functions,
            invocations,
        })
    }

    /// Writes the trace in whisk's trace CSV format (see the [module docs](self)): a comment
    /// line, the header, one line per invocation. Pass a buffered writer for large traces.
    ///
    /// # Panics
    ///
    /// If an invocation's function index is out of range.
    pub fn write_csv<W: Write>(&self, mut writer: W) -> io::Result<()> {
        writeln!(
            writer,
            "# whisk invocation trace: {} functions, {} invocations",
            self.functions.len(),
            self.invocations.len()
        )?;
        writeln!(writer, "{CSV_HEADER}")?;
        for inv in &self.invocations {
            let f = &self.functions[inv.function];
            writeln!(
                writer,
                "{},{},{},{},{}",
                inv.at_ms, f.name, inv.duration_ms, f.memory_mb, inv.init_ms
            )?;
        }
        writer.flush()
    }
}

/// Parses a non-negative integer made of ASCII digits only.
fn parse_u64(line: usize, field: &str, value: &str) -> Result<u64, TraceError> {
    let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| value.parse::<u64>().ok()).flatten() {
        Some(v) => Ok(v),
        None => Err(TraceError::NotInteger {
            line,
            field: field.into(),
            value: value.into(),
        }),
    }
}

/// Parses a finite non-negative decimal number.
fn parse_f64(line: usize, field: &str, value: &str) -> Result<f64, TraceError> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(TraceError::NotNumber {
            line,
            field: field.into(),
            value: value.into(),
        }),
    }
}

fn validate_name(line: usize, name: &str) -> Result<(), TraceError> {
    EntityName::new(name)
        .map(|_| ())
        .map_err(|e| TraceError::InvalidName {
            line,
            name: name.into(),
            reason: e.to_string(),
        })
}

// ---------------------------------------------------------------------------------------------
// Azure Functions 2019

/// How [`read_azure`] turns the Azure dataset into a [`Trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureOptions {
    /// The minutes of the day to keep, numbered from 0 (column `1` is minute 0); `None` keeps
    /// all. The trace starts at the range's first minute.
    pub minutes: Option<Range<u32>>,
    /// Keep only the N functions with the most invocations (in the kept minutes); `None`
    /// keeps all.
    pub top_n: Option<usize>,
    /// Seeds the placement of invocations within their minute and the sampled run times.
    pub seed: u64,
    /// Run time of functions missing from the durations file (default 1000 ms).
    pub default_duration_ms: u64,
    /// Memory of apps missing from the memory file (default 256 MB, OpenWhisk's default).
    pub default_memory_mb: u64,
    /// The cold-start time of every invocation; the dataset has none (default 300 ms, the
    /// generator's median).
    pub init_ms: u64,
}

impl Default for AzureOptions {
    fn default() -> Self {
        Self {
            minutes: None,
            top_n: None,
            seed: 0,
            default_duration_ms: 1000,
            default_memory_mb: 256,
            init_ms: 300,
        }
    }
}

/// The file names of one day of the Azure Functions 2019 dataset (`day` is 1..=14):
/// invocations, durations, memory.
pub fn azure_file_names(day: u32) -> [String; 3] {
    [
        format!("invocations_per_function_md.anon.d{day:02}.csv"),
        format!("function_durations_percentiles.anon.d{day:02}.csv"),
        format!("app_memory_percentiles.anon.d{day:02}.csv"),
    ]
}

/// Reads one day of the Azure Functions 2019 dataset from the directory `dir` holding the
/// extracted CSV files (see [`azure_file_names`]). The invocations file is required; the
/// durations and memory files are used when present. Errors name the file.
pub fn read_azure_day(dir: &Path, day: u32, options: &AzureOptions) -> Result<Trace, TraceError> {
    let [inv, dur, mem] = azure_file_names(day).map(|n| dir.join(n));
    let open = |p: &Path| -> Result<BufReader<File>, TraceError> {
        File::open(p)
            .map(BufReader::new)
            .map_err(|e| TraceError::from(e).in_file(p.display().to_string()))
    };
    let open_optional = |p: &Path| -> Result<Option<BufReader<File>>, TraceError> {
        if p.exists() {
            open(p).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut inv_reader = open(&inv)?;
    let mut dur_reader = open_optional(&dur)?;
    let mut mem_reader = open_optional(&mem)?;
    read_azure_labelled(
        (&mut inv_reader, &inv.display().to_string()),
        dur_reader
            .as_mut()
            .map(|r| (r as &mut dyn BufRead, dur.display().to_string())),
        mem_reader
            .as_mut()
            .map(|r| (r as &mut dyn BufRead, mem.display().to_string())),
        options,
    )
}

/// Reads the Azure Functions 2019 dataset from readers: the invocation counts of one day and,
/// optionally, the durations and memory files of the same day (see the [module docs](self)
/// for the columns and the conversion). Errors are wrapped in [`TraceError::In`] naming
/// `invocations`, `durations` or `memory`.
pub fn read_azure(
    invocations: &mut dyn BufRead,
    durations: Option<&mut dyn BufRead>,
    memory: Option<&mut dyn BufRead>,
    options: &AzureOptions,
) -> Result<Trace, TraceError> {
    read_azure_labelled(
        (invocations, "invocations"),
        durations.map(|r| (r, "durations".to_string())),
        memory.map(|r| (r, "memory".to_string())),
        options,
    )
}

/// One function of the invocations file, merged over its rows.
struct AzureFunction {
    owner: String,
    app: String,
    hash: String,
    timer: bool,
    line: usize,
    /// (minute within the kept range, count), count > 0.
    counts: Vec<(u32, u64)>,
    total: u64,
}

fn read_azure_labelled(
    invocations: (&mut dyn BufRead, &str),
    durations: Option<(&mut dyn BufRead, String)>,
    memory: Option<(&mut dyn BufRead, String)>,
    options: &AzureOptions,
) -> Result<Trace, TraceError> {
    let mut functions =
        read_azure_invocations(invocations.0, options).map_err(|e| e.in_file(invocations.1))?;
    // Busiest first; the sort is stable, so ties keep file order.
    functions.sort_by_key(|f| std::cmp::Reverse(f.total));
    if let Some(n) = options.top_n {
        functions.truncate(n);
    }
    let mut wanted_fns: HashMap<String, Option<[f64; 7]>> = functions
        .iter()
        .map(|f| (key(&[&f.owner, &f.app, &f.hash]), None))
        .collect();
    if let Some((reader, label)) = durations {
        read_azure_durations(reader, &mut wanted_fns).map_err(|e| e.in_file(label))?;
    }
    let mut wanted_apps: HashMap<String, Option<f64>> = functions
        .iter()
        .map(|f| (key(&[&f.owner, &f.app]), None))
        .collect();
    if let Some((reader, label)) = memory {
        read_azure_memory(reader, &mut wanted_apps).map_err(|e| e.in_file(label))?;
    }

    let mut trace = Trace::default();
    let mut used_names: HashSet<String> = HashSet::new();
    let total: u64 = functions.iter().map(|f| f.total).sum();
    trace.invocations.reserve(total as usize);
    for (idx, f) in functions.iter().enumerate() {
        let name = azure_name(&f.hash, &used_names);
        validate_name(f.line, &name).map_err(|e| e.in_file(invocations.1))?;
        used_names.insert(name.clone());
        let memory_mb = match wanted_apps[&key(&[&f.owner, &f.app])] {
            Some(avg) => azure_memory_mb(avg),
            None => options.default_memory_mb,
        };
        trace.functions.push(Function::new(name, memory_mb));
        let percentiles = wanted_fns[&key(&[&f.owner, &f.app, &f.hash])];
        let mut rng = Rng::derive(
            options.seed,
            fnv1a(&[f.owner.as_bytes(), f.app.as_bytes(), f.hash.as_bytes()]),
        );
        for &(minute, count) in &f.counts {
            let base = u64::from(minute) * 60_000;
            for k in 0..count {
                let offset = if f.timer {
                    k * 60_000 / count
                } else {
                    rng.below(60_000)
                };
                let duration_ms = match &percentiles {
                    Some(p) => sample_percentiles(p, rng.uniform()),
                    None => options.default_duration_ms,
                };
                trace.invocations.push(Invocation {
                    at_ms: base + offset,
                    function: idx,
                    duration_ms,
                    init_ms: options.init_ms,
                });
            }
        }
    }
    trace.invocations.sort_by_key(|i| i.at_ms);
    Ok(trace)
}

/// A map key of dataset ids (which cannot contain commas).
fn key(parts: &[&str]) -> String {
    parts.join(",")
}

/// The short name of a function hash not yet in `used`.
fn azure_name(hash: &str, used: &HashSet<String>) -> String {
    let chars: Vec<char> = hash.chars().collect();
    let mut len = chars.len().min(12);
    loop {
        let name: String = chars[..len].iter().collect();
        if !used.contains(&name) {
            return name;
        }
        if len == chars.len() {
            break;
        }
        len += 1;
    }
    let base: String = chars.iter().collect();
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|n| !used.contains(n))
        .expect("an unused suffix exists")
}

/// `AverageAllocatedMb` rounded up to a multiple of 64 MB and clamped to 128..=512 MB.
fn azure_memory_mb(average_mb: f64) -> u64 {
    let rounded = (average_mb / 64.0).ceil() * 64.0;
    (rounded as u64).clamp(128, 512)
}

/// Maps `u` in [0, 1) through the piecewise-linear inverse CDF given by the percentiles
/// 0, 1, 25, 50, 75, 99, 100 (in ms); at least 1 ms.
fn sample_percentiles(p: &[f64; 7], u: f64) -> u64 {
    const AT: [f64; 7] = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0];
    let mut v = *p;
    for i in 1..v.len() {
        // Tolerate non-monotone rows.
        v[i] = v[i].max(v[i - 1]);
    }
    let i = AT
        .iter()
        .rposition(|&a| a <= u)
        .unwrap_or(0)
        .min(AT.len() - 2);
    let frac = ((u - AT[i]) / (AT[i + 1] - AT[i])).clamp(0.0, 1.0);
    let ms = v[i] + frac * (v[i + 1] - v[i]);
    (ms.round() as u64).max(1)
}

/// FNV-1a over the parts, with a separator between them.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A CSV file of the dataset: its header's columns and its data lines.
struct AzureCsv<'a> {
    reader: &'a mut dyn BufRead,
    line: usize,
    header_line: usize,
    columns: Vec<String>,
    buf: String,
}

impl<'a> AzureCsv<'a> {
    fn open(reader: &'a mut dyn BufRead) -> Result<Self, TraceError> {
        let mut csv = Self {
            reader,
            line: 0,
            header_line: 1,
            columns: Vec::new(),
            buf: String::new(),
        };
        match csv.next_line()? {
            Some(fields) => {
                csv.columns = fields;
                csv.header_line = csv.line;
            }
            None => {
                return Err(TraceError::Header {
                    line: 1,
                    expected: "a header line".into(),
                    found: "end of input".into(),
                })
            }
        }
        Ok(csv)
    }

    /// The index of a required column.
    fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| TraceError::MissingColumn {
                line: self.header_line,
                column: name.into(),
            })
    }

    /// The fields of the next non-blank line, checked against the header's column count.
    fn next_line(&mut self) -> Result<Option<Vec<String>>, TraceError> {
        loop {
            self.buf.clear();
            if self.reader.read_line(&mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            let fields: Vec<String> = text.split(',').map(|f| f.trim().to_string()).collect();
            if !self.columns.is_empty() && fields.len() != self.columns.len() {
                return Err(TraceError::FieldCount {
                    line: self.line,
                    expected: self.columns.len(),
                    found: fields.len(),
                });
            }
            return Ok(Some(fields));
        }
    }
}

fn read_azure_invocations(
    reader: &mut dyn BufRead,
    options: &AzureOptions,
) -> Result<Vec<AzureFunction>, TraceError> {
    let mut csv = AzureCsv::open(reader)?;
    let owner = csv.column("HashOwner")?;
    let app = csv.column("HashApp")?;
    let hash = csv.column("HashFunction")?;
    let trigger = csv.column("Trigger")?;
    csv.column("1")?;
    // (column index, minute from 0, column name)
    let minute_columns: Vec<(usize, u32, String)> = csv
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let m: u32 = c.parse().ok()?;
            (c.bytes().all(|b| b.is_ascii_digit()) && (1..=1440).contains(&m))
                .then(|| (i, m - 1, format!("minute {c} count")))
        })
        .collect();
    let range = options.minutes.clone().unwrap_or(0..u32::MAX);
    let mut functions: Vec<AzureFunction> = Vec::new();
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    while let Some(fields) = csv.next_line()? {
        let line = csv.line;
        let mut counts = Vec::new();
        for (col, minute, field) in &minute_columns {
            let count = parse_u64(line, field, &fields[*col])?;
            if count > 0 && range.contains(minute) {
                counts.push((minute - range.start, count));
            }
        }
        let key = (
            fields[owner].clone(),
            fields[app].clone(),
            fields[hash].clone(),
        );
        let total: u64 = counts.iter().map(|c| c.1).sum();
        match index.get(&key) {
            Some(&i) => {
                let f = &mut functions[i];
                f.counts.extend(counts);
                f.counts.sort_by_key(|c| c.0);
                f.total += total;
            }
            None => {
                index.insert(key.clone(), functions.len());
                functions.push(AzureFunction {
                    owner: key.0,
                    app: key.1,
                    hash: key.2,
                    timer: fields[trigger].eq_ignore_ascii_case("timer"),
                    line,
                    counts,
                    total,
                });
            }
        }
    }
    functions.retain(|f| f.total > 0);
    Ok(functions)
}

const PERCENTILE_COLUMNS: [&str; 7] = [
    "percentile_Average_0",
    "percentile_Average_1",
    "percentile_Average_25",
    "percentile_Average_50",
    "percentile_Average_75",
    "percentile_Average_99",
    "percentile_Average_100",
];

fn read_azure_durations(
    reader: &mut dyn BufRead,
    wanted: &mut HashMap<String, Option<[f64; 7]>>,
) -> Result<(), TraceError> {
    let mut csv = AzureCsv::open(reader)?;
    let owner = csv.column("HashOwner")?;
    let app = csv.column("HashApp")?;
    let hash = csv.column("HashFunction")?;
    let mut cols = [0; 7];
    for (c, name) in cols.iter_mut().zip(PERCENTILE_COLUMNS) {
        *c = csv.column(name)?;
    }
    while let Some(fields) = csv.next_line()? {
        let line = csv.line;
        let mut p = [0.0; 7];
        for ((v, &c), name) in p.iter_mut().zip(&cols).zip(PERCENTILE_COLUMNS) {
            *v = parse_f64(line, name, &fields[c])?;
        }
        if let Some(slot @ None) =
            wanted.get_mut(&key(&[&fields[owner], &fields[app], &fields[hash]]))
        {
            *slot = Some(p);
        }
    }
    Ok(())
}

fn read_azure_memory(
    reader: &mut dyn BufRead,
    wanted: &mut HashMap<String, Option<f64>>,
) -> Result<(), TraceError> {
    let mut csv = AzureCsv::open(reader)?;
    let owner = csv.column("HashOwner")?;
    let app = csv.column("HashApp")?;
    let average = csv.column("AverageAllocatedMb")?;
    while let Some(fields) = csv.next_line()? {
        let mb = parse_f64(csv.line, "AverageAllocatedMb", &fields[average])?;
        if let Some(slot @ None) = wanted.get_mut(&key(&[&fields[owner], &fields[app]])) {
            *slot = Some(mb);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Trace, TraceError> {
        Trace::parse_csv(text.as_bytes())
    }

    fn err(text: &str) -> (Option<usize>, String) {
        let e = parse(text).expect_err("must not parse");
        (e.line(), e.to_string())
    }

    fn sample() -> Trace {
        Trace {
            functions: vec![Function::new("alpha", 256), Function::new("beta.v2", 128)],
            invocations: vec![
                Invocation {
                    at_ms: 0,
                    function: 0,
                    duration_ms: 120,
                    init_ms: 350,
                },
                Invocation {
                    at_ms: 15,
                    function: 1,
                    duration_ms: 800,
                    init_ms: 300,
                },
                Invocation {
                    at_ms: 15,
                    function: 0,
                    duration_ms: 95,
                    init_ms: 360,
                },
                Invocation {
                    at_ms: 70_000,
                    function: 1,
                    duration_ms: 5,
                    init_ms: 300,
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let trace = sample();
        let mut out = Vec::new();
        trace.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("# whisk invocation trace: 2 functions, 4 invocations\n"));
        assert!(
            text.contains("\nat_ms,function,duration_ms,memory_mb,init_ms\n0,alpha,120,256,350\n")
        );
        assert_eq!(Trace::parse_csv(&out[..]).unwrap(), trace);
    }

    #[test]
    fn comments_blanks_spaces_and_crlf() {
        let t = parse(
            "# c\n\n  # indented comment\r\n at_ms , function,duration_ms,memory_mb,init_ms\r\n\
             \n5, f ,1,128,2\r\n# mid\n6,f,3,128,4\n",
        )
        .unwrap();
        assert_eq!(t.functions, vec![Function::new("f", 128)]);
        assert_eq!(t.functions[0].kind, "nodejs:20");
        assert_eq!(t.invocations.len(), 2);
        assert_eq!(t.invocations[1].init_ms, 4);
        assert_eq!(parse(CSV_HEADER).unwrap(), Trace::default());
    }

    #[test]
    fn unsorted_input_is_sorted_stably() {
        let t = parse(&format!(
            "{CSV_HEADER}\n30,a,1,128,0\n10,b,2,256,0\n30,b,3,256,0\n10,a,4,128,0\n"
        ))
        .unwrap();
        let got: Vec<(u64, usize, u64)> = t
            .invocations
            .iter()
            .map(|i| (i.at_ms, i.function, i.duration_ms))
            .collect();
        assert_eq!(got, vec![(10, 1, 2), (10, 0, 4), (30, 0, 1), (30, 1, 3)]);
        // Functions are numbered by first appearance in the file.
        assert_eq!(t.functions[0].name, "a");
        assert_eq!(t.functions[1].name, "b");
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            err("# only a comment\n"),
            (
                Some(2),
                "line 2: expected the header 'at_ms,function,duration_ms,memory_mb,init_ms', \
                 found 'end of input'"
                    .into()
            )
        );
        assert_eq!(
            err("# c\n1,f,1,128,1\n"),
            (
                Some(2),
                "line 2: expected the header 'at_ms,function,duration_ms,memory_mb,init_ms', \
                 found '1,f,1,128,1'"
                    .into()
            )
        );
        assert_eq!(err("").0, Some(1));
    }

    #[test]
    fn field_errors_name_their_line() {
        let h = CSV_HEADER;
        assert_eq!(
            err(&format!("{h}\n1,f,1,128,1\n\n2,f,1,128\n")),
            (Some(4), "line 4: expected 5 fields, found 4".into())
        );
        assert_eq!(
            err(&format!("{h}\n1,f,1,128,1,9\n")),
            (Some(2), "line 2: expected 5 fields, found 6".into())
        );
        assert_eq!(
            err(&format!("#\n#\n{h}\n1,f,abc,128,1\n")),
            (
                Some(4),
                "line 4: duration_ms 'abc' is not a non-negative integer".into()
            )
        );
        for (bad, field) in [
            ("-1,f,1,128,1", "at_ms '-1'"),
            ("+1,f,1,128,1", "at_ms '+1'"),
            ("1.5,f,1,128,1", "at_ms '1.5'"),
            ("1,f,1,,1", "memory_mb ''"),
            (
                "1,f,1,128,99999999999999999999",
                "init_ms '99999999999999999999'",
            ),
        ] {
            assert_eq!(
                err(&format!("{h}\n{bad}\n")),
                (
                    Some(2),
                    format!("line 2: {field} is not a non-negative integer")
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn name_memory_errors() {
        let h = CSV_HEADER;
        assert_eq!(
            err(&format!("{h}\n1,ok,1,128,1\n2,a/b,1,128,1\n")),
            (
                Some(3),
                "line 3: function name 'a/b' is not a valid entity name: \
                 The name of the entity contains illegal characters."
                    .into()
            )
        );
        assert_eq!(err(&format!("{h}\n1,,1,128,1\n")).0, Some(2));
        assert_eq!(
            err(&format!("{h}\n1,f,1,0,1\n")),
            (
                Some(2),
                "line 2: memory_mb of function 'f' is 0; it must be at least 1".into()
            )
        );
        assert_eq!(
            err(&format!("{h}\n1,f,1,128,1\n2,g,1,256,1\n3,f,1,256,1\n")),
            (
                Some(4),
                "line 4: function 'f' has memory_mb 256, but line 2 gave it 128".into()
            )
        );
    }

    #[test]
    fn io_errors() {
        let e = Trace::parse_csv(&b"at_ms,function,duration_ms,memory_mb,init_ms\n\xff\n"[..])
            .unwrap_err();
        assert!(matches!(e, TraceError::Io(_)), "{e}");
        assert_eq!(e.line(), None);
    }

    #[test]
    fn helpers() {
        let t = sample();
        assert_eq!(t.duration_ms(), 70_005);
        assert_eq!(t.max_memory_mb(), 256);
        assert_eq!(Trace::default().duration_ms(), 0);
        assert_eq!(Trace::default().max_memory_mb(), 0);
        assert!(t.check_fits(256).is_ok());
        assert!(t.check_fits(4096).is_ok());
        let e = t.check_fits(200).unwrap_err();
        assert!(matches!(e, TraceError::DoesNotFit { memory_mb: 256, .. }));
        assert_eq!(
            e.to_string(),
            "function 'alpha' needs 256 MB of memory, more than an invoker's 200 MB"
        );
    }

    // ----- Azure -----------------------------------------------------------------------------

    /// 4 functions over 5 minutes: a timer (1/min), an http function, a busy queue function,
    /// and one that is never invoked; two functions share app `app1`.
    fn azure_invocations() -> String {
        "HashOwner,HashApp,HashFunction,Trigger,1,2,3,4,5\n\
         own1,app1,aaaaaaaaaaaaaaaa01,timer,1,1,1,1,1\n\
         own1,app1,bbbbbbbbbbbbbbbb02,http,0,3,0,0,2\n\
         own2,app2,cccccccccccccccc03,queue,10,0,7,4,9\n\
         own3,app3,dddddddddddddddd04,event,0,0,0,0,0\n"
            .into()
    }

    fn azure_durations() -> String {
        "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,\
         percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,\
         percentile_Average_99,percentile_Average_100\n\
         own1,app1,aaaaaaaaaaaaaaaa01,100,5,100,100,100,100,100,100,100,100,100\n\
         own2,app2,cccccccccccccccc03,55.5,30,10,1000,10,10,20,50,80,900,1000\n\
         own2,app2,cccccccccccccccc03,1,1,1,1,1,1,1,1,1,1,1\n"
            .into()
    }

    fn azure_memory() -> String {
        "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,\
         AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,\
         AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,\
         AverageAllocatedMb_pct100\n\
         own1,app1,100,150.2,1,2,3,4,5,6,7,8\n\
         own2,app2,100,20,1,2,3,4,5,6,7,8\n"
            .into()
    }

    fn azure(
        inv: &str,
        dur: Option<&str>,
        mem: Option<&str>,
        options: &AzureOptions,
    ) -> Result<Trace, TraceError> {
        let mut inv = inv.as_bytes();
        let mut dur = dur.map(str::as_bytes);
        let mut mem = mem.map(str::as_bytes);
        read_azure(
            &mut inv,
            dur.as_mut().map(|r| r as &mut dyn BufRead),
            mem.as_mut().map(|r| r as &mut dyn BufRead),
            options,
        )
    }

    fn count_of(t: &Trace, f: usize) -> usize {
        t.invocations.iter().filter(|i| i.function == f).count()
    }

    #[test]
    fn azure_without_durations_and_memory() {
        let t = azure(&azure_invocations(), None, None, &AzureOptions::default()).unwrap();
        let names: Vec<&str> = t.functions.iter().map(|f| f.name.as_str()).collect();
        // Busiest first; the never-invoked function is dropped.
        assert_eq!(names, ["cccccccccccc", "aaaaaaaaaaaa", "bbbbbbbbbbbb"]);
        assert!(t
            .functions
            .iter()
            .all(|f| f.memory_mb == 256 && f.kind == DEFAULT_KIND));
        assert_eq!(t.invocations.len(), 30 + 5 + 5);
        assert_eq!(
            (count_of(&t, 0), count_of(&t, 1), count_of(&t, 2)),
            (30, 5, 5)
        );
        assert!(t
            .invocations
            .iter()
            .all(|i| i.duration_ms == 1000 && i.init_ms == 300));
        assert!(t.invocations.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        // The timer fires at the start of each minute; the others stay in their minute.
        let timer: Vec<u64> = t
            .invocations
            .iter()
            .filter(|i| i.function == 1)
            .map(|i| i.at_ms)
            .collect();
        assert_eq!(timer, [0, 60_000, 120_000, 180_000, 240_000]);
        let http_minutes: Vec<u64> = t
            .invocations
            .iter()
            .filter(|i| i.function == 2)
            .map(|i| i.at_ms / 60_000)
            .collect();
        assert_eq!(http_minutes, [1, 1, 1, 4, 4]);
        assert!(t.invocations.iter().all(|i| i.at_ms < 5 * 60_000));
        // Deterministic per seed, different across seeds.
        let again = azure(&azure_invocations(), None, None, &AzureOptions::default()).unwrap();
        assert_eq!(again, t);
        let other = AzureOptions {
            seed: 7,
            ..AzureOptions::default()
        };
        assert_ne!(azure(&azure_invocations(), None, None, &other).unwrap(), t);
    }

    #[test]
    fn azure_with_durations_and_memory() {
        let t = azure(
            &azure_invocations(),
            Some(&azure_durations()),
            Some(&azure_memory()),
            &AzureOptions::default(),
        )
        .unwrap();
        // app1 averages 150.2 MB -> 192; app2 20 MB -> 128 (clamped).
        let mem: Vec<u64> = t.functions.iter().map(|f| f.memory_mb).collect();
        assert_eq!(mem, [128, 192, 192]);
        for inv in &t.invocations {
            match inv.function {
                // The first durations row wins: 10..=1000 ms.
                0 => assert!((10..=1000).contains(&inv.duration_ms), "{inv:?}"),
                1 => assert_eq!(inv.duration_ms, 100),
                // Not in the durations file: the default.
                _ => assert_eq!(inv.duration_ms, 1000),
            }
        }
        assert!(t
            .invocations
            .iter()
            .any(|i| i.function == 0 && i.duration_ms != 10));
    }

    #[test]
    fn azure_minutes_and_top_n() {
        let options = AzureOptions {
            minutes: Some(1..3),
            top_n: Some(2),
            ..AzureOptions::default()
        };
        let t = azure(&azure_invocations(), None, None, &options).unwrap();
        // Minutes 1 and 2: queue 0+7, http 3+0, timer 1+1 -> queue and http kept.
        let names: Vec<&str> = t.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["cccccccccccc", "bbbbbbbbbbbb"]);
        assert_eq!((count_of(&t, 0), count_of(&t, 1)), (7, 3));
        // The trace starts at minute 1.
        assert!(t
            .invocations
            .iter()
            .filter(|i| i.function == 1)
            .all(|i| i.at_ms < 60_000));
        assert!(t
            .invocations
            .iter()
            .filter(|i| i.function == 0)
            .all(|i| (60_000..120_000).contains(&i.at_ms)));
        // A function's times do not depend on which others are kept.
        let all = azure(
            &azure_invocations(),
            None,
            None,
            &AzureOptions {
                minutes: Some(1..3),
                ..AzureOptions::default()
            },
        )
        .unwrap();
        let times = |t: &Trace, name: &str| -> Vec<u64> {
            let f = t.functions.iter().position(|f| f.name == name).unwrap();
            t.invocations
                .iter()
                .filter(|i| i.function == f)
                .map(|i| i.at_ms)
                .collect()
        };
        assert_eq!(times(&t, "cccccccccccc"), times(&all, "cccccccccccc"));
    }

    #[test]
    fn azure_sample_percentiles_is_piecewise_linear() {
        let p = [0.0, 10.0, 20.0, 50.0, 80.0, 900.0, 1000.0];
        assert_eq!(sample_percentiles(&p, 0.0), 1); // at least 1 ms
        assert_eq!(sample_percentiles(&p, 0.01), 10);
        assert_eq!(sample_percentiles(&p, 0.375), 35);
        assert_eq!(sample_percentiles(&p, 0.5), 50);
        assert_eq!(sample_percentiles(&p, 0.995), 950);
        assert_eq!(sample_percentiles(&p, 0.999_999), 1000);
        assert_eq!(azure_memory_mb(0.0), 128);
        assert_eq!(azure_memory_mb(129.0), 192);
        assert_eq!(azure_memory_mb(256.0), 256);
        assert_eq!(azure_memory_mb(4000.0), 512);
    }

    #[test]
    fn azure_names_stay_unique() {
        let inv = "HashOwner,HashApp,HashFunction,Trigger,1\n\
                   o,a,abcdefabcdef01,http,1\n\
                   o,b,abcdefabcdef02,http,1\n\
                   o,c,abcdefabcdef01,http,1\n";
        let t = azure(inv, None, None, &AzureOptions::default()).unwrap();
        let names: Vec<&str> = t.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["abcdefabcdef", "abcdefabcdef0", "abcdefabcdef01"]);
    }

    #[test]
    fn azure_errors_name_file_and_line() {
        let check = |inv: &str, dur: Option<&str>, mem: Option<&str>, want: &str, line| {
            let e = azure(inv, dur, mem, &AzureOptions::default()).unwrap_err();
            assert_eq!(e.to_string(), want);
            assert_eq!(e.line(), Some(line), "{want}");
        };
        let h = "HashOwner,HashApp,HashFunction,Trigger,1,2\n";
        check(
            &format!("{h}o,a,f1,http,1,2\no,a,f2,http,1,x\n"),
            None,
            None,
            "invocations: line 3: minute 2 count 'x' is not a non-negative integer",
            3,
        );
        check(
            &format!("{h}o,a,f1,http,1\n"),
            None,
            None,
            "invocations: line 2: expected 6 fields, found 5",
            2,
        );
        check(
            "HashOwner,HashApp,Trigger,1\n",
            None,
            None,
            "invocations: line 1: the header has no column 'HashFunction'",
            1,
        );
        check(
            &format!("{h}o,a,f1,http,1,2\no,a,bad/name,http,1,0\n"),
            None,
            None,
            "invocations: line 3: function name 'bad/name' is not a valid entity name: \
             The name of the entity contains illegal characters.",
            3,
        );
        let dur = azure_durations().replace("55.5,30,10,1000,10,10,20", "55.5,30,10,1000,10,1e,20");
        check(
            &azure_invocations(),
            Some(&dur),
            None,
            "durations: line 3: percentile_Average_1 '1e' is not a non-negative number",
            3,
        );
        check(
            &azure_invocations(),
            None,
            Some("HashOwner,HashApp,SampleCount\n"),
            "memory: line 1: the header has no column 'AverageAllocatedMb'",
            1,
        );
        check(
            &azure_invocations(),
            None,
            Some("HashOwner,HashApp,AverageAllocatedMb\no,a,-5\n"),
            "memory: line 2: AverageAllocatedMb '-5' is not a non-negative number",
            2,
        );
    }

    #[test]
    fn azure_day_from_files() {
        let dir = std::env::temp_dir().join(format!("whisk-sim-azure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let [inv, dur, _mem] = azure_file_names(3);
        std::fs::write(dir.join(&inv), azure_invocations()).unwrap();
        std::fs::write(dir.join(&dur), azure_durations()).unwrap();
        // No memory file (like days 13 and 14): defaults.
        let t = read_azure_day(&dir, 3, &AzureOptions::default()).unwrap();
        assert_eq!(t.invocations.len(), 40);
        assert!(t.functions.iter().all(|f| f.memory_mb == 256));
        assert!(t.invocations.iter().any(|i| i.duration_ms == 100));
        let e = read_azure_day(&dir, 4, &AzureOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("invocations_per_function_md.anon.d04.csv: I/O error"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
