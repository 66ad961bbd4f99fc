//! Isolation and robustness of the process executor, driving containers directly.

use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec};
use whisk_core::runtime::{init_body, ActivationContext, CallOutcome, RuntimeClient};
use whisk_core::testkit::procs::{host_pid, NODE_REF, PYTHON_SELF};
use whisk_exec::ProcessExecutor;

const API_HOST: &str = "http://whisk.test:3233";

fn spec(kind: &str, memory_mb: u64) -> ContainerSpec {
    ContainerSpec {
        name: format!("iso_{}", &uuid_like()[..8]),
        kind: kind.into(),
        image: None,
        memory_mb,
        env: vec![("__OW_API_HOST".into(), API_HOST.into())],
        host_network: false,
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", n, std::process::id())
}

fn context() -> ActivationContext {
    ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/iso".into(),
        action_version: "0.0.1".into(),
        activation_id: "0123456789abcdef0123456789abcdef".into(),
        transaction_id: "isolation".into(),
        deadline_ms: u64::MAX / 2,
    }
}

/// A container of `kind` with `code` initialised (with init parameters `env`).
async fn start_with(
    exec: &ProcessExecutor,
    kind: &str,
    memory_mb: u64,
    code: &str,
    env: Map<String, Value>,
) -> Arc<dyn Container> {
    let c = exec
        .create(&spec(kind, memory_mb))
        .await
        .expect("container starts");
    let init = RuntimeClient::default()
        .init(
            c.endpoint(),
            &init_body("iso", None, Some(code), false, env),
            Duration::from_secs(20),
        )
        .await;
    assert!(init.response.is_success(), "init: {:?}", init.response);
    c
}

async fn start(exec: &ProcessExecutor, kind: &str, code: &str) -> Arc<dyn Container> {
    start_with(exec, kind, 256, code, Map::new()).await
}

async fn run(c: &Arc<dyn Container>, args: Value, timeout: Duration) -> CallOutcome {
    RuntimeClient::default()
        .run(c.endpoint(), &context().run_body(args), timeout)
        .await
}

async fn result(c: &Arc<dyn Container>, args: Value) -> Value {
    let out = run(c, args, Duration::from_secs(20)).await;
    assert!(out.response.is_success(), "run: {:?}", out.response);
    out.response.result.unwrap()
}

/// The state letter of process `pid` (`None` once it is gone); a zombie is `Z`.
fn state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits up to `wait` until process `pid` is gone (or a zombie).
async fn dies(pid: u64, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match state(pid) {
            None | Some('Z') | Some('X') => return true,
            _ if Instant::now() > deadline => return false,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The directory of process `pid`'s cgroup in the v1 hierarchy of `controller`.
fn cgroup_dir(pid: u64, controller: &str) -> Option<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = own.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (_, c, path) = (p.next()?, p.next()?, p.next()?);
        c.split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })?;
    Some(
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(path.trim_start_matches('/')),
    )
}

