//! Conformance suites, one per trait. Every backend runs the same suite from its own tests:
//!
//! ```ignore
//! #[cfg(test)]
//! mod tests {
//!     whisk_core::store_conformance_tests!(my_backend::MyStore::new());
//!     whisk_core::bus_conformance_tests!(my_backend::MyBus::new());
//!     whisk_core::executor_conformance_tests!(MyExecutor::new(), whisk_core::testkit::executor::Fixture::nodejs());
//! }
//! ```
//!
//! Each case works in its own random namespace or topic, so suites can share a backend.

pub mod broker;
pub mod bus;
pub mod docker;
pub mod executor;
pub mod procs;
pub mod store;

/// A random name with `prefix`, so cases never collide on a shared backend.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The address of an external test service (a CouchDB-API server, a broker, ...) from
/// environment variable `var`, which `.ci/run` sets after starting the service. Unset: in CI
/// (`CI` set) this panics, so such tests never skip silently there; elsewhere it prints a
/// SKIPPED line naming `what` and returns `None`.
pub fn service_from_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: CI must provide {what} (see .ci/run)")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (no {what}); .ci/run starts one");
            None
        }
    }
}

/// Generates one `#[tokio::test]` per case of the Store suite. The expression builds the
/// store (it may use `.await`).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases!(
            store,
            $factory,
            [
                create_then_get,
                create_twice_conflicts,
                update_needs_current_revision,
                update_of_missing_is_not_found,
                delete_needs_current_revision,
                list_newest_first_with_skip_limit_count,
                list_by_namespace_and_type,
                activations_filter_by_time_and_name,
                identity_lookup_by_key,
                activation_namespaces_are_distinct,
                action_code_of_any_size_round_trips,
                ids_with_name_characters,
                feed_registrations_list_by_type
            ]
        );
    };
}

/// Generates one `#[tokio::test]` per case of the MessageBus suite.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases!(
            bus,
            $factory,
            [
                delivers_in_order,
                every_group_gets_every_message,
                group_members_share_messages,
                new_group_starts_at_end,
                uncommitted_messages_are_redelivered,
                poll_times_out_empty,
                lag_counts_uncommitted_messages
            ]
        );
    };
}

/// Generates one `#[tokio::test]` per case of the ContainerExecutor suite; `$fixture` is a
/// [`executor::Fixture`] for a kind the executor runs.
#[macro_export]
macro_rules! executor_conformance_tests {
    ($factory:expr, $fixture:expr) => {
        $crate::__conformance_cases!(
            executor,
            $factory,
            $fixture,
            [
                init_then_run_returns_result,
                logs_end_at_sentinels,
                containers_are_isolated,
                destroy_stops_the_container,
                pause_and_resume_keep_it_usable,
                unsupported_kind_is_refused
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($suite:ident, $factory:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = std::sync::Arc::new($factory);
                $crate::testkit::$suite::$case(backend).await;
            }
        )*
    };
    ($suite:ident, $factory:expr, $fixture:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = std::sync::Arc::new($factory);
                $crate::testkit::$suite::$case(backend, $fixture).await;
            }
        )*
    };
}
