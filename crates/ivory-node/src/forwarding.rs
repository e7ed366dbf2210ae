//! Proposals forwarded to the leaders on another node, on one gRPC stream per peer (`Forward`).
//! A `Propose` call per forwarded batch cost, on the leader's side, an HTTP/2 stream, its
//! headers, the REST and gRPC routers, the cluster-secret check and a task; on 3 nodes under
//! spread that was a fifth of the cluster plane's HTTP/2 CPU. Here a frame carries every call
//! that was ready, and each call is answered by id, in any order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::NodeError;
use crate::network::{Faults, PeerChannel};
use crate::node::Node;
use crate::peer_streams::{OUTBOUND_QUEUE, PeerLink, PeerStreams, coalesced};
use crate::proto;
use crate::proto::shard_client::ShardClient;

type Pending = Mutex<HashMap<u64, oneshot::Sender<proto::ProposeReply>>>;

/// The forwarding side of one `Forward` stream to one peer.
struct Link {
    outbound: mpsc::Sender<proto::ForwardCall>,
    pending: Pending,
    next_call: AtomicU64,
    /// Set when the stream failed or ended: no call goes on it any more.
    closed: AtomicBool,
    /// Told once the reader has closed the link (and noted a peer without `Forward`).
    closed_signal: tokio::sync::watch::Sender<bool>,
}

impl Link {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<proto::ProposeReply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PeerLink for Link {
    type Frame = proto::ForwardFrame;

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn deliver(&self, frame: proto::ForwardFrame) {
        let mut pending = self.pending();
        for answer in frame.answers {
            if let (Some(caller), Some(reply)) = (pending.remove(&answer.call), answer.reply) {
                let _ = caller.send(reply);
            }
        }
    }

    fn close(&self, _why: &str) {
        self.closed.store(true, Ordering::Release);
        // Dropping the callers' senders fails their waits.
        self.pending().clear();
        self.closed_signal.send_replace(true);
    }
}

/// This node's `Forward` streams, one per peer address.
pub(crate) struct ForwardLinks {
    streams: Arc<PeerStreams<Link>>,
    calls: AtomicU64,
}

impl Default for ForwardLinks {
    fn default() -> ForwardLinks {
        ForwardLinks {
            streams: Arc::new(PeerStreams::new("Forward", "forwarding to it by Propose calls")),
            calls: AtomicU64::new(0),
        }
    }
}

/// Takes a forwarded call's id out of its link when the caller stops waiting (an answer, a
/// timeout), so that an answer that never comes leaves nothing behind.
struct Waiting<'a> {
    link: &'a Link,
    call: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.link.pending().remove(&self.call);
    }
}

impl ForwardLinks {
    /// Whether `addr` answered `Forward` as unimplemented (a build before it).
    pub fn unsupported(&self, addr: &str) -> bool {
        self.streams.unsupported(addr)
    }

