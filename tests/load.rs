//! A background write load for tests: writers spread over members write unique keys and keep
//! every acknowledged write, to check later that none was lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_store::client::Credentials;
use skiff_store::pb::kv::TxnRequest;

use crate::kv::put_op;

pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub acked: Arc<Mutex<BTreeMap<String, (String, Instant)>>>,
}

impl Writers {
    /// Starts `n` writers over these member addresses, writing keys under `prefix`.
    pub fn start(creds: &Credentials, addrs: &[String], n: usize, prefix: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let mut handles = Vec::new();
        for w in 0..n {
            let clients: Vec<_> = addrs.iter().filter_map(|a| creds.kv(a).ok()).collect();
            let (stop, acked, prefix) = (stop.clone(), acked.clone(), prefix.to_string());
            handles.push(tokio::spawn(async move {
                let mut target = w % clients.len().max(1);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) && !clients.is_empty() {
                    let key = format!("{prefix}{w:02}/{seq:08}");
                    let value = format!("{w}-{seq}");
                    let mut req = tonic::Request::new(TxnRequest {
                        success: vec![put_op(&key, &value)],
                        ..Default::default()
                    });
                    req.set_timeout(Duration::from_secs(3));
                    let mut client = clients[target].clone();
                    match client.txn(req).await {
                        Ok(_) => {
                            if let Ok(mut a) = acked.lock() {
                                a.insert(key, (value, Instant::now()));
                            }
                        }
                        Err(_) => {
                            target = (target + 1) % clients.len();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    seq += 1;
                }
            }));
        }
        Writers {
            stop,
            handles,
            acked,
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Number of writes acknowledged after `t`.
    pub fn acked_since(&self, t: Instant) -> usize {
        self.acked
            .lock()
            .map(|a| a.values().filter(|(_, at)| *at > t).count())
            .unwrap_or(0)
    }

    /// Stops the writers and returns every acknowledged (key, value).
    pub async fn stop(self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        self.acked
            .lock()
            .map(|a| a.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

/// Acknowledged writes missing or different in `found`.
pub fn missing(
    acked: &BTreeMap<String, String>,
    found: &[skiff_store::pb::kv::KeyValue],
) -> Vec<String> {
    let present: BTreeMap<String, String> = found
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    acked
        .iter()
        .filter(|(k, v)| present.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}
