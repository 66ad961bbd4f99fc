//! The sandbox suite: actions on the process executor attack the platform, each other and the
//! host, and every attempt fails. Each test says which protection stops it; the README's
//! "Tests" section lists the attempts and their results. Memory and process limits are in
//! `bad_actions.rs` (`a_fork_bomb_is_stopped_by_the_process_limit`,
//! `an_action_allocating_past_its_memory_fails_and_is_removed`) and in whisk-exec's
//! `tests/isolation.rs`.
//!
//! Without bwrap (which `.ci/run` installs) these protections do not exist: the tests then
//! say so and stop, except under CI, where they fail.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::testkit::procs::{self, NODE_REF, NODE_SELF};
use whisk_examples::cluster::ExecutorChoice;

/// Whether the sandbox can be tested here (bwrap with its namespaces); under CI it must.
fn sandboxed() -> bool {
    let e = whisk_exec::isolation::enforcement();
    let all = e.filesystem && e.pid_namespace && e.network_namespace;
    if !all {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have bwrap: {e:?}"
        );
        eprintln!("bwrap or its namespaces not usable here ({e:?}): sandbox not tested");
    }
    all
}

/// Node.js helpers pasted into the attacking actions: `tryRead(path)`, `tryWrite(path)`,
/// `tryList(dir)` (the content, or the error code) and `tryConnect(host, port)` (a promise of
/// `"connected"` or the error code).
const TRY: &str = "const fs = require('fs'); const net = require('net');\n\
    const tryRead = p => { try { return fs.readFileSync(p).toString('latin1'); } catch (e) { return e.code; } };\n\
    const tryWrite = p => { try { fs.writeFileSync(p, 'x'); return 'written'; } catch (e) { return e.code; } };\n\
    const tryList = p => { try { return fs.readdirSync(p); } catch (e) { return e.code; } };\n\
    const tryConnect = (host, port) => new Promise(r => {\n\
      const s = net.connect({host, port});\n\
      s.setTimeout(5000, () => { s.destroy(); r('timeout'); });\n\
      s.on('connect', () => { s.destroy(); r('connected'); });\n\
      s.on('error', e => r(e.code));\n\
    });\n";

