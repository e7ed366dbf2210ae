//! Every replication session from this node to another on one gRPC stream (`Replicate`), as TiKV
//! batches Raft messages. With a stream per group and follower, each AppendEntries and each
//! answer was its own HTTP/2 frame, with a wake-up of the connection task and a socket write on
//! both ends; on 3 nodes under spread those were the largest share of the cluster plane's CPU.
//! Here a frame carries whatever messages of any group were ready when it left.
//!
//! A session is one openraft `stream_append` of one group to one follower, named by an id the
//! leader chooses. Per session, requests and answers keep their order (one queue each way); a
//! session ends when either side says so (`end`), and every session on a stream fails with it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use ivory_raft::openraft;
use ivory_raft::{GroupId, NodeId, Raft, TypeConfig};
use openraft::RPCTypes;
use openraft::base::BoxStream;
use openraft::error::{NetworkError, RPCError, Timeout, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::sync::{Semaphore, mpsc};

use crate::network::{Faults, PeerChannel, decode, encode};
use crate::peer_streams::{OUTBOUND_QUEUE, PeerLink, PeerStreams, coalesced};
use crate::proto;
use crate::proto::raft_transport_client::RaftTransportClient;

/// Requests of one session sent and not yet answered, at most: bounds what the follower queues
/// for a slow group without stopping the other groups on the stream.
const SESSION_IN_FLIGHT_MAX: usize = 256;

type Message = proto::ReplicationMessage;

fn payload_of(session: u64, group: GroupId, payload: Vec<u8>) -> Message {
    Message {
        session,
        group_id: group,
        payload,
        end: false,
        error: String::new(),
    }
}

fn end_of(session: u64, group: GroupId, error: Option<String>) -> Message {
    Message {
        session,
        group_id: group,
        payload: Vec::new(),
        end: true,
        error: error.unwrap_or_default(),
    }
}

fn frames(queue: mpsc::Receiver<Message>) -> impl Stream<Item = proto::ReplicationFrame> + Send + 'static {
    coalesced(queue, "ivory_node_replication_frame_messages", |messages| {
        proto::ReplicationFrame { messages }
    })
}

/// What a session's leader side hears from the follower.
enum Answer {
    Payload(Vec<u8>),
    /// The follower ended the session: `Some` with why when it failed.
    End(Option<String>),
}

/// The leader's side of one `Replicate` stream to one peer.
pub(crate) struct Link {
    outbound: mpsc::Sender<Message>,
    sessions: Mutex<HashMap<u64, mpsc::UnboundedSender<Answer>>>,
    next_session: AtomicU64,
    /// Set when the stream failed or ended: no session opens on it any more.
    closed: std::sync::atomic::AtomicBool,
}

impl Link {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Answer>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PeerLink for Link {
    type Frame = proto::ReplicationFrame;

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Fails every session with `why` and takes no more.
    fn close(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        for (_, session) in self.sessions().drain() {
            let _ = session.send(Answer::End(Some(why.to_string())));
        }
    }

    /// Hands a frame's answers to their sessions.
    fn deliver(&self, frame: proto::ReplicationFrame) {
        let mut sessions = self.sessions();
        for message in frame.messages {
            if message.end {
                let why = (!message.error.is_empty()).then_some(message.error);
                if let Some(session) = sessions.remove(&message.session) {
                    let _ = session.send(Answer::End(why));
                }
            } else if let Some(session) = sessions.get(&message.session)
                && session.send(Answer::Payload(message.payload)).is_err()
            {
                sessions.remove(&message.session);
            }
        }
    }
}

/// This node's `Replicate` streams, one per peer address.
pub(crate) struct Links {
    streams: Arc<PeerStreams<Link>>,
    sessions_opened: AtomicU64,
}

impl Default for Links {
    fn default() -> Links {
        Links {
            streams: Arc::new(PeerStreams::new("Replicate", "replicating to it by a stream per group")),
            sessions_opened: AtomicU64::new(0),
        }
    }
}

impl Links {
    /// `Replicate` streams opened and sessions opened on them, since start (for tests).
    pub fn opened(&self) -> (u64, u64) {
        (self.streams.opened(), self.sessions_opened.load(Ordering::Relaxed))
    }

    /// Whether `addr` answered `Replicate` as unimplemented (a build before it).
    pub fn unsupported(&self, addr: &str) -> bool {
        self.streams.unsupported(addr)
    }

