//! Watches: replay history from a revision, then live events, with progress notifications.
//!
//! Apply publishes each batch's events to the [`Hub`] after they are durable; the hub hands
//! every watcher with an event in its key range the revision's events as one shared
//! `Arc<[Event]>` through a bounded queue and never waits: a watcher whose queue is full is
//! cancelled (it must re-watch from its last revision), so a slow consumer can never stall
//! apply. Publishing costs one reference count per interested watcher under the hub's lock;
//! each watcher's own task picks out (and copies) the events in its range. A watch registers
//! with the hub *before* reading history up to the hub's last revision H, then forwards live
//! events (all > H): no gap, no duplicate. Replays decode only the key of each history record
//! to filter it, and the whole event only when it is in range. Events of one revision always
//! travel in one [`WatchResponse`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::apply::ReadView;
use crate::db::{Db, View};
use crate::types::{Event, RangeEnd};

#[cfg(test)]
mod tests;

/// What a watcher receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// The watcher has seen every event in its range up to this revision.
    pub revision: u64,
    /// Events in revision order; empty for a progress notification.
    pub events: Vec<Event>,
    /// True for a progress notification (a bookmark).
    pub progress: bool,
}

/// Why a watch ended. All are retryable by re-watching (from the last revision seen, or after a
/// relist for `Compacted`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("required revision has been compacted (compact revision {compact_revision})")]
    Compacted { compact_revision: u64 },
    #[error("watch canceled: {0}")]
    Canceled(String),
    #[error("reading history failed: {0}")]
    Storage(String),
}

enum HubMsg {
    /// Every event of one revision (not only the watcher's), shared by all watchers.
    Events(u64, Arc<[Event]>),
    Reset(String),
}

struct Slot {
    start: Vec<u8>,
    end: RangeEnd,
    tx: mpsc::Sender<HubMsg>,
    overflowed: Arc<AtomicBool>,
}

struct HubInner {
    slots: Vec<Slot>,
}

/// The fan-out point between apply and watchers; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Mutex<HubInner>>,
    /// The last revision whose events were handed to every watcher.
    published: Arc<AtomicU64>,
    queue_len: usize,
}