/// Waits up to `wait` until the container can be started and answers again.
async fn executor_is_healthy(exec: &ProcessExecutor) {
    let c = start(exec, "nodejs:20", "function main(a) { return {ok: true}; }").await;
    assert_eq!(result(&c, json!({})).await, json!({"ok": true}));
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn each_container_has_a_private_working_directory_removed_on_destroy() {
    let exec = ProcessExecutor::new().unwrap();
    let code = "const os = require('os'); function main() { \
                return {cwd: process.cwd(), home: process.env.HOME, tmp: os.tmpdir()}; }";
    let a = start(&exec, "nodejs:20", code).await;
    let b = start(&exec, "nodejs:20", code).await;
    let ra = result(&a, json!({})).await;
    let rb = result(&b, json!({})).await;
    let dir = PathBuf::from(ra["cwd"].as_str().unwrap());
    assert_eq!(ra["home"], ra["cwd"]);
    assert_eq!(ra["tmp"], ra["cwd"]);
    assert_ne!(ra["cwd"], rb["cwd"], "each container has its own directory");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    // The launcher wrote the action's code there.
    assert!(std::fs::read_dir(&dir).unwrap().next().is_some());
    a.destroy().await.unwrap();
    assert!(!dir.exists(), "{} removed on destroy", dir.display());
    assert!(Path::new(rb["cwd"].as_str().unwrap()).exists());
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn the_environment_holds_only_the_spec_and_the_init_parameters() {
    let secret = format!("WHISK_ISOLATION_SECRET_{}", uuid_like());
    std::env::set_var(&secret, "must not leak");
    let exec = ProcessExecutor::new().unwrap();
    let mut params = Map::new();
    params.insert("MY_INIT_PARAM".into(), json!("from init"));
    let node = start_with(
        &exec,
        "nodejs:20",
        256,
        "function main() { return {env: process.env}; }",
        params.clone(),
    )
    .await;
    let env = result(&node, json!({})).await["env"].clone();
    let env = env.as_object().unwrap();
    assert!(!env.contains_key(&secret));
    assert_eq!(env["__OW_API_HOST"], API_HOST);
    assert_eq!(env["MY_INIT_PARAM"], "from init");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert!(env.contains_key("PATH"));
    let allowed = [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "WHISK_RUNTIME_PORT",
        "WHISK_RUNTIME_LISTEN_FD",
        "MY_INIT_PARAM",
        // The sandbox (bwrap) sets the working directory's path.
        "PWD",
    ];
    if let Some(pwd) = env.get("PWD") {
        assert_eq!(pwd, &env["HOME"], "PWD is the container's own directory");
    }
    for key in env.keys() {
        assert!(
            allowed.contains(&key.as_str()) || key.starts_with("__OW_"),
            "unexpected variable {key} in {env:?}"
        );
    }
    node.destroy().await.unwrap();

    let py = start_with(
        &exec,
        "python:3.11",
        256,
        "import os\ndef main(a):\n    return {'env': dict(os.environ)}\n",
        params,
    )
    .await;
    let env = result(&py, json!({})).await["env"].clone();
    let env = env.as_object().unwrap();
    assert!(!env.contains_key(&secret));
    assert_eq!(env["__OW_API_HOST"], API_HOST);
    assert_eq!(env["MY_INIT_PARAM"], "from init");
    py.destroy().await.unwrap();
    std::env::remove_var(&secret);
}

#[tokio::test]
async fn destroy_kills_the_whole_process_tree() {
    let exec = ProcessExecutor::new().unwrap();
    let code = format!(
        "const {{ spawn }} = require('child_process'); {NODE_REF} function main() {{ \
         const kid = spawn('sleep', ['1000'], {{stdio: 'ignore'}}); kid.unref(); \
         const away = spawn('sleep', ['1001'], {{stdio: 'ignore', detached: true}}); away.unref(); \
         return {{pid: ref(process.pid), kid: ref(kid.pid), away: ref(away.pid)}}; }}"
    );
    let c = start(&exec, "nodejs:20", &code).await;
    let r = result(&c, json!({})).await;
    let host = |key: &str| host_pid(r[key].as_str().unwrap()).expect("running") as u64;
    let (pid, kid, away) = (host("pid"), host("kid"), host("away"));
    assert!(state(kid).is_some() && state(away).is_some());
    c.destroy().await.unwrap();
    assert!(dies(pid, Duration::from_secs(3)).await, "launcher gone");
    assert!(dies(kid, Duration::from_secs(3)).await, "grandchild gone");
    let e = exec.enforcement();
    if e.pids_cgroup || e.pid_namespace {
        // It left the process group (setsid) but not the cgroup, nor the PID namespace
        // (whose end kills everything in it).
        assert!(
            dies(away, Duration::from_secs(3)).await,
            "setsid grandchild gone"
        );
    } else {
        eprintln!("no pids cgroup, no PID namespace: a setsid grandchild survives; killing it");
        let _ = std::process::Command::new("kill")
            .args(["-9", &away.to_string()])
            .status();
    }
    executor_is_healthy(&exec).await;
}

#[tokio::test]
async fn pause_stops_the_process_and_resume_lets_it_answer() {
    let exec = ProcessExecutor::new().unwrap();
    let code = format!("import os\ndef main(a):\n    return {{'pid': {PYTHON_SELF}}}\n");
    let c = start(&exec, "python:3.11", &code).await;
    let reference = result(&c, json!({})).await["pid"].clone();
    let pid = host_pid(reference.as_str().unwrap()).expect("running") as u64;
    c.pause().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while state(pid) != Some('T') && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state(pid), Some('T'), "paused: stopped");
    let stalled = run(&c, json!({}), Duration::from_millis(300)).await;
    assert!(stalled.timed_out, "a paused container does not answer");
    c.resume().await.unwrap();
    assert_ne!(state(pid), Some('T'));
    assert_eq!(result(&c, json!({})).await["pid"], reference);
    c.destroy().await.unwrap();
    assert!(
        c.pause().await.is_err(),
        "a destroyed container cannot pause"
    );
}

#[tokio::test]
async fn an_action_allocating_past_its_memory_is_stopped() {
    let exec = ProcessExecutor::new().unwrap();
    // Python: RLIMIT_AS (4 x 128 MB, at least 1 GB) makes the allocation fail.
    let py = start_with(
        &exec,
        "python:3.11",
        128,
        "def main(a):\n    b = bytearray(2 * 1024 * 1024 * 1024)\n    return {'size': len(b)}\n",
        Map::new(),
    )
    .await;
    let out = run(&py, json!({}), Duration::from_secs(20)).await;
    if exec.enforcement().rlimits {
        assert!(!out.response.is_success(), "{:?}", out.response);
    }
    py.destroy().await.unwrap();

    // Node.js: the memory cgroup (128 MB) kills it.
    if !exec.enforcement().memory_cgroup {
        eprintln!("no memory cgroup here: Node.js memory is not limited; skipping");
        return;
    }
    let node = start_with(
        &exec,
        "nodejs:20",
        128,
        "function main() { const keep = []; \
         for (let i = 0; i < 2048; i++) keep.push(Buffer.alloc(1 << 20, 1)); \
         return {allocated: keep.length}; }",
        Map::new(),
    )
    .await;
    let pid = node
        .id()
        .rsplit('-')
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let memcg = cgroup_dir(pid, "memory").expect("in a memory cgroup");
    let workdir = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    let out = run(&node, json!({}), Duration::from_secs(20)).await;
    assert!(out.container_failed, "{:?}", out.response);
    assert_eq!(
        out.response.result.as_ref().unwrap()["error"],
        "The action did not produce a valid response and exited unexpectedly."
    );
    let logs = node.logs(false, Duration::from_millis(100)).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message == "The action exhausted its memory and was aborted."),
        "{logs:?}"
    );
    node.destroy().await.unwrap();
    assert!(!memcg.exists(), "cgroup {} removed", memcg.display());
    assert!(!workdir.exists(), "directory {} removed", workdir.display());
    executor_is_healthy(&exec).await;
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_cleaned_up() {
    let exec = ProcessExecutor::new().unwrap();
    if !exec.enforcement().pids_cgroup {
        eprintln!("no pids cgroup here: fork bombs are not contained; skipping");
        return;
    }
    // Bounded, in case the limit fails: at most 500 children, each exits after 60 s. (With
    // 256 MB, 250 Python children's copied pages fill the memory cgroup and the action
    // thrashes until its timeout: contained too, but slow; 512 MB lets it finish.)
    let c = start_with(
        &exec,
        "python:3.11",
        512,
        "import os, time\n\
         def main(a):\n    kids, failed = [], None\n    for i in range(500):\n        \
         try:\n            pid = os.fork()\n        except OSError as e:\n            \
         failed = str(e)\n            break\n        if pid == 0:\n            \
         time.sleep(60)\n            os._exit(0)\n        kids.append(pid)\n    \
         return {'kids': kids, 'failed': failed, 'ns': os.readlink('/proc/self/ns/pid')}\n",
        Map::new(),
    )
    .await;
    let r = result(&c, json!({})).await;
    let ns = r["ns"].as_str().unwrap();
    let kids: Vec<u64> = r["kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| host_pid(&format!("{ns} {k}")).expect("a running child") as u64)
        .collect();
    assert!(
        kids.len() < whisk_exec::isolation::PIDS_MAX as usize,
        "{} children",
        kids.len()
    );
    assert!(
        r["failed"]
            .as_str()
            .is_some_and(|e| e.contains("Resource temporarily unavailable")),
        "{r}"
    );
    c.destroy().await.unwrap();
    for kid in kids {
        assert!(dies(kid, Duration::from_secs(3)).await, "child {kid} gone");
    }
    executor_is_healthy(&exec).await;
}

#[tokio::test]
async fn an_action_that_closes_its_stdout_still_ends_its_activation() {
    let exec = ProcessExecutor::new().unwrap();
    for (kind, code) in [
        (
            "nodejs:20",
            "function main() { console.log('before'); require('fs').closeSync(1); \
             console.error('after'); return {closed: true}; }",
        ),
        (
            "python:3.11",
            "import os, sys\ndef main(a):\n    print('before', flush=True)\n    os.close(1)\n    \
             print('after', file=sys.stderr)\n    return {'closed': True}\n",
        ),
    ] {
        let c = start(&exec, kind, code).await;
        let _ = c.logs(true, Duration::from_millis(200)).await;
        let out = run(&c, json!({}), Duration::from_secs(5)).await;
        // The collection ends within its bounded wait (at the stderr sentinel when stdout's
        // end of file is seen; under the bwrap sandbox, whose monitor keeps a copy of the
        // pipe, when the wait runs out) with the lines written before the close.
        let logs = c
            .logs(!out.container_failed, Duration::from_secs(3))
            .await
            .unwrap();
        let msgs: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        assert!(msgs.contains(&"before"), "{kind}: {msgs:?}");
        // Either the result, or (if the runtime broke) an OpenWhisk error record.
        let r = out.response.result.clone().unwrap_or_default();
        assert!(
            r == json!({"closed": true}) || r["error"].is_string(),
            "{kind}: {:?}",
            out.response
        );
        c.destroy().await.unwrap();
    }
    executor_is_healthy(&exec).await;
}

#[tokio::test]
async fn an_abandoned_start_leaves_nothing_behind() {
    // A launcher that never announces a port; its process is found by its unique sleep time
    // (the sandbox's private /tmp keeps it from writing notes to the host).
    let marker = format!("1000.{}{}", std::process::id(), uuid_like().len());
    let script = format!("exec sleep {marker}");
    let exec = ProcessExecutor::new().unwrap().with_launcher(
        "silent:1",
        whisk_exec::Launcher::new("sh", &["-c", &script]),
    );
    let silent = spec("silent:1", 128);
    let find = || {
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmd == format!("sleep\0{marker}\0").into_bytes()).then_some(pid)
        })
    };
    let create = exec.create(&silent);
    let watch = async {
        loop {
            if let Some(pid) = find() {
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
                return (pid, cwd.to_string_lossy().to_string());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (pid, dir) = tokio::select! {
        found = watch => found,
        _ = create => panic!("it never announces a port"),
    };
    // Dropping the `create` future (the select! above did) abandons the start.
    let pid = pid.to_string();
    assert!(dies(pid.parse().unwrap(), Duration::from_secs(3)).await);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&dir).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!Path::new(&dir).exists(), "{dir} removed");
}