    /// The open link to `addr`, opened with `client` when there is none.
    async fn link(
        self: &Arc<Self>,
        addr: &str,
        client: impl FnOnce() -> Result<RaftTransportClient<PeerChannel>, String>,
    ) -> Result<Arc<Link>, tonic::Status> {
        self.streams
            .link(addr, || async {
                let mut client = client().map_err(tonic::Status::unavailable)?;
                let (outbound, queue) = mpsc::channel(OUTBOUND_QUEUE);
                let inbound = client.replicate(frames(queue)).await?.into_inner();
                let link = Arc::new(Link {
                    outbound,
                    sessions: Mutex::default(),
                    next_session: AtomicU64::new(1),
                    closed: Default::default(),
                });
                self.streams.read_answers(addr, &link, inbound);
                Ok(link)
            })
            .await
    }
}

/// Where a session sends, and what it needs to say so.
pub(crate) struct Target {
    pub group: GroupId,
    pub id: NodeId,
    pub target: NodeId,
    pub addr: Arc<str>,
    pub faults: Arc<Faults>,
}

/// Opens one replication session of `target.group` on the link to `target.addr`: `input` is
/// openraft's stream of AppendEntries, the answer its stream of results.
pub(crate) async fn open_session<S>(
    links: &Arc<Links>,
    target: Target,
    client: impl FnOnce() -> Result<RaftTransportClient<PeerChannel>, String>,
    input: S,
    soft_ttl: Duration,
    hard_ttl: Duration,
) -> Result<BoxStream<'static, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let timeout = |ttl| {
        RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: target.id,
            target: target.target,
            timeout: ttl,
        })
    };
    let link = match tokio::time::timeout(soft_ttl, links.link(&target.addr, client)).await {
        Ok(Ok(link)) => link,
        Ok(Err(status)) => return Err(crate::network::status_to_rpc(status)),
        Err(_) => return Err(timeout(soft_ttl)),
    };
    let session = link.next_session.fetch_add(1, Ordering::Relaxed);
    let (answers_tx, answers) = mpsc::unbounded_channel();
    {
        let mut sessions = link.sessions();
        if !link.is_open() {
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "the replication stream to {} closed",
                target.addr
            ))));
        }
        sessions.insert(session, answers_tx);
    }
    links.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let window = Arc::new(Semaphore::new(SESSION_IN_FLIGHT_MAX));
    // Sent and not yet answered: a silent session is a fault only while this is not zero.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let group = target.group;
    let sender = tokio::spawn(send_requests(
        link.clone(),
        session,
        target.group,
        target.addr.clone(),
        target.faults.clone(),
        input,
        window.clone(),
        in_flight.clone(),
    ));
    let closing = Closing {
        link,
        session,
        group,
        sender,
    };
    let timed_out = timeout(hard_ttl);
    let state = (closing, answers, window, in_flight, timed_out);
    let answers = futures::stream::unfold(Some(state), move |state| async move {
        let (closing, mut answers, window, in_flight, timed_out) = state?;
        loop {
            let answer = match tokio::time::timeout(hard_ttl, answers.recv()).await {
                Err(_) if in_flight.load(Ordering::Relaxed) == 0 => continue,
                Err(_) => return Some((Err(timed_out), None)),
                Ok(None) | Ok(Some(Answer::End(None))) => return None,
                Ok(Some(Answer::End(Some(why)))) => {
                    return Some((Err(RPCError::Unreachable(Unreachable::from_string(why))), None));
                }
                Ok(Some(Answer::Payload(payload))) => payload,
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            window.add_permits(1);
            let result: Result<StreamAppendResult<TypeConfig>, _> =
                decode(&answer).map_err(|e| RPCError::Network(NetworkError::from_string(e)));
            // openraft ends the session at a conflict or a higher vote; so does the stream.
            let more = matches!(result, Ok(Ok(_)));
            return Some((result, more.then_some((closing, answers, window, in_flight, timed_out))));
        }
    });
    Ok(Box::pin(answers))
}

/// Ends a session when openraft drops its answers: stops its sender and tells the follower.
struct Closing {
    link: Arc<Link>,
    session: u64,
    group: GroupId,
    sender: tokio::task::JoinHandle<()>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.sender.abort();
        if self.link.sessions().remove(&self.session).is_some() {
            // Full only under a burst; the follower's session also ends with the stream.
            let _ = self.link.outbound.try_send(end_of(self.session, self.group, None));
        }
    }
}