impl Hub {
    pub fn new(current_revision: u64, queue_len: usize) -> Self {
        Hub {
            inner: Arc::new(Mutex::new(HubInner { slots: Vec::new() })),
            published: Arc::new(AtomicU64::new(current_revision)),
            queue_len: queue_len.max(16),
        }
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    pub fn watcher_count(&self) -> usize {
        self.inner.lock().map(|i| i.slots.len()).unwrap_or(0)
    }

    /// Hands a batch of durable events (grouped by revision, ascending) to the watchers.
    pub fn publish(&self, batches: Vec<(u64, Vec<Event>)>, revision: u64) {
        let batches: Vec<(u64, Arc<[Event]>)> = batches
            .into_iter()
            .map(|(rev, events)| (rev, Arc::from(events)))
            .collect();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (rev, events) in &batches {
            inner.slots.retain(|slot| {
                if !events
                    .iter()
                    .any(|e| slot.end.contains(&slot.start, &e.kv.key))
                {
                    return !slot.tx.is_closed();
                }
                match slot.tx.try_send(HubMsg::Events(*rev, events.clone())) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.overflowed.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
        self.published.fetch_max(revision, Ordering::AcqRel);
    }

    /// Cancels every watcher (the state machine was replaced by a snapshot).
    pub fn reset(&self, revision: u64, reason: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            for slot in inner.slots.drain(..) {
                let _ = slot.tx.try_send(HubMsg::Reset(reason.to_string()));
            }
        }
        self.published.store(revision, Ordering::Release);
    }

    fn register(
        &self,
        start: Vec<u8>,
        end: RangeEnd,
    ) -> (mpsc::Receiver<HubMsg>, Arc<AtomicBool>, u64) {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut inner = match self.inner.lock() {
            Ok(i) => i,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Read under the lock: every later publish is > this revision and reaches the slot.
        let registered_at = self.published.load(Ordering::Acquire);
        inner.slots.push(Slot {
            start,
            end,
            tx,
            overflowed: overflowed.clone(),
        });
        (rx, overflowed, registered_at)
    }
}

/// A watch request.
#[derive(Clone, Debug)]
pub struct Request {
    pub start: Vec<u8>,
    pub end: RangeEnd,
    /// First revision wanted; 0 = only changes after now.
    pub start_revision: u64,
    pub prev_kv: bool,
    /// Send a progress notification every this long, events or not (None: only on demand).
    pub progress_interval: Option<Duration>,
}

/// The consumer's end of a watch. Dropping it ends the watch.
pub struct Watcher {
    pub responses: mpsc::Receiver<Result<WatchResponse, Error>>,
    progress_tx: mpsc::Sender<()>,
}

impl Watcher {
    /// Asks for a progress notification (answered in order with events).
    pub fn request_progress(&self) {
        let _ = self.progress_tx.try_send(());
    }

    pub async fn next(&mut self) -> Option<Result<WatchResponse, Error>> {
        self.responses.recv().await
    }

    /// A handle that can request progress while `next` is being awaited elsewhere.
    pub fn progress_handle(&self) -> mpsc::Sender<()> {
        self.progress_tx.clone()
    }
}

/// Starts a watch: replays history from the requested revision, then follows live events.
pub fn start(db: Db, hub: &Hub, request: Request, out_len: usize) -> Watcher {
    let (rx, overflowed, registered_at) = hub.register(request.start.clone(), request.end.clone());
    let (out_tx, out_rx) = mpsc::channel(out_len.max(1));
    let (progress_tx, progress_rx) = mpsc::channel(4);
    let published = hub.published.clone();
    tokio::spawn(run(
        db,
        request,
        rx,
        overflowed,
        registered_at,
        published,
        out_tx,
        progress_rx,
    ));
    Watcher {
        responses: out_rx,
        progress_tx,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    db: Db,
    request: Request,
    mut rx: mpsc::Receiver<HubMsg>,
    overflowed: Arc<AtomicBool>,
    registered_at: u64,
    published: Arc<AtomicU64>,
    out: mpsc::Sender<Result<WatchResponse, Error>>,
    mut progress_rx: mpsc::Receiver<()>,
) {
    let mut last_sent = registered_at;
    let start_revision = if request.start_revision == 0 {
        registered_at + 1
    } else {
        request.start_revision
    };
    if start_revision <= registered_at {
        // The replay streams: revisions are sent as they are read, so the first arrives at once
        // however long the history is, and memory stays bounded by the queue, not the history.
        let (batch_tx, mut batches) = mpsc::channel::<(u64, Vec<Event>)>(REPLAY_QUEUE);
        let reader = {
            let db = db.clone();
            let request = request.clone();
            tokio::task::spawn_blocking(move || {
                replay(
                    &db,
                    &request,
                    start_revision,
                    registered_at,
                    |rev, events| batch_tx.blocking_send((rev, events)).is_ok(),
                )
            })
        };
        while let Some((rev, events)) = batches.recv().await {
            let resp = WatchResponse {
                revision: rev,
                events: strip(events, request.prev_kv),
                progress: false,
            };
            if out.send(Ok(resp)).await.is_err() {
                // Dropping `batches` stops the reader at its next revision.
                return;
            }
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = out.send(Err(e)).await;
                return;
            }
            Err(join) => {
                let _ = out.send(Err(Error::Storage(join.to_string()))).await;
                return;
            }
        }
    } else if start_revision > registered_at + 1 {
        // Watching from a future revision: events up to it are skipped below.
        last_sent = registered_at;
    }
    let skip_until = start_revision.saturating_sub(1);
    // Periodic, whether or not events flow (as Kubernetes' watch cache sends bookmarks): a
    // watcher that only ever sees events still learns, every interval, a revision it may
    // resume from.
    let interval = request
        .progress_interval
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            asked = progress_rx.recv() => {
                if asked.is_none() { return; }
                if !send_progress(&mut rx, &published, &mut last_sent, &out, &request, skip_until).await { return; }
                continue;
            }
            _ = ticks.tick() => {
                if !send_progress(&mut rx, &published, &mut last_sent, &out, &request, skip_until).await { return; }
                continue;
            }
        };
        match msg {
            Some(HubMsg::Events(rev, events)) => {
                if rev <= skip_until {
                    continue;
                }
                last_sent = rev;
                let resp = WatchResponse {
                    revision: rev,
                    events: in_range(&events, &request),
                    progress: false,
                };
                if out.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            Some(HubMsg::Reset(reason)) => {
                let _ = out.send(Err(Error::Canceled(reason))).await;
                return;
            }
            None => {
                let reason = if overflowed.load(Ordering::Acquire) {
                    "the watcher fell too far behind; watch again from the last revision received"
                } else {
                    "the store is shutting down"
                };
                let _ = out.send(Err(Error::Canceled(reason.into()))).await;
                return;
            }
        }
    }
}

/// Sends a progress notification whose revision covers every event queued before it.
async fn send_progress(
    rx: &mut mpsc::Receiver<HubMsg>,
    published: &AtomicU64,
    last_sent: &mut u64,
    out: &mpsc::Sender<Result<WatchResponse, Error>>,
    request: &Request,
    skip_until: u64,
) -> bool {
    let covered = published.load(Ordering::Acquire);
    while let Ok(msg) = rx.try_recv() {
        match msg {
            HubMsg::Events(rev, events) => {
                if rev <= skip_until {
                    continue;
                }
                *last_sent = rev;
                let resp = WatchResponse {
                    revision: rev,
                    events: in_range(&events, request),
                    progress: false,
                };
                if out.send(Ok(resp)).await.is_err() {
                    return false;
                }
            }
            HubMsg::Reset(reason) => {
                let _ = out.send(Err(Error::Canceled(reason))).await;
                return false;
            }
        }
    }
    let revision = covered.max(*last_sent).max(skip_until);
    out.send(Ok(WatchResponse {
        revision,
        events: Vec::new(),
        progress: true,
    }))
    .await
    .is_ok()
}

/// The events of a published revision that fall in the request's range (the hub sent the
/// revision because at least one does), without `prev_kv` unless asked for.
fn in_range(events: &[Event], request: &Request) -> Vec<Event> {
    events
        .iter()
        .filter(|e| request.end.contains(&request.start, &e.kv.key))
        .map(|e| Event {
            kind: e.kind,
            kv: e.kv.clone(),
            prev_kv: if request.prev_kv {
                e.prev_kv.clone()
            } else {
                None
            },
        })
        .collect()
}

fn strip(mut events: Vec<Event>, prev_kv: bool) -> Vec<Event> {
    if !prev_kv {
        for e in &mut events {
            e.prev_kv = None;
        }
    }
    events
}

/// Revisions a replay reads ahead of what the watcher has taken.
const REPLAY_QUEUE: usize = 64;

/// History in `[from, to]` for the request's range, one revision at a time and in order, read
/// from one consistent view and handed to `emit` as it is read; `emit` returning false stops the
/// reading. Fails with `Compacted` if `from` is before the compaction point.
fn replay(
    db: &Db,
    request: &Request,
    from: u64,
    to: u64,
    mut emit: impl FnMut(u64, Vec<Event>) -> bool,
) -> Result<(), Error> {
    let view = View::snapshot(db);
    let counters = view.counters().map_err(|e| Error::Storage(e.to_string()))?;
    if from < counters.compact_revision {
        return Err(Error::Compacted {
            compact_revision: counters.compact_revision,
        });
    }
    if request.end == RangeEnd::Single {
        // One key that exists and last changed before `from` has no event in the history
        // after it (the view holds every revision up to `to` and maybe later): skip the scan.
        // This is the watch of one object from its own resourceVersion (`kubectl wait`).
        let current = view
            .get(&request.start)
            .map_err(|e| Error::Storage(e.to_string()))?;
        if current.is_some_and(|record| record.mod_revision < from) {
            return Ok(());
        }
    }
    let mut pending: Option<(u64, Vec<Event>)> = None;
    let mut open = true;
    view.history_in_range(
        from,
        to,
        |key| request.end.contains(&request.start, key),
        |rev, event| {
            match &mut pending {
                Some((r, events)) if *r == rev => events.push(event),
                _ => {
                    if let Some((r, events)) = pending.replace((rev, vec![event])) {
                        open = emit(r, events);
                    }
                }
            }
            Ok(open)
        },
    )
    .map_err(|e| Error::Storage(e.to_string()))?;
    if open && let Some((r, events)) = pending {
        emit(r, events);
    }
    Ok(())
}
