//! Connecting to a port on a pod's localhost: a short-lived thread enters the pod's network
//! namespace (`/proc/<pid>/ns/net` of its sandbox), connects, and hands the socket back; the
//! socket stays in the pod's namespace, the thread (and its namespace switch) ends. This is how
//! the kubelet's port-forward reaches services bound to 127.0.0.1 inside the pod.

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::Duration;

use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `127.0.0.1:port` inside the network namespace of process `pid`.
pub async fn connect_in_pod(pid: i64, port: u16) -> Result<TcpStream, String> {
    let path = format!("/proc/{pid}/ns/net");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || {
            let result = (|| {
                let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("entering the pod's network namespace: {e}"))?;
                let address = SocketAddr::from(([127, 0, 0, 1], port));
                let stream = StdTcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
                    .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))?;
                stream.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok::<_, String>(stream)
            })();
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(format!("spawning the namespace thread: {e}"));
    }
    let stream = rx
        .await
        .map_err(|_| "the namespace thread died".to_string())??;
    TcpStream::from_std(stream).map_err(|e| e.to_string())
}

/// Connects to a port on the host's own loopback (host-network pods).
pub async fn connect_on_host(port: u16) -> Result<TcpStream, String> {
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| format!("dial tcp4 127.0.0.1:{port}: i/o timeout"))?
        .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))
}
