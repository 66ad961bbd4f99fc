//! Run with `cargo run --release --bin whisk-sim -- report`.
//!
//! whisk's trace-driven simulator: replays an invocation trace (whisk's trace CSV, a day of
//! the Azure Functions 2019 trace, or a synthetic one) against the real load balancer,
//! invokers and container pools in virtual time, with every scheduler and keep-alive policy,
//! and prints one comparison table per platform configuration (optionally an SVG chart).
//!
//! Errors (an unreadable file, a malformed trace — with its line number —, a trace that does
//! not fit the invokers' memory) are printed to stderr with exit code 2.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use whisk_core::sim::generate::Synthetic;
use whisk_core::sim::simulate::{SimConfig, SimReport};
use whisk_core::sim::trace::{read_azure_day, AzureOptions, Trace};
use whisk_examples::sim::{compare, keep_alives, run, schedulers};
use whisk_examples::sim_report::{config_title, format_block, render_svg, Block};

/// whisk-sim: compare whisk's schedulers and keep-alive policies on invocation traces.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a synthetic trace in whisk's trace CSV format.
    Generate {
        /// The synthetic trace.
        #[command(flatten)]
        synthetic: SyntheticArgs,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run every scheduler with every keep-alive policy on the same trace; print one table
    /// per platform configuration.
    Report {
        /// The trace.
        #[command(flatten)]
        source: SourceArgs,
        /// The platform(s).
        #[command(flatten)]
        platform: PlatformArgs,
        /// Also write a chart (grouped bars of cold-start rate and p99 latency) to this SVG
        /// file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Run one scheduler with one keep-alive policy; print one row per platform
    /// configuration.
    Run {
        /// The scheduler.
        #[arg(long, value_enum)]
        scheduler: SchedulerName,
        /// The keep-alive policy.
        #[arg(long, value_enum, default_value_t = KeepAliveName::Fixed)]
        keep_alive: KeepAliveName,
        /// The trace.
        #[command(flatten)]
        source: SourceArgs,
        /// The platform(s).
        #[command(flatten)]
        platform: PlatformArgs,
    },
}

/// The schedulers `run --scheduler` names.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SchedulerName {
    /// OpenWhisk's sharding container pool balancer.
    Sharding,
    /// The invoker with the most free memory.
    LeastLoaded,
    /// whisk's warm-aware scheduler (prefers an invoker with a warm container).
    WarmAware,
}

impl SchedulerName {
    fn name(self) -> &'static str {
        match self {
            Self::Sharding => "sharding",
            Self::LeastLoaded => "least-loaded",
            Self::WarmAware => "warm-aware",
        }
    }
}

/// The keep-alive policies `run --keep-alive` names.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum KeepAliveName {
    /// A fixed idle timeout (`--idle-timeout`).
    Fixed,
    /// The hybrid histogram policy of "Serverless in the Wild" (with pre-warming).
    Hybrid,
}

/// A synthetic trace's parameters.
#[derive(Args, Debug, Clone)]
struct SyntheticArgs {
    /// Synthetic trace: number of functions.
    #[arg(long, default_value_t = Synthetic::default().functions)]
    functions: usize,
    /// Synthetic trace: length in minutes.
    #[arg(long, default_value_t = Synthetic::default().minutes)]
    minutes: u32,
    /// Seed of the synthetic trace (and of the Azure reader's sampling).
    #[arg(long, default_value_t = Synthetic::default().seed)]
    seed: u64,
}

impl SyntheticArgs {
    fn synthetic(&self) -> Synthetic {
        Synthetic {
            functions: self.functions,
            minutes: self.minutes,
            seed: self.seed,
            ..Synthetic::default()
        }
    }
}