    /// Calls sent on `Forward` streams since start (for tests).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn link(
        self: &Arc<Self>,
        addr: &str,
        client: impl FnOnce() -> Result<ShardClient<PeerChannel>, String>,
    ) -> Result<Arc<Link>, tonic::Status> {
        self.streams
            .link(addr, || async {
                let mut client = client().map_err(tonic::Status::unavailable)?;
                let (outbound, queue) = mpsc::channel(OUTBOUND_QUEUE);
                let frames = coalesced(queue, "ivory_node_forward_frame_calls", |calls| proto::ForwardFrame {
                    calls,
                    answers: Vec::new(),
                });
                let inbound = client.forward(frames).await?.into_inner();
                let link = Arc::new(Link {
                    outbound,
                    pending: Mutex::default(),
                    next_call: AtomicU64::new(1),
                    closed: AtomicBool::new(false),
                    closed_signal: tokio::sync::watch::Sender::new(false),
                });
                self.streams.read_answers(addr, &link, inbound);
                Ok(link)
            })
            .await
    }

    /// `request` proposed through `addr`'s `Forward` stream, past the fault hook; waits as long
    /// as the caller does.
    ///
    /// # Errors
    /// When the peer is cut off (fault injection), the stream cannot be opened, or it fails
    /// before the answer: whether the proposal was applied is then unknown, as with a failed call.
    pub async fn propose(
        self: &Arc<Self>,
        addr: &str,
        faults: &Faults,
        client: impl FnOnce() -> Result<ShardClient<PeerChannel>, String>,
        request: proto::ProposeRequest,
    ) -> Result<proto::ProposeReply, tonic::Status> {
        if faults.active() && !faults.pass(addr).await {
            return Err(tonic::Status::unavailable(format!(
                "{addr} is isolated (fault injection)"
            )));
        }
        let link = self.link(addr, client).await?;
        let call = link.next_call.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer) = oneshot::channel();
        {
            let mut pending = link.pending();
            if !link.is_open() {
                return Err(tonic::Status::unavailable(format!(
                    "the forward stream to {addr} closed"
                )));
            }
            pending.insert(call, answer_tx);
        }
        let _waiting = Waiting { link: &link, call };
        let message = proto::ForwardCall {
            call,
            propose: Some(request),
        };
        if link.outbound.send(message).await.is_err() {
            // The stream's request side is gone; its reader tells why (e.g. no such route) soon.
            let _ = link.closed_signal.subscribe().wait_for(|closed| *closed).await;
            return Err(tonic::Status::unavailable(format!(
                "the forward stream to {addr} closed"
            )));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        answer
            .await
            .map_err(|_| tonic::Status::unavailable(format!("the forward stream to {addr} failed")))
    }
}

/// The leader's side of a `Forward` stream: each call proposed as `Propose` would, its answer
/// sent in a frame of whatever answers are ready.
pub(crate) fn serve(
    node: Node,
    mut inbound: impl Stream<Item = Result<proto::ForwardFrame, tonic::Status>> + Send + Unpin + 'static,
) -> impl Stream<Item = proto::ForwardFrame> + Send + 'static {
    let (answers_tx, answers) = mpsc::channel(OUTBOUND_QUEUE);
    tokio::spawn(async move {
        // The forwarding node closed or lost the stream (`Err`): calls in progress still answer
        // into the queue, which no one reads any more.
        while let Some(Ok(frame)) = inbound.next().await {
            for call in frame.calls {
                let (node, answers) = (node.clone(), answers_tx.clone());
                tokio::spawn(async move {
                    let reply = match call.propose {
                        Some(request) => node.answer_propose(request).await,
                        None => {
                            node.propose_reply(Err(NodeError::Invalid("a forwarded call without its proposal".into())))
                        }
                    };
                    let answer = proto::ForwardAnswer {
                        call: call.call,
                        reply: Some(reply),
                    };
                    let _ = answers.send(answer).await;
                });
            }
        }
    });
    coalesced(answers, "ivory_node_forward_frame_answers", |answers| {
        proto::ForwardFrame {
            calls: Vec::new(),
            answers,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A node built before `Forward` answers it as unimplemented: a tonic server at once, a
    /// server without the route as HTTP 404 once the stream is read. Either way the call fails
    /// (its proposal never reached a handler) and the peer is called by `Propose` from then on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_without_forward_is_noted_and_the_call_fails() {
        tokio::time::timeout(Duration::from_secs(20), async {
            for (addr, server, peers) in crate::network::servers_without_routes().await {
                let links = peers.forwards.clone();
                let request = proto::ProposeRequest {
                    group_id: 1,
                    commands: Vec::new(),
                };
                let answer = links
                    .propose(&addr, peers.faults(), || peers.shard_client(&addr), request)
                    .await;
                assert!(answer.is_err(), "no answer from a server without the route: {answer:?}");
                assert!(
                    links.unsupported(&addr),
                    "the next forward is a Propose call: {answer:?}"
                );
                server.abort();
            }
        })
        .await
        .expect("test timed out");
    }
}