/// The platform's data directory (embedded store), its files and the keys passed to it by
/// environment and flag are out of reach, and so are its processes: no `/proc` entry of the
/// platform (its `environ` and `cmdline` hold the keys) is visible, and signals cannot reach
/// it, and unmounting the sandbox's mounts is refused. Protections: the sandbox hides the
/// data directory; the PID namespace hides every process but the container's own; the
/// sandbox drops every capability.
#[tokio::test]
async fn an_action_cannot_read_the_platforms_data_keys_or_processes() {
    if !sandboxed() {
        return;
    }
    let data = std::env::temp_dir().join(format!("whisk-sandbox-data-{}", std::process::id()));
    let (env_key, flag_key) = (
        procs_secret("ENVKEY"),
        procs_secret("FLAGKEY"), // as `--couchdb-password` would pass a store's password
    );
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_whisk-standalone"));
    command
        .args(["--port", "0", "--data-dir"])
        .arg(&data)
        .args(["--couchdb-password", &flag_key])
        .env("WHISK_COUCHDB_USER", &env_key);
    let (mut platform, first) = common::spawn_command(&mut command);
    let url = common::url_in(&first);
    let pid = platform.id();
    // The keys are where an action would look for them.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains(&env_key));
    assert!(String::from_utf8_lossy(&cmdline).contains(&flag_key));
    let files: Vec<String> = walk(&data);
    assert!(
        !files.is_empty(),
        "the store keeps files in {}",
        data.display()
    );

    let code = format!(
        "{TRY}function main(p) {{\n\
           const unmount = [p.data, '/proc'].map(m => {{\n\
             try {{ require('child_process').execFileSync('umount', ['-l', m], {{stdio: 'ignore'}}); return 'unmounted'; }}\n\
             catch (e) {{ return 'refused'; }} }});\n\
           const found = [];\n\
           const visible = fs.readdirSync('/proc').filter(n => /^[0-9]+$/.test(n));\n\
           for (const n of visible) for (const f of ['environ', 'cmdline']) {{\n\
             const text = tryRead(`/proc/${{n}}/${{f}}`);\n\
             for (const s of p.secrets) if (text.includes(s)) found.push(`${{n}}/${{f}}`);\n\
           }}\n\
           let signal; try {{ process.kill(p.pid, 0); signal = 'sent'; }} catch (e) {{ signal = e.code; }}\n\
           return {{unmount, found, visible: visible.length, signal,\n\
                    environ: tryRead(`/proc/${{p.pid}}/environ`), cmdline: tryRead(`/proc/${{p.pid}}/cmdline`),\n\
                    dir: tryList(p.data), files: p.files.map(tryRead)}};\n\
         }}"
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let put = http
        .put(format!("{url}/api/v1/namespaces/_/actions/spy"))
        .basic_auth(user, Some(pass))
        .json(&json!({"exec": {"kind": "nodejs:20", "code": code}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let params = json!({"pid": pid, "secrets": [env_key, flag_key], "data": data, "files": files});
    let r: Value = http
        .post(format!(
            "{url}/api/v1/namespaces/_/actions/spy?blocking=true&result=true"
        ))
        .basic_auth(user, Some(pass))
        .json(&params)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    platform.kill().unwrap();
    platform.wait().unwrap();
    std::fs::remove_dir_all(&data).unwrap();

    // Unmounting what hides the data (or the host's /proc below the fresh one) is refused.
    assert_eq!(r["unmount"], json!(["refused", "refused"]), "{r}");
    assert_eq!(r["found"], json!([]), "no visible process holds a key: {r}");
    assert_eq!(r["environ"], "ENOENT", "{r}");
    assert_eq!(r["cmdline"], "ENOENT", "{r}");
    assert_eq!(
        r["signal"], "ESRCH",
        "the platform cannot be signalled: {r}"
    );
    // bwrap's init, the launcher, and what the launcher started (node's helpers, none).
    assert!(r["visible"].as_u64().unwrap() <= 3, "{r}");
    assert_eq!(r["dir"], json!([]), "the data directory looks empty: {r}");
    let unread = vec![json!("ENOENT"); files.len()];
    assert_eq!(r["files"], json!(unread), "no store file can be read: {r}");
}

/// A fresh secret to look for.
fn procs_secret(what: &str) -> String {
    format!("WHISK_SANDBOX_{what}_{}", whisk_core::testkit::unique(""))
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    files
}

/// Two containers at once: the second cannot read or write the first's files, connect to
/// its runtime's socket, or signal its processes, nor unmount what hides them, and the first
/// keeps working. Protections: the sandbox hides other containers' directories and drops
/// every capability; the PID namespace hides their processes.
#[tokio::test]
async fn an_action_cannot_touch_another_container() {
    if !sandboxed() {
        return;
    }
    let p = Platform::start().await;
    p.action(
        "victim",
        "nodejs:20",
        &format!(
            "function main() {{ require('fs').writeFileSync('mine.txt', 'victim data');\n\
               const ownSocket = require('fs').existsSync(process.cwd() + '.sock');\n\
               return {{cwd: process.cwd(), ownSocket, me: {NODE_SELF}}}; }}"
        ),
        json!({}),
    )
    .await;
    let victim = p.invoke("victim", json!({}), "").await.body["response"]["result"].clone();
    let me = victim["me"].as_str().unwrap().to_string();
    let victim_pid = procs::host_pid(&me).expect("the victim runs");
    let dir = std::path::PathBuf::from(victim["cwd"].as_str().unwrap());
    assert!(dir.join("mine.txt").is_file());
    // Its runtime's socket lies beside its directory, out of its own sight too (so it cannot
    // be replaced by a link the platform would follow).
    let socket = dir.with_extension("sock");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(victim["ownSocket"], false, "{victim}");

    // The attacker is a Python action, in its own container.
    p.action(
        "attacker",
        "python:3.11",
        "import os, signal, socket, subprocess\n\
         def attempt(f):\n    try:\n        return f()\n    except OSError as e:\n        return type(e).__name__\n\
         def read(path):\n    with open(path) as f:\n        return f.read()\n\
         def write(path):\n    with open(path, 'w') as f:\n        f.write('attacker was here')\n    return 'written'\n\
         def connect(path):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect(path)\n    return 'connected'\n\
         def kill(pid):\n    os.kill(pid, signal.SIGKILL)\n    return 'killed'\n\
         def unmount(path):\n    done = subprocess.run(['umount', '-l', path], capture_output=True).returncode == 0\n    \
         return 'unmounted' if done else 'refused'\n\
         def main(a):\n    return {'unmount': unmount(os.path.dirname(a['dir'])),\n\
                 'read': attempt(lambda: read(a['dir'] + '/mine.txt')),\n\
                 'write': attempt(lambda: write(a['dir'] + '/theirs.txt')),\n\
                 'connect': attempt(lambda: connect(a['socket'])),\n\
                 'kill': attempt(lambda: kill(a['pid']))}\n",
        json!({}),
    )
    .await;
    let r = p
        .invoke(
            "attacker",
            json!({"dir": dir, "socket": socket, "pid": victim_pid}),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["response"]["result"],
        json!({"unmount": "refused", "read": "FileNotFoundError", "write": "FileNotFoundError",
               "connect": "FileNotFoundError", "kill": "ProcessLookupError"})
    );
    assert!(!dir.join("theirs.txt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("mine.txt")).unwrap(),
        "victim data"
    );
    // The victim's warm container is unharmed.
    let again = p.invoke("victim", json!({}), "").await.body;
    assert_eq!(again["response"]["result"]["me"], me.as_str(), "{again}");
}

/// A runtime proxy on a host TCP port (as `java:17` and external proxies run): answers
/// `/init`, and `/run` with the port it listens on.
const TCP_RUNTIME: &str = r#"
import http.server, json, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"ok": True} if self.path == "/init" else {"port": port}).encode()
        if self.path == "/run":
            for s in (sys.stdout, sys.stderr):
                print("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX", file=s, flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// Node.js, Python and blackbox actions reach no service of the host: not the platform's
/// API on loopback, not another container's runtime port, not a listener the test opens on
/// 127.0.0.1. Protection: a network namespace per container (only its own loopback).
#[tokio::test]
async fn an_action_reaches_no_host_service() {
    if !sandboxed() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("whisk-sandbox-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("tcp_runtime.py");
    std::fs::write(&script, TCP_RUNTIME).unwrap();
    let mut manifest = whisk_core::entity::RuntimeManifest::default();
    let kind = json!({"kind": "tcp:1", "default": true, "image": {"name": "tcp"},
                      "launcher": ["python3", script, "{port}"]});
    manifest
        .runtimes
        .insert("tcp".into(), vec![serde_json::from_value(kind).unwrap()]);
    let p = Platform::start_config(StandaloneConfig {
        manifest,
        prewarm: false,
        ..Default::default()
    })
    .await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    p.action("other", "tcp:1", "unused", json!({})).await;
    let other = p.invoke("other", json!({}), "").await;
    let runtime_port = other.body["response"]["result"]["port"].clone();
    assert!(runtime_port.is_u64(), "{}", other.text);
    // The other container's runtime listens on the host's loopback.
    let port = runtime_port.as_u64().unwrap() as u16;
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the runtime port is open");
    let targets = json!({
        "api": p.platform.addr.port(),
        "runtime": runtime_port,
        "listener": listener.local_addr().unwrap().port(),
    });

    let node = format!(
        "{TRY}async function main(t) {{ const out = {{}};\n\
           for (const [name, port] of Object.entries(t)) out[name] = await tryConnect('127.0.0.1', port);\n\
           return out; }}"
    );
    p.action("node", "nodejs:20", &node, json!({})).await;
    let python = "import socket\n\
        def main(t):\n    out = {}\n    for name, port in t.items():\n        \
        try:\n            socket.create_connection(('127.0.0.1', port), timeout=5).close()\n            \
        out[name] = 'connected'\n        except OSError as e:\n            out[name] = type(e).__name__\n    \
        return out\n";
    p.action("python", "python:3.11", python, json!({})).await;
    let blackbox = "#!/usr/bin/env python3\n\
        import json, os, socket, sys\n\
        results = os.fdopen(3, 'w')\n\
        for line in sys.stdin:\n    t = json.loads(line)['value']\n    out = {}\n    \
        for name, port in t.items():\n        try:\n            \
        socket.create_connection(('127.0.0.1', port), timeout=5).close()\n            \
        out[name] = 'connected'\n        except OSError as e:\n            out[name] = type(e).__name__\n    \
        results.write(json.dumps(out) + '\\n')\n    results.flush()\n";
    let r = p
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/blackbox",
            Some(
                json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton",
                                  "code": blackbox}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let refused = |e: &str| json!({"api": e, "runtime": e, "listener": e});
    for (action, expected) in [
        ("node", refused("ECONNREFUSED")),
        ("python", refused("ConnectionRefusedError")),
        ("blackbox", refused("ConnectionRefusedError")),
    ] {
        let r = p.invoke(action, targets.clone(), "").await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
        assert_eq!(r.body["response"]["result"], expected, "{action}");
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing reached the test's listener"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the host network kept (`--action-host-network`), actions reach the platform's API
/// again (and every other host service): the trade-off is the operator's choice.
#[tokio::test]
async fn with_the_host_network_kept_an_action_reaches_the_platforms_api() {
    if !sandboxed() {
        return;
    }
    let p = Platform::start_config(StandaloneConfig {
        executor: ExecutorChoice::Process { host_network: true },
        prewarm: false,
        ..Default::default()
    })
    .await;
    let code = format!(
        "{TRY}async function main() {{ const api = new URL(process.env.__OW_API_HOST);\n\
           return {{api: await tryConnect(api.hostname, Number(api.port))}}; }}"
    );
    p.action("caller", "nodejs:20", &code, json!({})).await;
    let r = p.invoke("caller", json!({}), "").await;
    assert_eq!(
        r.body["response"]["result"],
        json!({"api": "connected"}),
        "{}",
        r.text
    );
}

/// Processes an action starts to outlive its container (double fork with `setsid`, `nohup`
/// ignoring SIGHUP, one that leaves the process group and tries to move itself out of its
/// cgroups) all end when the container is destroyed (here: after the action's time limit).
/// Protections: the PID namespace (its end kills every process in it) and the cgroup kill;
/// the cgroup file system is read-only in the sandbox.
#[tokio::test]
async fn nothing_an_action_starts_outlives_its_container() {
    if !sandboxed() {
        return;
    }
    let p = Platform::start().await;
    let code = format!(
        "const {{ spawn, execFileSync }} = require('child_process'); const fs = require('fs');\n\
         {NODE_REF}\n\
         const sh = (script) => execFileSync('sh', ['-c', script]);\n\
         const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);\n\
         function main() {{\n\
           sh(\"setsid sh -c 'echo $$ > escaped-setsid; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &\");\n\
           sh(\"nohup sh -c 'trap \\\"\\\" HUP TERM; echo $$ > escaped-nohup; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &\");\n\
           spawn('sh', ['-c', 'for f in /sys/fs/cgroup/*/cgroup.procs; do echo $$ 2>/dev/null > $f && echo $f; done > moved; \
                  echo $$ > escaped-group; while :; do sleep 1; done'], {{detached: true, stdio: 'ignore'}}).unref();\n\
           for (const f of ['escaped-setsid', 'escaped-nohup', 'escaped-group']) {{\n\
             while (!(fs.existsSync(f) && fs.readFileSync(f, 'utf8').endsWith('\\n'))) sleep(10);\n\
             console.log('escaped ' + ref(fs.readFileSync(f, 'utf8').trim()));\n\
           }}\n\
           console.log('moved to ' + JSON.stringify(fs.readFileSync('moved', 'utf8')));\n\
           while (true) {{}}\n\
         }}"
    );
    p.action(
        "escape",
        "nodejs:20",
        &code,
        json!({"limits": {"timeout": 3000}}),
    )
    .await;
    let r = p.invoke("escape", json!({}), "").await;
    assert_eq!(
        r.body["response"]["result"]["error"],
        "The action exceeded its time limits of 3000 milliseconds.",
        "{}",
        r.text
    );
    let logs = p.record_logs(&r.body).await;
    let escaped: Vec<String> = logs
        .iter()
        .filter_map(|l| Some(l.split_once("stdout: escaped ")?.1.to_string()))
        .collect();
    assert_eq!(escaped.len(), 3, "{logs:?}");
    assert!(
        logs.iter().any(|l| l.ends_with("moved to \"\"")),
        "no process left its cgroups: {logs:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for process in &escaped {
        while !procs::gone(process) {
            assert!(
                Instant::now() < deadline,
                "{process} outlived its container"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