/// Where the trace comes from: `--trace`, `--azure`, or a synthetic one (the default).
#[derive(Args, Debug, Clone)]
struct SourceArgs {
    /// A trace in whisk's trace CSV format (see `whisk_core::sim::trace`).
    #[arg(long, conflicts_with_all = ["azure", "functions", "minutes"])]
    trace: Option<PathBuf>,
    /// A directory with the extracted CSV files of the Azure Functions 2019 trace.
    #[arg(long, requires = "day", conflicts_with_all = ["functions", "minutes"])]
    azure: Option<PathBuf>,
    /// The day of the Azure trace to read (1..=14).
    #[arg(long, requires = "azure", value_parser = clap::value_parser!(u32).range(1..=14))]
    day: Option<u32>,
    /// Azure: keep only the N functions with the most invocations.
    #[arg(long, requires = "azure")]
    top: Option<usize>,
    /// Azure: first minute of the day to keep (0-based, default 0).
    #[arg(long, requires = "azure")]
    from_minute: Option<u32>,
    /// Azure: end (exclusive) of the minutes to keep (default 1440).
    #[arg(long, requires = "azure")]
    to_minute: Option<u32>,
    /// The synthetic trace used when neither `--trace` nor `--azure` is given.
    #[command(flatten)]
    synthetic: SyntheticArgs,
}

impl SourceArgs {
    /// Loads the trace; the error is the message to print.
    fn load(&self) -> Result<Trace, String> {
        if let Some(path) = &self.trace {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            return Trace::parse_csv(BufReader::new(file))
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        if let Some(dir) = &self.azure {
            let day = self.day.unwrap_or(1);
            let minutes = match (self.from_minute, self.to_minute) {
                (None, None) => None,
                (from, to) => {
                    let (from, to) = (from.unwrap_or(0), to.unwrap_or(1440));
                    if from >= to {
                        return Err(format!(
                            "--from-minute {from} must be less than --to-minute {to}"
                        ));
                    }
                    Some(from..to)
                }
            };
            let options = AzureOptions {
                minutes,
                top_n: self.top,
                seed: self.synthetic.seed,
                ..AzureOptions::default()
            };
            return read_azure_day(dir, day, &options).map_err(|e| e.to_string());
        }
        Ok(self.synthetic.synthetic().generate())
    }
}

/// The platform configurations: every `--invokers` with every `--memory`.
#[derive(Args, Debug, Clone)]
struct PlatformArgs {
    /// Number of invokers; repeat or give a comma list to compare several (one table each).
    #[arg(long, value_delimiter = ',', default_value = "4",
          value_parser = clap::value_parser!(u32).range(1..))]
    invokers: Vec<u32>,
    /// User memory of each invoker in MB; repeat or give a comma list to compare several.
    #[arg(long, value_delimiter = ',', default_value = "2048",
          value_parser = clap::value_parser!(u64).range(1..))]
    memory: Vec<u64>,
    /// Time to create a container before its /init, ms.
    #[arg(long, default_value_t = 300)]
    container_create_ms: u64,
    /// Seconds an idle container is kept warm (the fixed policy's timeout, and the hybrid
    /// policy's fallback).
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
}

