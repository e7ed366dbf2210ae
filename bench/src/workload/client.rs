//! The client loop (closed or open): send, judge, retry, record.

use super::{ClientState, Judge, Spec, channel_of};
use crate::api::{self, Conn, Verdict};
use crate::stats::{Class, Live, Recorder, Schedule, latency_us};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Plan {
    pub spec: Spec,
    pub org: String,
    pub tag: String,
    pub seed: u64,
    pub deadline: Option<Instant>,
    pub requests: Option<u64>,
    pub schedule: Option<Schedule>,
    pub retries: u32,
    pub clients: usize,
}

/// Open loop: a send counts as late beyond this (tokio's timers have 1 ms resolution).
pub const LATE: Duration = Duration::from_millis(2);

/// Stop a client after this many errors in a row (server gone, misconfiguration).
const MAX_CONSECUTIVE_ERRORS: u32 = 200;

/// Extra per-client results beside the counts.
#[derive(Default)]
pub struct ClientEnd {
    /// Logical operations whose outcome stayed unknown (error after every retry).
    pub unresolved: u64,
    pub sold_out: bool,
}

pub async fn client_loop(
    c: usize,
    conn: Conn,
    plan: Arc<Plan>,
    live: Arc<Live>,
    issued: Arc<AtomicU64>,
) -> (Recorder, ClientEnd) {
    let channel = match &plan.spec {
        Spec::Channels { split, .. } => channel_of(c, plan.clients, split),
        _ => 0,
    };
    let mut st = ClientState::new(&plan.tag, c, plan.seed, channel);
    let mut rec = Recorder::default();
    let mut end = ClientEnd::default();
    let hot = matches!(plan.spec, Spec::Hot { .. });
    let mut consecutive_errors = 0u32;
    'ops: loop {
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(r) = plan.requests
            && issued.fetch_add(1, Ordering::Relaxed) >= r
        {
            break;
        }
        let intended = match &plan.schedule {
            Some(s) => {
                let (_, due) = s.claim();
                if plan.deadline.is_some_and(|d| due >= d) {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                Some(due)
            }
            None => None,
        };
        let mut req = plan.spec.next(&mut st, &plan.org);
        rec.ops += 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = Instant::now();
            if let Some(i) = intended
                && attempt == 1
                && sent.saturating_duration_since(i) > LATE
            {
                rec.late_sends += 1;
            }
            let body = if attempt <= plan.retries {
                req.body.clone()
            } else {
                std::mem::take(&mut req.body)
            };
            let (judge, items) = (req.judge, req.items);
            let verdict = conn
                .post(req.path, body, |s, b| match judge {
                    Judge::Write => api::classify_write(s, b),
                    Judge::Bulk => api::classify_bulk(s, b, items),
                    Judge::Query => api::classify_query(s, b),
                })
                .await
                .unwrap_or_else(|k| Verdict::error(k, true));
            let done = Instant::now();
            let lat = latency_us(if attempt == 1 { intended } else { None }, sent, done);
            let (class, ok_items) = match verdict {
                Verdict::Ok {
                    items,
                    reservation_id,
                    records,
                } => {
                    if let Some(want) = req.expect_records
                        && records != want
                    {
                        rec.error_kind("query:wrong_record_count", || {
                            format!("{}: {records} records, expected {want}", req.op)
                        });
                        (Class::Error, 0)
                    } else {
                        rec.ok_items += items as u64;
                        rec.records += records as u64;
                        if let (Some(k), Some(rid)) = (req.key, reservation_id)
                            && st.held.len() < 4096
                        {
                            st.held.push((k, rid));
                        }
                        (Class::Ok, items as u64)
                    }
                }
                Verdict::Refused { items } => {
                    rec.refused_items += items as u64;
                    (Class::Refused, 0)
                }
                Verdict::Mixed {
                    ok,
                    refused,
                    errored,
                    kind,
                } => {
                    rec.ok_items += ok as u64;
                    rec.refused_items += refused as u64;
                    rec.error_items += errored as u64;
                    if errored > 0 {
                        let kind = kind.unwrap_or_else(|| "bulk_error".into());
                        rec.error_kind(&kind, || {
                            format!("{}: {ok} ok, {refused} refused, {errored} {kind}", req.op)
                        });
                        (Class::Error, ok as u64)
                    } else {
                        (Class::Refused, ok as u64)
                    }
                }
                Verdict::Error { kind, retryable } => {
                    rec.error_kind(&kind, || format!("{} {}: {kind}", req.op, req.path));
                    rec.record(req.op, Class::Error, lat);
                    live.record(done, Class::Error, 0, lat);
                    consecutive_errors += 1;
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        end.unresolved += 1;
                        break 'ops;
                    }
                    if retryable && attempt <= plan.retries && plan.deadline.is_none_or(|d| Instant::now() < d) {
                        tokio::time::sleep(Duration::from_millis(10 * attempt as u64)).await;
                        continue;
                    }
                    end.unresolved += 1;
                    break;
                }
            };
            consecutive_errors = if class == Class::Error {
                consecutive_errors + 1
            } else {
                0
            };
            rec.record(req.op, class, lat);
            live.record(done, class, ok_items, lat);
            if hot && class == Class::Refused {
                end.sold_out = true;
                break 'ops;
            }
            break;
        }
    }
    (rec, end)
}