/// Sends a session's requests in order, each past the fault hook, then its end.
#[allow(clippy::too_many_arguments)]
async fn send_requests<S>(
    link: Arc<Link>,
    session: u64,
    group: GroupId,
    addr: Arc<str>,
    faults: Arc<Faults>,
    mut input: S,
    window: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
) where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    while let Some(rpc) = input.next().await {
        // A partition set while the session is open ends it (the next one is refused when opened).
        if faults.active() && !faults.pass(&addr).await {
            break;
        }
        let payload = match encode(&rpc) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(group, error = %e, "an AppendEntries did not encode: ending the session");
                break;
            }
        };
        match window.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => break,
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        if link.outbound.send(payload_of(session, group, payload)).await.is_err() {
            break;
        }
    }
    // The follower answers what it has and ends the session, which ends the answers here.
    let _ = link.outbound.send(end_of(session, group, None)).await;
}

/// The follower's side of a `Replicate` stream: each session's requests go to its group's
/// `stream_append`, whose answers leave in frames of whatever is ready.
pub(crate) fn serve(
    rafts: impl Fn(GroupId) -> Option<Raft> + Send + 'static,
    inbound: impl Stream<Item = Result<proto::ReplicationFrame, tonic::Status>> + Send + Unpin + 'static,
) -> impl Stream<Item = proto::ReplicationFrame> + Send + 'static {
    let (answers_tx, answers) = mpsc::channel(OUTBOUND_QUEUE);
    tokio::spawn(route_requests(rafts, inbound, answers_tx));
    frames(answers)
}

async fn route_requests(
    rafts: impl Fn(GroupId) -> Option<Raft> + Send + 'static,
    mut inbound: impl Stream<Item = Result<proto::ReplicationFrame, tonic::Status>> + Send + Unpin + 'static,
    answers: mpsc::Sender<Message>,
) {
    // Session -> its group and the input of its `stream_append`. Dropped with this task when the
    // stream ends, which ends every session's input.
    let mut sessions: HashMap<u64, (GroupId, mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>>)> = HashMap::new();
    // The leader closed or lost the stream (`Err`): the ordinary end of its sessions.
    while let Some(Ok(frame)) = inbound.next().await {
        for message in frame.messages {
            let (session, group) = (message.session, message.group_id);
            if message.end {
                sessions.remove(&session);
                continue;
            }
            let rpc = match decode::<AppendEntriesRequest<TypeConfig>>(&message.payload) {
                Ok(rpc) => rpc,
                Err(e) => {
                    tracing::warn!(group, error = %e, "a replication message did not decode: ending its session");
                    sessions.remove(&session);
                    let _ = answers.send(end_of(session, group, Some(e))).await;
                    continue;
                }
            };
            let input = match sessions.entry(session) {
                Entry::Occupied(open) if open.get().0 == group => &open.into_mut().1,
                Entry::Occupied(open) => {
                    tracing::warn!(
                        group = open.get().0,
                        other = group,
                        "a replication session named another group"
                    );
                    open.remove();
                    let why = "a session named another group".to_string();
                    let _ = answers.send(end_of(session, group, Some(why))).await;
                    continue;
                }
                Entry::Vacant(new) => {
                    let Some(raft) = rafts(group) else {
                        let why = format!("group {group} is not hosted here");
                        let _ = answers.send(end_of(session, group, Some(why))).await;
                        continue;
                    };
                    let (input, requests) = mpsc::unbounded_channel();
                    tokio::spawn(answer_session(raft, session, group, requests, answers.clone()));
                    &new.insert((group, input)).1
                }
            };
            if input.send(rpc).is_err() {
                sessions.remove(&session);
            }
        }
    }
}

async fn answer_session(
    raft: Raft,
    session: u64,
    group: GroupId,
    requests: mpsc::UnboundedReceiver<AppendEntriesRequest<TypeConfig>>,
    answers: mpsc::Sender<Message>,
) {
    let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(requests);
    let mut results = std::pin::pin!(raft.stream_append(requests));
    let mut why = None;
    while let Some(result) = results.next().await {
        let payload = match result {
            Ok(result) => encode(&result),
            Err(fatal) => Err(fatal.to_string()),
        };
        match payload {
            Ok(payload) => {
                if answers.send(payload_of(session, group, payload)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                why = Some(e);
                break;
            }
        }
    }
    let _ = answers.send(end_of(session, group, why)).await;
}
