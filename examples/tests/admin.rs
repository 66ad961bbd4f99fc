//! Administration of subjects, keys and limits (`whisk_core::admin`, OpenWhisk's `wskadmin`)
//! on the memory, embedded and CouchDB stores, and `whisk-standalone user ...` end to end.

mod common;

use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_core::admin::{self, AdminError, Deleted, LimitsWritten, NamespaceLimits};
use whisk_core::entity::AuthKey;
use whisk_core::store::{Collection, Store, StoreExt};
use whisk_core::testkit::unique;
use whisk_store::{EmbeddedStore, MemoryStore};

/// A subject name of at least 5 characters, unique to this run.
fn subject() -> String {
    unique("user")
}

fn assert_key_shape(key: &AuthKey) {
    assert!(uuid_like(&key.uuid), "uuid {}", key.uuid);
    assert_eq!(key.key.len(), 64);
    assert!(key.key.chars().all(|c| c.is_ascii_alphanumeric()));
}

fn uuid_like(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Whether a store keeps key secrets in clear (memory, CouchDB) or only their hashes
/// (embedded): what `get`, `list` and friends can show.
#[derive(Clone, Copy, PartialEq)]
enum Keys {
    Clear,
    Hashed,
}

/// What a store shows of `key`: the key itself where it keeps it, else nothing.
fn shown(keys: Keys, key: &AuthKey) -> Option<AuthKey> {
    (keys == Keys::Clear).then(|| key.clone())
}

async fn users_and_keys(store: &dyn Store, keys: Keys) {
    let alice = subject();
    let key = admin::create_user(store, &alice, None, None).await.unwrap();
    assert_key_shape(&key);
    // The key authenticates, for the namespace named after the subject.
    let id = store.identity(&key.uuid, &key.key).await.unwrap().unwrap();
    assert_eq!(id.subject, alice);
    assert_eq!(id.namespace.name, alice);

    // A duplicate is refused and changes nothing.
    let dup = admin::create_user(store, &alice, None, None).await;
    assert_eq!(
        dup,
        Err(AdminError::NamespaceExists {
            subject: alice.clone(),
            namespace: alice.clone()
        })
    );
    assert!(dup.unwrap_err().to_string().contains("already exists"));
    assert_eq!(
        admin::get_user(store, &alice)
            .await
            .unwrap()
            .namespaces
            .len(),
        1
    );

    // A second namespace with a given key.
    let shared = unique("shared");
    let given = AuthKey::generate();
    let k2 = admin::create_user(store, &alice, Some(&shared), Some(given.clone()))
        .await
        .unwrap();
    assert_eq!(k2, given);
    // The same key for another subject is refused.
    let bob = subject();
    assert_eq!(
        admin::create_user(store, &bob, Some(&shared), Some(given.clone())).await,
        Err(AdminError::KeyInUse)
    );
    let bob_key = admin::create_user(store, &bob, Some(&shared), None)
        .await
        .unwrap();
    assert_ne!(bob_key, given);

    // get / get --all: the key where the store keeps it; a store keeping hashes says so.
    for (ns, k) in [(None, &key), (Some(shared.as_str()), &given)] {
        let got = admin::get_key(store, &alice, ns).await;
        match keys {
            Keys::Clear => assert_eq!(got.unwrap(), *k),
            Keys::Hashed => {
                let e = got.unwrap_err();
                assert!(matches!(e, AdminError::KeyHashed { .. }), "{e}");
                assert!(e.to_string().contains("shown only when created"), "{e}");
            }
        }
    }
    let user = admin::get_user(store, &alice).await.unwrap();
    assert_eq!(user.namespaces[0].uuid, key.uuid);
    assert_eq!(user.namespaces[0].key, shown(keys, &key));
    let expected_shown = match keys {
        Keys::Clear => key.compact(),
        Keys::Hashed => format!("{}:<hashed>", key.uuid),
    };
    assert_eq!(user.namespaces[0].shown(), expected_shown);
    let names: Vec<_> = user
        .namespaces
        .iter()
        .map(|n| n.namespace.as_str())
        .collect();
    assert_eq!(names, [alice.as_str(), shared.as_str()]);
    assert!(!user.blocked);
    assert!(matches!(
        admin::get_key(store, &alice, Some("nothere")).await,
        Err(AdminError::NamespaceMissing { .. })
    ));

    // whois.
    let w = admin::whois(store, &given).await.unwrap();
    assert_eq!(
        (w.subject.as_str(), w.namespace.as_str()),
        (alice.as_str(), shared.as_str())
    );
    assert!(!w.blocked);
    assert_eq!(
        admin::whois(store, &AuthKey::generate()).await,
        Err(AdminError::UnknownKey)
    );

    // list: both subjects share `shared`.
    let members = admin::list_namespace(store, &shared).await.unwrap();
    let got: Vec<_> = members
        .into_iter()
        .map(|m| (m.subject, m.uuid, m.key))
        .collect();
    let mut expected = vec![
        (alice.clone(), given.uuid.clone(), shown(keys, &given)),
        (bob.clone(), bob_key.uuid.clone(), shown(keys, &bob_key)),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, expected);

    // block: no key of the subject authenticates; unblock restores them.
    admin::block(store, &alice).await.unwrap();
    assert!(admin::get_user(store, &alice).await.unwrap().blocked);
    assert!(store.identity(&key.uuid, &key.key).await.unwrap().is_none());
    assert!(store
        .identity(&given.uuid, &given.key)
        .await
        .unwrap()
        .is_none());
    assert!(store.namespace_identity(&alice).await.unwrap().is_none());
    // Bob, unblocked, still gets in.
    assert!(store
        .identity(&bob_key.uuid, &bob_key.key)
        .await
        .unwrap()
        .is_some());
    let listed: Vec<_> = admin::list_namespace(store, &shared)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(listed, vec![bob.clone()], "blocked subjects are not listed");
    assert!(admin::whois(store, &key).await.unwrap().blocked);
    assert_eq!(
        admin::create_user(store, &alice, Some(&unique("more")), None).await,
        Err(AdminError::SubjectBlocked(alice.clone()))
    );
    admin::unblock(store, &alice).await.unwrap();
    assert!(store.identity(&key.uuid, &key.key).await.unwrap().is_some());
    let doc = store.get(Collection::Subjects, &alice).await.unwrap();
    assert!(doc.body.get("blocked").is_none());

    // delete one namespace, then the subject.
    assert_eq!(
        admin::delete_user(store, &alice, Some(&shared)).await,
        Ok(Deleted::Namespace)
    );
    assert!(store
        .identity(&given.uuid, &given.key)
        .await
        .unwrap()
        .is_none());
    assert!(store.identity(&key.uuid, &key.key).await.unwrap().is_some());
    assert!(matches!(
        admin::delete_user(store, &alice, Some(&shared)).await,
        Err(AdminError::NamespaceMissing { .. })
    ));
    assert_eq!(
        admin::delete_user(store, &alice, None).await,
        Ok(Deleted::Subject)
    );
    assert!(store.identity(&key.uuid, &key.key).await.unwrap().is_none());

    // Unknown subjects.
    let ghost = subject();
    let missing = Err(AdminError::SubjectNotFound(ghost.clone()));
    assert_eq!(admin::get_user(store, &ghost).await, missing);
    assert_eq!(
        admin::delete_user(store, &ghost, None).await,
        Err(AdminError::SubjectNotFound(ghost.clone()))
    );
    assert_eq!(
        admin::block(store, &ghost).await,
        Err(AdminError::SubjectNotFound(ghost.clone()))
    );
    assert_eq!(
        admin::unblock(store, &ghost).await,
        Err(AdminError::SubjectNotFound(ghost.clone()))
    );

    // Invalid input.
    assert!(matches!(
        admin::create_user(store, "abc", None, None).await,
        Err(AdminError::InvalidSubject { .. })
    ));
    let short = AuthKey {
        uuid: given.uuid.clone(),
        key: "k".repeat(10),
    };
    let e = admin::create_user(store, &subject(), None, Some(short))
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::InvalidKey(_)), "{e}");
}

