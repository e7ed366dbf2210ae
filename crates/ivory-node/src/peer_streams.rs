//! What the streams between two nodes share (`Replicate`: crates/ivory-node/src/replication.rs,
//! `Forward`: crates/ivory-node/src/forwarding.rs): one long-lived stream per peer address,
//! opened by one caller at a time and again after it failed; the peers that answered it as
//! unimplemented (builds before it), which are then spoken to the old way; and frames cut from
//! whatever messages are ready.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

/// Messages one frame carries at most: bounds a frame's size (an AppendEntries or a forwarded
/// batch holds up to a bulk request's commands) and the wait of the first message for the last.
const FRAME_MESSAGES_MAX: usize = 64;
/// Messages queued for a stream's writer at most.
pub(crate) const OUTBOUND_QUEUE: usize = 4096;

/// The messages of `queue` as frames: each takes what is ready, up to [`FRAME_MESSAGES_MAX`],
/// after one turn for the tasks woken with the sender of the first (a flush round completes
/// several groups' appends at once) to queue theirs. `metric` records messages per frame.
pub(crate) fn coalesced<M: Send + 'static, F: Send + 'static>(
    queue: mpsc::Receiver<M>,
    metric: &'static str,
    frame: fn(Vec<M>) -> F,
) -> impl Stream<Item = F> + Send + 'static {
    futures::stream::unfold(queue, move |mut queue| async move {
        let first = queue.recv().await?;
        tokio::task::yield_now().await;
        let mut messages = vec![first];
        while messages.len() < FRAME_MESSAGES_MAX {
            match queue.try_recv() {
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
        metrics::histogram!(metric).record(messages.len() as f64);
        Some((frame(messages), queue))
    })
}

/// The sending side of one open stream.
pub(crate) trait PeerLink: Send + Sync + 'static {
    /// What the peer answers on the stream.
    type Frame: Send + 'static;
    /// False once the stream failed or ended: the next caller opens another.
    fn is_open(&self) -> bool;
    /// Hands one frame's answers to whoever waits for them.
    fn deliver(&self, frame: Self::Frame);
    /// Closes the link after its stream failed or ended (`why`), failing whatever still waits.
    fn close(&self, why: &str);
}

/// A peer's link, if any; its lock is held while one is opened.
type Slot<L> = Arc<tokio::sync::Mutex<Option<Arc<L>>>>;

/// The open streams of one rpc to every peer, and the peers without it.
pub(crate) struct PeerStreams<L> {
    /// The rpc, and what is done instead for a peer without it (for the log).
    rpc: &'static str,
    instead: &'static str,
    slots: Mutex<HashMap<String, Slot<L>>>,
    unsupported: Mutex<HashSet<String>>,
    opened: AtomicU64,
}

impl<L: PeerLink> PeerStreams<L> {
    pub fn new(rpc: &'static str, instead: &'static str) -> PeerStreams<L> {
        PeerStreams {
            rpc,
            instead,
            slots: Mutex::default(),
            unsupported: Mutex::default(),
            opened: AtomicU64::new(0),
        }
    }

    /// Whether `addr` answered the rpc as unimplemented.
    pub fn unsupported(&self, addr: &str) -> bool {
        self.unsupported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    /// Streams opened since start (for tests).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Notes `addr` as a peer without the rpc when `status` says so: a tonic server answers
    /// `Unimplemented` when the stream opens, a server without the route HTTP 404 (which tonic
    /// maps to the same) when it is first read.
    pub fn note(&self, addr: &str, status: &tonic::Status) {
        if status.code() == tonic::Code::Unimplemented
            && self
                .unsupported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(addr.to_string())
        {
            tracing::info!(peer = addr, "the peer has no {}: {}", self.rpc, self.instead);
        }
    }

    /// Reads `link`'s answers off `inbound` until the stream ends, then closes the link; a peer
    /// that answers the rpc as unimplemented on the first read is noted.
    pub fn read_answers<S>(self: &Arc<Self>, addr: &str, link: &Arc<L>, mut inbound: S)
    where
        S: Stream<Item = Result<L::Frame, tonic::Status>> + Send + Unpin + 'static,
    {
        let (streams, addr, link) = (self.clone(), addr.to_string(), Arc::downgrade(link));
        tokio::spawn(async move {
            let why = loop {
                match inbound.next().await {
                    Some(Ok(frame)) => match link.upgrade() {
                        Some(link) => link.deliver(frame),
                        // The link is dropped (replaced after a failure): nothing waits on it.
                        None => return,
                    },
                    Some(Err(status)) => {
                        streams.note(&addr, &status);
                        break status.to_string();
                    }
                    None => break format!("the {} stream to {addr} ended", streams.rpc),
                }
            };
            if let Some(link) = link.upgrade() {
                link.close(&why);
            }
        });
    }

    /// The open link to `addr`, or the one `open` makes when there is none: one open at a time
    /// per peer, so the callers that start together share one stream.
    pub async fn link<Open, Opened>(&self, addr: &str, open: Open) -> Result<Arc<L>, tonic::Status>
    where
        Open: FnOnce() -> Opened,
        Opened: Future<Output = Result<Arc<L>, tonic::Status>>,
    {
        // Every forwarded call passes here: no allocation once the peer has a slot.
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(addr) {
                Some(slot) => slot.clone(),
                None => slots.entry(addr.to_string()).or_default().clone(),
            }
        };
        let mut slot = slot.lock().await;
        if let Some(link) = slot.as_ref().filter(|link| link.is_open()) {
            return Ok(link.clone());
        }
        match open().await {
            Ok(link) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                *slot = Some(link.clone());
                Ok(link)
            }
            Err(status) => {
                self.note(addr, &status);
                Err(status)
            }
        }
    }
}