#[tokio::test]
async fn containers_see_only_their_own_files_through_the_sandbox() {
    if !whisk_exec::isolation::enforcement().filesystem {
        // .ci/run installs bubblewrap, so CI always runs this test; elsewhere say why not.
        eprintln!("bwrap not usable here: file-system isolation not enforced, test skipped");
        assert!(std::env::var_os("CI").is_none(), "CI must have bwrap");
        return;
    }
    let secret_dir = std::env::temp_dir().join(format!("whisk-platform-data-{}", uuid_like()));
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secret.txt"), "platform data").unwrap();
    let exec = ProcessExecutor::new().unwrap().with_hidden(&secret_dir);
    let code = "const fs = require('fs'); \
        const tryRead = p => { try { return fs.readFileSync(p, 'utf8'); } catch (e) { return e.code; } }; \
        const tryWrite = p => { try { fs.writeFileSync(p, 'x'); return 'written'; } catch (e) { return e.code; } }; \
        function main(p) { fs.writeFileSync('mine.txt', 'mine'); \
          return {cwd: process.cwd(), own: tryRead('mine.txt'), other: p.other ? tryRead(p.other) : null, \
                  secret: tryRead(p.secret), etc: tryWrite('/etc/whisk-test'), tmp: tryWrite('/tmp/whisk-test')}; }";
    let a = start(&exec, "nodejs:20", code).await;
    let b = start(&exec, "nodejs:20", code).await;
    let secret = secret_dir.join("secret.txt").to_string_lossy().to_string();
    let ra = result(&a, json!({"secret": secret})).await;
    assert_eq!(ra["own"], "mine", "a container writes its own directory");
    assert_eq!(ra["secret"], "ENOENT", "hidden paths are invisible");
    assert_eq!(ra["etc"], "EROFS", "the root file system is read-only");
    assert_eq!(
        ra["tmp"], "EROFS",
        "/tmp is read-only too (TMPDIR is the container's directory)"
    );
    let other = format!("{}/mine.txt", ra["cwd"].as_str().unwrap());
    let rb = result(&b, json!({"secret": secret, "other": other})).await;
    assert_eq!(
        rb["other"], "ENOENT",
        "another container's files are invisible"
    );
    a.destroy().await.unwrap();
    b.destroy().await.unwrap();
    std::fs::remove_dir_all(&secret_dir).unwrap();
}
