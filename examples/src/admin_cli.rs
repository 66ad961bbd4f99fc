//! The `user` and `limits` subcommands of the example binaries: OpenWhisk's `wskadmin user`
//! and `wskadmin limits` over the store a binary would use ([`whisk_core::admin`]).
//!
//! `whisk-standalone user create alice` works on the standalone's store (`--store`,
//! `--data-dir`, `--port` as for the platform; the embedded store cannot be changed while the
//! platform runs on it), `whisk-controller user ...` on CouchDB (`--couchdb-*`). Results go
//! to stdout, errors to stderr with exit code 1. Keys are printed only where a command's
//! purpose is to show them (`create`, `get`, `list --key`), never logged. The embedded store
//! keeps only a salted hash of each key, so there a key is printed once, by `create`; `get`
//! then fails and `get --all` / `list --key` print `<uuid>:<hashed>`.

use crate::standalone::StoreBackend;
use std::fmt;
use std::str::FromStr;
use whisk_core::admin::{self, AdminError, Deleted, LimitsWritten, NamespaceLimits};
use whisk_core::entity::AuthKey;
use whisk_core::store::{Store, StoreError};

/// The administration subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Manage subjects, their namespaces and keys (OpenWhisk's `wskadmin user`); run instead
    /// of the platform.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage per-namespace limits (OpenWhisk's `wskadmin limits`); run instead of the
    /// platform.
    #[command(subcommand)]
    Limits(LimitsCommand),
}

/// A `uuid:key` given on the command line, checked when the command runs (so a malformed
/// one is not echoed back by the argument parser); its `Debug` hides the secret.
#[derive(Clone)]
pub struct KeyArg(pub String);

impl KeyArg {
    /// The credential, checked with [`admin::parse_key`].
    pub fn key(&self) -> Result<AuthKey, AdminError> {
        admin::parse_key(&self.0)
    }
}

impl fmt::Debug for KeyArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uuid = self.0.split(':').next().unwrap_or("");
        write!(f, "KeyArg({uuid}:<redacted>)")
    }
}

impl FromStr for KeyArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KeyArg(s.to_string()))
    }
}

/// `user ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a subject (or add a namespace to an existing one) and print its `uuid:key`.
    Create {
        /// The subject (at least 5 characters).
        subject: String,
        /// The namespace of the key (default: the subject's name).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Use this `uuid:key` (a UUID and a 64-character secret) instead of a fresh one.
        #[arg(long, short = 'u', value_name = "UUID:KEY")]
        auth: Option<KeyArg>,
    },
    /// Print the `uuid:key` of a subject's namespace (not on a store that keeps keys hashed).
    Get {
        /// The subject.
        subject: String,
        /// The namespace (default: the subject's name).
        #[arg(long, short = 'n', conflicts_with = "all")]
        namespace: Option<String>,
        /// Print every namespace and its key, `NAMESPACE<TAB>uuid:key` per line
        /// (`uuid:<hashed>` where the store keeps only the key's hash).
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// Print the subject and namespace a `uuid:key` belongs to.
    Whois {
        /// The credentials to look up.
        #[arg(value_name = "UUID:KEY")]
        auth: KeyArg,
    },
    /// List the subjects with a key for a namespace (blocked subjects are not shown).
    List {
        /// The namespace.
        namespace: String,
        /// Print only the keys, `uuid:key` per line, instead of the subjects
        /// (`uuid:<hashed>` where the store keeps only the key's hash).
        #[arg(long, short = 'k')]
        key: bool,
    },
    /// Delete a subject, or only one namespace of it.
    Delete {
        /// The subject.
        subject: String,
        /// Delete only this namespace (and its key).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// Block subjects: their keys stop authenticating.
    Block {
        /// The subjects.
        #[arg(required = true)]
        subjects: Vec<String>,
    },
    /// Unblock subjects.
    Unblock {
        /// The subjects.
        #[arg(required = true)]
        subjects: Vec<String>,
    },
}

/// `limits ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum LimitsCommand {
    /// Set a namespace's limits (replacing those set before; limits not given fall back to
    /// the system defaults).
    Set {
        /// The namespace.
        namespace: String,
        /// Action invocations per minute (0 blocks invocations).
        #[arg(long, alias = "invocationsPerMinute")]
        invocations_per_minute: Option<u64>,
        /// Activations in flight at once.
        #[arg(long, alias = "concurrentInvocations")]
        concurrent_invocations: Option<u64>,
        /// Trigger fires per minute.
        #[arg(long, alias = "firesPerMinute")]
        fires_per_minute: Option<u64>,
    },
    /// Print a namespace's limits.
    Get {
        /// The namespace.
        namespace: String,
    },
    /// Delete a namespace's limits (system defaults apply).
    Delete {
        /// The namespace.
        namespace: String,
    },
}