async fn empty_namespace_listing(store: &dyn Store) {
    let ns = unique("empty");
    assert_eq!(
        admin::list_namespace(store, &ns).await,
        Err(AdminError::NoIdentities(ns.clone()))
    );
}

async fn limits(store: &dyn Store) {
    let alice = subject();
    let key = admin::create_user(store, &alice, None, None).await.unwrap();
    assert_eq!(admin::get_limits(store, &alice).await, Ok(None));
    let set = NamespaceLimits {
        invocations_per_minute: Some(7),
        concurrent_invocations: Some(3),
        ..Default::default()
    };
    assert_eq!(
        admin::set_limits(store, &alice, &set).await,
        Ok(LimitsWritten::Created)
    );
    assert_eq!(admin::get_limits(store, &alice).await, Ok(Some(set)));
    // The identity carries them (what the throttles read).
    let id = store.identity(&key.uuid, &key.key).await.unwrap().unwrap();
    assert_eq!(
        id.limits,
        json!({"invocationsPerMinute": 7, "concurrentInvocations": 3})
    );
    // `set` replaces, as `wskadmin limits set`.
    let fires = NamespaceLimits {
        fires_per_minute: Some(0),
        ..Default::default()
    };
    assert_eq!(
        admin::set_limits(store, &alice, &fires).await,
        Ok(LimitsWritten::Updated)
    );
    assert_eq!(admin::get_limits(store, &alice).await, Ok(Some(fires)));
    // Documents written by others keep their other fields visible.
    store
        .put_namespace_limits(&alice, json!({"maxActionMemory": 512, "firesPerMinute": 2}))
        .await
        .unwrap();
    let read = admin::get_limits(store, &alice).await.unwrap().unwrap();
    assert_eq!(read.fires_per_minute, Some(2));
    assert_eq!(read.other["maxActionMemory"], 512);

    assert_eq!(admin::delete_limits(store, &alice).await, Ok(()));
    assert_eq!(admin::get_limits(store, &alice).await, Ok(None));
    assert_eq!(
        admin::delete_limits(store, &alice).await,
        Err(AdminError::LimitsNotFound(alice.clone()))
    );
    let id = store.identity(&key.uuid, &key.key).await.unwrap().unwrap();
    assert!(id.limits.as_object().is_none_or(|m| m.is_empty()));
    assert!(matches!(
        admin::set_limits(store, &alice, &NamespaceLimits::default()).await,
        Err(AdminError::Invalid(_))
    ));
    // The limits document is not a subject.
    assert!(admin::list_namespace(store, &format!("{alice}/limits"))
        .await
        .is_err());
}

