//! For the workspace's tests: a Qdrant cluster of real server processes on loopback, from the
//! binary in `../shared/bin` (`cabildo_core::fixtures::shared("bin/qdrant")`). Each node has
//! its own folder, free ports and a log; a node can be killed with SIGKILL and restarted from
//! its own storage, as when a machine is lost and comes back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// One Qdrant server process of a cluster.
pub struct QdrantNode {
    bin: PathBuf,
    dir: PathBuf,
    /// REST port.
    pub http: u16,
    /// gRPC port (what [`crate::QdrantStore`] connects to).
    pub grpc: u16,
    /// Peer-to-peer port.
    pub p2p: u16,
    child: Option<Child>,
}

impl QdrantNode {
    /// A node that will keep its storage and log in `dir`; not started yet.
    pub fn new(bin: &Path, dir: PathBuf) -> QdrantNode {
        std::fs::create_dir_all(&dir).expect("node folder");
        QdrantNode {
            bin: bin.to_path_buf(),
            dir,
            http: free_port(),
            grpc: free_port(),
            p2p: free_port(),
            child: None,
        }
    }

    /// Starts the server and waits until it is ready; a node without a `bootstrap` peer
    /// founds the cluster (or, on a restart, rejoins it from its own stored state).
    pub fn start(&mut self, bootstrap: Option<u16>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("log");
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(&self.dir)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc.to_string())
            .env("QDRANT__CLUSTER__ENABLED", "true")
            .env("QDRANT__CLUSTER__P2P__PORT", self.p2p.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", self.dir.join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                self.dir.join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .args(["--uri", &format!("http://127.0.0.1:{}", self.p2p)])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        if let Some(peer) = bootstrap {
            cmd.args(["--bootstrap", &format!("http://127.0.0.1:{peer}")]);
        }
        self.child = Some(cmd.spawn().expect("start qdrant"));
        let http = self.http;
        wait_for(&format!("node on {http} ready"), || {
            get(http, "/readyz").is_some()
        });
    }

    /// SIGKILL: no shutdown, as when a machine is lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill");
            c.wait().expect("reap");
        }
    }

    /// The gRPC address, as `[vectors] qdrant_url` takes it.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }
}

impl Drop for QdrantNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Nodes of one cluster; the first founded it, the others joined through it.
pub struct QdrantCluster {
    /// The nodes, in the order they started.
    pub nodes: Vec<QdrantNode>,
}

impl QdrantCluster {
    /// Starts `n` nodes of the binary `bin`, each in a folder under `dir`, and waits until
    /// the first one sees all of them as peers.
    pub fn start(bin: &Path, dir: &Path, n: usize) -> QdrantCluster {
        let mut nodes: Vec<QdrantNode> = (1..=n)
            .map(|i| QdrantNode::new(bin, dir.join(format!("node{i}"))))
            .collect();
        nodes[0].start(None);
        let founder = nodes[0].p2p;
        for node in &mut nodes[1..] {
            node.start(Some(founder));
        }
        let http = nodes[0].http;
        wait_for(&format!("{n} peers"), || {
            get(http, "/cluster").and_then(|c| c["result"]["peers"].as_object().map(|p| p.len()))
                == Some(n)
        });
        QdrantCluster { nodes }
    }

    /// The states of every copy of every shard of `collection`, as the first node sees them.
    pub fn replica_states(&self, collection: &str) -> Vec<String> {
        let Some(info) = get(
            self.nodes[0].http,
            &format!("/collections/{collection}/cluster"),
        ) else {
            return Vec::new();
        };
        let r = &info["result"];
        ["local_shards", "remote_shards"]
            .iter()
            .flat_map(|k| r[k].as_array().cloned().unwrap_or_default())
            .map(|s| s["state"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// Points held by the copies of `collection`'s shards on the node whose REST port is `port`.
pub fn local_points(port: u16, collection: &str) -> u64 {
    get(port, &format!("/collections/{collection}/cluster"))
        .and_then(|i| i["result"]["local_shards"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| s["points_count"].as_u64().unwrap_or(0))
        .sum()
}

/// `GET path` on a node's REST port: the JSON body of a 200, else `None`.
pub fn get(port: u16, path: &str) -> Option<Value> {
    let mut r = ureq::get(format!("http://127.0.0.1:{port}{path}"))
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()?;
    let body = r.body_mut().read_to_string().ok()?;
    Some(serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Polls `ok` every 100 ms for up to 90 s; the time it took. Panics on timeout.
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if ok() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}