/// What a command printed: lines for stdout and errors for stderr (any error means exit
/// code 1). Not `Debug`: the lines may hold keys.
#[derive(Default)]
pub struct Outcome {
    /// Lines for stdout.
    pub lines: Vec<String>,
    /// Error messages for stderr.
    pub errors: Vec<String>,
}

impl Outcome {
    fn line(text: impl Into<String>) -> Self {
        Self {
            lines: vec![text.into()],
            errors: Vec::new(),
        }
    }

    fn from_result(r: Result<Outcome, AdminError>) -> Self {
        r.unwrap_or_else(|e| Self {
            lines: Vec::new(),
            errors: vec![e.to_string()],
        })
    }

    /// Whether the command succeeded.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Prints the lines to stdout and the errors to stderr; returns the exit code (0 or 1).
    pub fn print(&self) -> i32 {
        for l in &self.lines {
            crate::cli::say(l);
        }
        for e in &self.errors {
            eprintln!("error: {e}");
        }
        if self.ok() {
            0
        } else {
            1
        }
    }
}

/// Runs `cmd` against `store`.
pub async fn run(store: &dyn Store, cmd: &AdminCommand) -> Outcome {
    match cmd {
        AdminCommand::User(c) => run_user(store, c).await,
        AdminCommand::Limits(c) => Outcome::from_result(run_limits(store, c).await),
    }
}

