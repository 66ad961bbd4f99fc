//! A runtime-manifest entry with a `launcher` command starts an external runtime proxy on a
//! port the executor assigns (as OpenWhisk's own proxies would run outside Docker).

use serde_json::{json, Map};
use std::time::Duration;
use whisk_core::entity::RuntimeManifest;
use whisk_core::executor::{ContainerExecutor, ContainerSpec};
use whisk_core::runtime::{init_body, ActivationContext, RuntimeClient};
use whisk_exec::ProcessExecutor;

/// A tiny runtime proxy that is not one of whisk's launchers: it listens on the port given as
/// its argument, prints nothing at start, and answers /init and /run (echoing its argument).
const PROXY: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out = {"ok": True} if self.path == "/init" else {"echo": body["value"], "proxy": "external"}
        if self.path == "/run":
            print("external proxy ran", flush=True)
            for s in (sys.stdout, sys.stderr):
                print("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX", file=s, flush=True)
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[tokio::test]
async fn manifest_launcher_commands_run_external_proxies() {
    // Outside /tmp: the sandbox gives containers a private /tmp.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("whisk-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("proxy.py");
    std::fs::write(&script, PROXY).unwrap();
    let manifest = RuntimeManifest::from_json(
        &json!({"runtimes": {"custom": [{
            "kind": "custom:1", "default": true, "image": {"name": "custom"},
            "launcher": ["python3", script.to_string_lossy(), "{port}"]
        }]}})
        .to_string(),
    )
    .unwrap();
    let exec = ProcessExecutor::new().unwrap().with_manifest(&manifest);
    assert!(exec.supports("custom:1"));
    let spec = ContainerSpec {
        name: "ext".into(),
        kind: "custom:1".into(),
        image: None,
        memory_mb: 256,
        env: vec![],
        host_network: false,
    };
    let c = exec.create(&spec).await.expect("the external proxy starts");
    let client = RuntimeClient::default();
    let init = client
        .init(
            c.endpoint(),
            &init_body("x", None, Some("code"), false, Map::new()),
            Duration::from_secs(10),
        )
        .await;
    assert!(init.response.is_success(), "{:?}", init.response);
    let ctx = ActivationContext {
        api_key: None,
        namespace: "guest".into(),
        action_name: "/guest/x".into(),
        action_version: "0.0.1".into(),
        activation_id: "0".repeat(32),
        transaction_id: "t".into(),
        deadline_ms: u64::MAX / 2,
    };
    let run = client
        .run(
            c.endpoint(),
            &ctx.run_body(json!({"a": 1})),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        run.response.result,
        Some(json!({"echo": {"a": 1}, "proxy": "external"}))
    );
    let logs = c.logs(true, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["external proxy ran"]
    );
    c.destroy().await.unwrap();

    // A proxy command that exits before listening fails the start cleanly.
    let broken = RuntimeManifest::from_json(
        &json!({"runtimes": {"custom": [{"kind": "custom:1", "image": {"name": "c"},
            "launcher": ["sh", "-c", "echo no proxy here >&2; exit 1"]}]}})
        .to_string(),
    )
    .unwrap();
    let exec = ProcessExecutor::new().unwrap().with_manifest(&broken);
    assert!(exec.create(&spec).await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
