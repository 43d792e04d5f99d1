//! `skiff bench ingress`: throughput and latency through the ingress versus straight to the
//! backend, in one run (see `skiff_ingress::bench`).
//!
//! The backend is a busybox httpd (Debian's `busybox-static`, which `ops/deps` installs) serving
//! a file of `--body-bytes`, started here on a free loopback port and stopped afterwards, as the
//! issue's target names it; `--builtin-backend` uses an in-process hyper server instead (a much
//! faster backend sharing the ingress's cores, the harder comparison), `--backend` any running
//! server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 128)]
    body_bytes: usize,
    /// Use this running HTTP backend instead of starting a busybox httpd.
    #[arg(long, conflicts_with = "builtin_backend")]
    backend: Option<SocketAddr>,
    /// Use an in-process hyper backend instead of a busybox httpd.
    #[arg(long)]
    builtin_backend: bool,
}

/// A busybox httpd in the foreground on a loopback port; killed on drop.
struct Busybox {
    child: Child,
    addr: SocketAddr,
    _root: tempfile::TempDir,
}

impl Busybox {
    fn start(body_bytes: usize) -> anyhow::Result<Busybox> {
        let root = tempfile::tempdir().context("creating the httpd's directory")?;
        std::fs::write(root.path().join("index.html"), vec![b'x'; body_bytes])
            .context("writing the httpd's page")?;
        // A free port: bound and released at once (nothing else on this host races for it
        // in the few milliseconds before httpd binds it).
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new("busybox")
            .args(["httpd", "-f", "-p", &addr.to_string(), "-h"])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context(
                "cannot run busybox: install Debian's busybox-static (ops/deps does) \
                 or pass --builtin-backend",
            )?;
        let mut busybox = Busybox {
            child,
            addr,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = busybox.child.try_wait()? {
                anyhow::bail!("busybox httpd exited at once ({status})");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "busybox httpd did not listen on {addr} within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(busybox)
    }
}

impl Drop for Busybox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut busybox = None;
    let backend = match (args.backend, args.builtin_backend) {
        (Some(addr), _) => {
            println!("backend: {addr} (given)");
            Some(addr)
        }
        (None, true) => {
            println!("backend: built-in hyper server in this process");
            None
        }
        (None, false) => {
            let started = Busybox::start(args.body_bytes)?;
            println!(
                "backend: busybox httpd on {} (one connection per request: it answers \
                 `Connection: close`)",
                started.addr
            );
            let addr = started.addr;
            busybox = Some(started);
            Some(addr)
        }
    };
    let report = skiff_ingress::bench::run(skiff_ingress::bench::Args {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration_secs),
        body_bytes: args.body_bytes,
        backend,
    })
    .await;
    drop(busybox);
    println!("{}", report?);
    Ok(())
}