async fn all(store: Arc<dyn Store>, keys: Keys) {
    users_and_keys(store.as_ref(), keys).await;
    empty_namespace_listing(store.as_ref()).await;
    limits(store.as_ref()).await;
}

#[tokio::test]
async fn admin_on_memory_store() {
    all(Arc::new(MemoryStore::new()), Keys::Clear).await;
}

#[tokio::test]
async fn admin_on_couchdb() {
    let Some(url) = common::couchdb_url() else {
        return;
    };
    let store = whisk_store::CouchStore::connect(common::couch_config(&url))
        .await
        .unwrap();
    all(Arc::new(store), Keys::Clear).await;
}

#[tokio::test]
async fn admin_on_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    all(
        Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
        Keys::Hashed,
    )
    .await;
    // Changes are durable: a reopened store sees them.
    let alice = subject();
    let key = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let key = admin::create_user(&store, &alice, None, None)
            .await
            .unwrap();
        admin::block(&store, &alice).await.unwrap();
        key
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(admin::get_user(&store, &alice).await.unwrap().blocked);
    assert!(store.identity(&key.uuid, &key.key).await.unwrap().is_none());
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs `whisk-standalone ARGS`; returns exit success, stdout and stderr.
fn standalone(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whisk-standalone"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Stops a platform process with SIGTERM and waits for it.
fn stop(mut child: std::process::Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "platform did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn get_namespaces(url: &str, key: &str) -> reqwest::Response {
    let (user, pass) = key.split_once(':').unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/api/v1/namespaces"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn standalone_user_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let store = ["--store", "embedded", "--data-dir", data];
    let with = |rest: &[&str]| -> Vec<String> {
        store
            .iter()
            .map(|s| s.to_string())
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        standalone(&args)
    };

    // Flags before the subcommand.
    let (ok, out, err) = run(with(&["user", "create", "alice"]));
    assert!(ok, "stderr: {err}");
    let key = out.trim().to_string();
    assert_key_shape(&AuthKey::parse(&key).unwrap());
    assert!(!err.contains(&key[37..]), "the key is not logged");
    // A duplicate fails with a clear message and exit code 1.
    let (ok, out, err) = run(with(&["user", "create", "alice"]));
    assert!(!ok);
    assert!(out.is_empty());
    assert!(
        err.contains("namespace 'alice' already exists for subject 'alice'"),
        "{err}"
    );
    // Flags after the subcommand work too. The embedded store keeps only the key's hash:
    // `get` says so, `get --all` and `list --key` show its UUID.
    let (ok, out, err) = standalone(&[
        "user",
        "get",
        "alice",
        "--store",
        "embedded",
        "--data-dir",
        data,
    ]);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(
        err.contains("stored hashed and cannot be shown; it is shown only when created"),
        "{err}"
    );
    let uuid = key.split_once(':').unwrap().0;
    let (ok, out, _) = run(with(&["user", "get", "alice", "--all"]));
    assert!(ok);
    assert_eq!(out, format!("alice\t{uuid}:<hashed>\n"));
    // The secret is nowhere in the store's files; its UUID is (the files are searchable).
    let files = files_under(dir.path());
    let contains = |needle: &[u8]| {
        files.iter().any(|f| {
            let bytes = std::fs::read(f).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    };
    assert!(contains(uuid.as_bytes()), "{files:?}");
    assert!(!contains(&key.as_bytes()[37..]));
    let (ok, out, _) = run(with(&["user", "whois", &key]));
    assert!(ok);
    assert_eq!(out, "subject: alice\nnamespace: alice\n");
    let (ok, out, _) = run(with(&["user", "list", "alice"]));
    assert!(ok);
    assert_eq!(out, "alice\n");
    let (ok, out, _) = run(with(&["user", "list", "alice", "--key"]));
    assert!(ok);
    assert_eq!(out, format!("{uuid}:<hashed>\n"));
    let (ok, out, _) = run(with(&[
        "limits",
        "set",
        "alice",
        "--invocations-per-minute",
        "100",
    ]));
    assert!(ok);
    assert_eq!(out, "Limits successfully set for 'alice'\n");
    let (ok, out, _) = run(with(&["limits", "get", "alice"]));
    assert!(ok);
    assert_eq!(out, "invocationsPerMinute = 100\n");
    let (ok, _, err) = run(with(&["user", "block", "nobody-here"]));
    assert!(!ok);
    assert!(err.contains("subject 'nobody-here' not found"), "{err}");

    // The platform on that store lets the new key in.
    let platform_args = with(&["--port", "0", "--no-prewarm"]);
    let (child, url) = common::spawn_standalone(&platform_args);
    let r = get_namespaces(&url, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!(["alice"])
    );
    // While it runs, the embedded store is locked, and the command says so.
    let (ok, _, err) = run(with(&["user", "block", "alice"]));
    assert!(!ok);
    assert!(
        err.contains("locked") && err.contains("Stop the platform"),
        "{err}"
    );
    stop(child);

    let (ok, out, err) = run(with(&["user", "block", "alice"]));
    assert!(ok, "{err}");
    assert_eq!(out, "'alice' blocked successfully\n");
    let (child, url) = common::spawn_standalone(&platform_args);
    let r = get_namespaces(&url, &key).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"OpenWhisk secure realm\""
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "The supplied authentication is invalid");
    assert!(body["code"].is_string());
    stop(child);

    // A malformed key is refused without being echoed.
    let (ok, _, err) = run(with(&["user", "whois", "not-a-uuid:topsecretvalue"]));
    assert!(!ok);
    assert!(
        err.contains("not a valid UUID") && !err.contains("topsecretvalue"),
        "{err}"
    );

    // The memory store is refused: the change would be lost.
    let (ok, _, err) = standalone(&["--store", "memory", "user", "create", "alice"]);
    assert!(!ok);
    assert!(err.contains("memory store"), "{err}");
}

/// A non-loopback address is refused while OpenWhisk's well-known keys open the API: each of
/// the two default subjects counts, blocking both (or `--allow-default-keys`, or loopback)
/// lets the platform serve.
#[tokio::test]
async fn default_keys_are_not_served_beyond_loopback() {
    use whisk_examples::cluster::{check_default_keys, seed_keys};
    let store = whisk_store::MemoryStore::new();
    seed_keys(&store).await.unwrap();
    let open: std::net::SocketAddr = "0.0.0.0:3233".parse().unwrap();
    let refused = |e: std::io::Error, subject: &str| {
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string().contains(&format!("well-known {subject} key")),
            "{e}"
        );
    };
    refused(
        check_default_keys(&store, open, false).await.unwrap_err(),
        "guest",
    );
    check_default_keys(&store, "127.0.0.1:3233".parse().unwrap(), false)
        .await
        .unwrap();
    check_default_keys(&store, "[::1]:3233".parse().unwrap(), false)
        .await
        .unwrap();
    check_default_keys(&store, open, true).await.unwrap();
    whisk_core::admin::block(&store, "guest").await.unwrap();
    refused(
        check_default_keys(&store, open, false).await.unwrap_err(),
        "whisk.system",
    );
    whisk_core::admin::block(&store, "whisk.system")
        .await
        .unwrap();
    check_default_keys(&store, open, false).await.unwrap();
}

/// The standalone binary refuses, before it listens, to serve the default keys on all
/// interfaces: exit code 1 and the reason.
#[test]
fn the_standalone_binary_refuses_default_keys_on_all_interfaces() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whisk-standalone"))
        .args([
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--store",
            "memory",
            "--no-feeds",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve on 0.0.0.0"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it never listened"
    );
}