impl PlatformArgs {
    fn configs(&self) -> Vec<SimConfig> {
        let mut out = Vec::new();
        for &invokers in &self.invokers {
            for &memory in &self.memory {
                out.push(SimConfig {
                    invokers,
                    invoker_memory_mb: memory,
                    container_create: Duration::from_millis(self.container_create_ms),
                    idle_timeout: Duration::from_secs(self.idle_timeout),
                    ..SimConfig::default()
                });
            }
        }
        out
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("whisk-sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Generate { synthetic, output } => {
            let trace = synthetic.synthetic().generate();
            let written = match &output {
                Some(path) => std::fs::File::create(path)
                    .and_then(|f| trace.write_csv(BufWriter::new(f)))
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => trace
                    .write_csv(BufWriter::new(std::io::stdout().lock()))
                    .map_err(|e| format!("cannot write the trace: {e}")),
            };
            written?;
            if let Some(path) = output {
                eprintln!(
                    "wrote {} invocations of {} functions to {}",
                    trace.invocations.len(),
                    trace.functions.len(),
                    path.display()
                );
            }
            Ok(())
        }
        Command::Report {
            source,
            platform,
            svg,
        } => {
            let (trace, configs) = prepare(&source, &platform)?;
            let mut blocks = Vec::new();
            for config in &configs {
                let reports = compare_with_progress(&trace, config)?;
                let block = Block {
                    title: config_title(config),
                    reports,
                };
                print(&format!("{}\n", format_block(&block)))?;
                blocks.push(block);
            }
            if let Some(path) = svg {
                let doc = render_svg(&blocks).map_err(|e| format!("cannot draw the chart: {e}"))?;
                std::fs::write(&path, doc)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!("wrote the chart to {}", path.display());
            }
            Ok(())
        }
        Command::Run {
            scheduler,
            keep_alive,
            source,
            platform,
        } => {
            let (trace, configs) = prepare(&source, &platform)?;
            for config in &configs {
                let report = run_one(&trace, config, scheduler, keep_alive)?;
                let block = Block {
                    title: config_title(config),
                    reports: vec![report],
                };
                print(&format!("{}\n", format_block(&block)))?;
            }
            Ok(())
        }
    }
}

/// Loads the trace and checks that it fits every configuration before simulating any.
fn prepare(
    source: &SourceArgs,
    platform: &PlatformArgs,
) -> Result<(Trace, Vec<SimConfig>), String> {
    let trace = source.load()?;
    if trace.invocations.is_empty() {
        return Err("the trace has no invocations".into());
    }
    let configs = platform.configs();
    for config in &configs {
        trace
            .check_fits(config.invoker_memory_mb)
            .map_err(|e| e.to_string())?;
    }
    progress(&format!(
        "trace: {} functions, {} invocations over {:.1} min",
        trace.functions.len(),
        trace.invocations.len(),
        trace.duration_ms() as f64 / 60_000.0
    ));
    Ok((trace, configs))
}

/// [`compare`], telling a terminal on stderr how far it got.
fn compare_with_progress(trace: &Trace, config: &SimConfig) -> Result<Vec<SimReport>, String> {
    if !std::io::stderr().is_terminal() {
        return compare(trace, config).map_err(|e| e.to_string());
    }
    let mut out = Vec::new();
    for (ka_name, make) in keep_alives(config.idle_timeout) {
        for (name, scheduler) in schedulers(config.idle_timeout) {
            let label = format!("{name} / {ka_name}");
            progress(&format!("{}: simulating {label} ...", config_title(config)));
            let cfg = SimConfig {
                keep_alive: Some(make.clone()),
                ..config.clone()
            };
            out.push(run(trace, scheduler, &cfg, &label).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// One scheduler with one keep-alive policy.
fn run_one(
    trace: &Trace,
    config: &SimConfig,
    scheduler: SchedulerName,
    keep_alive: KeepAliveName,
) -> Result<SimReport, String> {
    let (name, scheduler) = schedulers(config.idle_timeout)
        .into_iter()
        .find(|(n, _)| *n == scheduler.name())
        .ok_or_else(|| format!("unknown scheduler {}", scheduler.name()))?;
    let index = match keep_alive {
        KeepAliveName::Fixed => 0,
        KeepAliveName::Hybrid => 1,
    };
    let (ka_name, make) = keep_alives(config.idle_timeout)
        .into_iter()
        .nth(index)
        .ok_or("unknown keep-alive policy")?;
    let cfg = SimConfig {
        keep_alive: Some(make),
        ..config.clone()
    };
    run(trace, scheduler, &cfg, &format!("{name} / {ka_name}")).map_err(|e| e.to_string())
}

/// Prints progress to stderr when it is a terminal.
fn progress(text: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{text}");
    }
}

/// Writes to stdout; a closed pipe is not an error worth a panic.
fn print(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}
