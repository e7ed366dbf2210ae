//! The service layer under REST and gRPC: functions that take typed commands and queries (the
//! `ivory_core` types the parsers produce) and return typed results. REST (`writes`, `queries`,
//! `allocation_query`, `holds`, `events`) decodes JSON into them and renders IV's JSON; gRPC
//! (`grpc`, `holds_grpc`) maps its typed messages onto the same request fields, so one parser
//! validates both, and renders the same results as messages. Auth (`auth::authorize`), limits
//! (`writes::bulk_items`, the query limits in `queries`, `limits`) and the backend's retries
//! (`Gateway::propose`, `Gateway::read`) are shared the same way.
//!
//! Writes: one item ([`write_single`]) or a bulk ([`write_items`]): every item parsed under the
//! environment's configuration, refused items answered without proposing, the others proposed as
//! one log entry per shard, in parallel.

use std::collections::BTreeMap;

use ivory_core::{CmdResult, Command};
use serde_json::Value;

use crate::parse::{WriteKind, client_id, mapping_config, needs_mappings, write_command};
use crate::reserve_body::ReserveItem;
use crate::{ApiError, AppState};

/// What became of one write item.
#[derive(Debug)]
pub(crate) enum ItemAnswer {
    /// The shard applied it or refused it (`CmdResult::outcome`).
    Applied(CmdResult),
    /// The gateway refused it before proposing (a 400 naming the field).
    Refused(ApiError),
    /// Its shard could not be reached after the gateway's retries: maybe applied, maybe not.
    Unknown(ApiError),
}

impl ItemAnswer {
    /// IV's bucket of a bulk answer.
    pub fn bucket(&self) -> &'static str {
        match self {
            ItemAnswer::Applied(r) => r.outcome.bucket(),
            ItemAnswer::Refused(_) => "failure",
            ItemAnswer::Unknown(_) => "unknown",
        }
    }
}

/// IV's bulk buckets, in the order REST renders them.
pub(crate) const BUCKETS: [&str; 6] = [
    "success",
    "failure",
    "conflict",
    "notFound",
    "partialSuccess",
    "unknown",
];

/// One write: `(client id, answer)`. `Err` when nothing could be decided for it (the
/// configuration could not be read, the shard could not be reached after the retries).
pub(crate) async fn write_single(
    s: &AppState,
    env: &str,
    kind: WriteKind,
    value: &Value,
) -> Result<(String, ItemAnswer), ApiError> {
    let config = mapping_config(s, env, kind.needs_config() || needs_mappings([value])).await?;
    answer_one(s, client_id(value), write_command(kind, value, env, &config, "")).await
}

/// [`write_single`] for a reserve read by `reserve_body`.
pub(crate) async fn reserve_single(
    s: &AppState,
    env: &str,
    item: &ReserveItem<'_>,
) -> Result<(String, ItemAnswer), ApiError> {
    let config = mapping_config(s, env, false).await?;
    answer_one(s, item.client_id(), item.command(env, &config, "")).await
}

async fn answer_one(
    s: &AppState,
    id: String,
    command: Result<Command, ApiError>,
) -> Result<(String, ItemAnswer), ApiError> {
    match command {
        Ok(command) => Ok((id, ItemAnswer::Applied(write_one(s, command).await?))),
        Err(e) => Ok((id, ItemAnswer::Refused(e))),
    }
}

/// Proposes one command to its shard: its result.
pub(crate) async fn write_one(s: &AppState, command: Command) -> Result<CmdResult, ApiError> {
    let Some(partition) = command.partition() else {
        return Err(ApiError::bad_backend("a write without a partition"));
    };
    let shard = s.backend.shard_of(partition);
    let results = s.propose(shard, vec![command]).await?;
    results
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_backend("empty result"))
}

/// A bulk's items (at most 512, checked by the caller with `writes::bulk_items`): one answer per
/// item in request order, `None` for an item that has no partition (never proposed). `Err` only
/// when every shard tried failed.
pub(crate) async fn write_items(
    s: &AppState,
    env: &str,
    kind: WriteKind,
    items: &[Value],
) -> Result<Vec<(String, Option<ItemAnswer>)>, ApiError> {
    let config = mapping_config(s, env, kind.needs_config() || needs_mappings(items)).await?;
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| write_command(kind, item, env, &config, &format!("[{i}]")))
        .collect();
    let answers = write_many(s, parsed).await?;
    Ok(items.iter().map(client_id).zip(answers).collect())
}

/// [`write_items`] for reserves read by `reserve_body`.
pub(crate) async fn reserve_items(
    s: &AppState,
    env: &str,
    items: &[ReserveItem<'_>],
) -> Result<Vec<(String, Option<ItemAnswer>)>, ApiError> {
    let config = mapping_config(s, env, false).await?;
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| item.command(env, &config, &format!("[{i}]")))
        .collect();
    let answers = write_many(s, parsed).await?;
    Ok(items.iter().map(ReserveItem::client_id).zip(answers).collect())
}

/// Proposes the parsed commands, one proposal per shard in parallel; refusals pass through.
pub(crate) async fn write_many(
    s: &AppState,
    commands: Vec<Result<Command, ApiError>>,
) -> Result<Vec<Option<ItemAnswer>>, ApiError> {
    let mut answers: Vec<Option<ItemAnswer>> = Vec::with_capacity(commands.len());
    let mut by_shard: BTreeMap<u32, (Vec<usize>, Vec<Command>)> = BTreeMap::new();
    for (i, command) in commands.into_iter().enumerate() {
        answers.push(None);
        match command {
            Ok(command) => {
                let Some(partition) = command.partition() else { continue };
                let slot = by_shard.entry(s.backend.shard_of(partition)).or_default();
                slot.0.push(i);
                slot.1.push(command);
            }
            Err(e) => answers[i] = Some(ItemAnswer::Refused(e)),
        }
    }
    let proposals = by_shard.into_iter().map(|(shard, (indexes, commands))| {
        let s = s.clone();
        async move { (indexes, s.propose(shard, commands).await) }
    });
    let outcomes = futures::future::join_all(proposals).await;
    let attempted = outcomes.len();
    let mut first_error = None;
    let mut failed = 0;
    for (indexes, outcome) in outcomes {
        match outcome {
            Ok(results) => {
                for (i, r) in indexes.into_iter().zip(results) {
                    answers[i] = Some(ItemAnswer::Applied(r));
                }
            }
            Err(e) => {
                failed += 1;
                for i in indexes {
                    answers[i] = Some(ItemAnswer::Unknown(e.clone()));
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if attempted > 0
        && failed == attempted
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Ok(answers)
}