async fn run_user(store: &dyn Store, cmd: &UserCommand) -> Outcome {
    let one = |r: Result<Outcome, AdminError>| Outcome::from_result(r);
    match cmd {
        UserCommand::Create {
            subject,
            namespace,
            auth,
        } => {
            let create = async {
                let auth = auth.as_ref().map(KeyArg::key).transpose()?;
                admin::create_user(store, subject, namespace.as_deref(), auth).await
            };
            one(create.await.map(|k| Outcome::line(k.compact())))
        }
        UserCommand::Get {
            subject,
            namespace,
            all,
        } => one(if *all {
            admin::get_user(store, subject).await.map(|u| Outcome {
                lines: u
                    .namespaces
                    .iter()
                    .map(|n| format!("{}\t{}", n.namespace, n.shown()))
                    .collect(),
                errors: Vec::new(),
            })
        } else {
            admin::get_key(store, subject, namespace.as_deref())
                .await
                .map(|k| Outcome::line(k.compact()))
        }),
        UserCommand::Whois { auth } => one(whois(store, auth).await.map(|w| {
            let mut lines = vec![
                format!("subject: {}", w.subject),
                format!("namespace: {}", w.namespace),
            ];
            if w.blocked {
                lines.push("blocked: true".into());
            }
            Outcome {
                lines,
                errors: Vec::new(),
            }
        })),
        UserCommand::List { namespace, key } => one(admin::list_namespace(store, namespace)
            .await
            .map(|members| Outcome {
                lines: members
                    .iter()
                    .map(|m| if *key { m.shown() } else { m.subject.clone() })
                    .collect(),
                errors: Vec::new(),
            })),
        UserCommand::Delete { subject, namespace } => {
            one(admin::delete_user(store, subject, namespace.as_deref())
                .await
                .map(|d| {
                    Outcome::line(match d {
                        Deleted::Subject => "Subject deleted",
                        Deleted::Namespace => "Namespace deleted",
                    })
                }))
        }
        UserCommand::Block { subjects } | UserCommand::Unblock { subjects } => {
            let blocking = matches!(cmd, UserCommand::Block { .. });
            let mut out = Outcome::default();
            for s in subjects {
                let r = if blocking {
                    admin::block(store, s).await
                } else {
                    admin::unblock(store, s).await
                };
                match r {
                    Ok(()) => out.lines.push(format!(
                        "'{s}' {} successfully",
                        if blocking { "blocked" } else { "unblocked" }
                    )),
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
            out
        }
    }
}

async fn whois(store: &dyn Store, auth: &KeyArg) -> Result<admin::Whois, AdminError> {
    admin::whois(store, &auth.key()?).await
}

async fn run_limits(store: &dyn Store, cmd: &LimitsCommand) -> Result<Outcome, AdminError> {
    Ok(match cmd {
        LimitsCommand::Set {
            namespace,
            invocations_per_minute,
            concurrent_invocations,
            fires_per_minute,
        } => {
            let limits = NamespaceLimits {
                invocations_per_minute: *invocations_per_minute,
                concurrent_invocations: *concurrent_invocations,
                fires_per_minute: *fires_per_minute,
                ..Default::default()
            };
            if limits.is_empty() {
                return Err(AdminError::Invalid(
                    "give at least one of --invocations-per-minute, --concurrent-invocations, \
                     --fires-per-minute"
                        .into(),
                ));
            }
            Outcome::line(match admin::set_limits(store, namespace, &limits).await? {
                LimitsWritten::Created => format!("Limits successfully set for '{namespace}'"),
                LimitsWritten::Updated => format!("Limits successfully updated for '{namespace}'"),
            })
        }
        LimitsCommand::Get { namespace } => match admin::get_limits(store, namespace).await? {
            None => Outcome::line("No limits found, default system limits apply"),
            Some(l) => {
                let mut lines = Vec::new();
                let mut field = |name: &str, v: Option<u64>| {
                    if let Some(v) = v {
                        lines.push(format!("{name} = {v}"));
                    }
                };
                field("concurrentInvocations", l.concurrent_invocations);
                field("invocationsPerMinute", l.invocations_per_minute);
                field("firesPerMinute", l.fires_per_minute);
                for (k, v) in &l.other {
                    lines.push(format!("{k} = {v}"));
                }
                Outcome {
                    lines,
                    errors: Vec::new(),
                }
            }
        },
        LimitsCommand::Delete { namespace } => {
            admin::delete_limits(store, namespace).await?;
            Outcome::line("Limits deleted")
        }
    })
}

/// Opens `backend` and runs `cmd` on it; returns the exit code after printing. The memory
/// store is refused (it would forget the change on exit), and an embedded store in use by a
/// running platform is reported as such.
pub async fn run_on_backend(backend: &StoreBackend, cmd: &AdminCommand) -> i32 {
    if let StoreBackend::Memory = backend {
        eprintln!(
            "error: the memory store keeps nothing after this command exits; \
             use --store embedded (with --data-dir) or --store couchdb"
        );
        return 1;
    }
    let store = match backend.open().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", open_error(backend, &e));
            return 1;
        }
    };
    let outcome = run(store.as_ref(), cmd).await;
    // Close the store (the embedded one finishes its writes) before the process exits.
    drop(store);
    outcome.print()
}

/// The message for a store that would not open.
fn open_error(backend: &StoreBackend, e: &StoreError) -> String {
    match (backend, e) {
        (StoreBackend::Embedded(dir), StoreError::Unavailable(m)) if m.contains("already open") => {
            format!(
                "the embedded store in {} is locked: a whisk-standalone platform is running on \
                 it. Stop the platform first; `user` and `limits` cannot change an embedded \
                 store while the platform uses it. ({m})",
                dir.display()
            )
        }
        _ => format!("cannot open the store: {e}"),
    }
}

/// The flags of `whisk-standalone` that also work after its `user`/`limits` subcommands.
pub const STANDALONE_GLOBAL_ARGS: &[&str] = &[
    "store",
    "data_dir",
    "port",
    "couchdb_url",
    "couchdb_user",
    "couchdb_password",
    "couchdb_prefix",
];

/// The flags of `whisk-controller` that also work after its `user`/`limits` subcommands.
pub const CONTROLLER_GLOBAL_ARGS: &[&str] = &[
    "couchdb_url",
    "couchdb_user",
    "couchdb_password",
    "couchdb_prefix",
];

/// Parses the command line into `T`, letting the flags named in `global` (argument ids, the
/// field names) also follow a subcommand: `whisk-standalone user create alice --data-dir d`.
pub fn parse_args<T: clap::Parser>(global: &[&str]) -> T {
    let mut cmd = T::command();
    for id in global {
        cmd = cmd.mut_arg(*id, |a| a.global(true));
    }
    let matches = cmd.get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
