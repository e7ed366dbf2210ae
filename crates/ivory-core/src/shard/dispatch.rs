//! Command dispatch, in one place: which rules module applies each command, wrapped in the
//! shard's idempotency (remembered event ids) and low-stock alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::invariants::Before;
use super::{Shard, ShardState, config_of};
use crate::command::{CmdResult, Command, Outcome};
use crate::config::{Config, PartitionMode};
use crate::hold::{HoldCommand, StockAlert};
use crate::model::PartitionKey;
use crate::qty::Qty;
use crate::state::{PartitionState, RememberedResult, calculated_over, event_key, fingerprint, scope_tags};
use crate::{allocation, schedule, stock};

impl Shard {
    pub(super) fn apply_one(&mut self, command: &Command) -> CmdResult {
        let (Some((op, id)), Some(partition)) = (command.event(), command.partition()) else {
            return self.apply_admin(command);
        };
        let key = event_key(partition, op, id);
        let fingerprint = fingerprint(command);
        if let Some(seen) = self.state.events.get(&key) {
            if *seen.fingerprint() == fingerprint {
                return seen.result();
            }
            return CmdResult::refused(
                Outcome::Conflict,
                format!(
                    "event id '{id}' was already used for a different {} request",
                    op.prefix()
                ),
            );
        }
        // Borrowed beside the state, not cloned: an Arc's atomic count per command is measurable.
        let config = config_of(&self.compiled, &self.default_config, &partition.environment);
        let product = command.product();
        let low_before = self.state.low_stock_level(config, partition, product);
        let before =
            cfg!(debug_assertions).then(|| Before::take(&self.state.partitions, &self.state.holds, config, command));
        let result = apply_rules(&mut self.state.partitions, config, self.state.clock_ms, command);
        if let Some(before) = before {
            before.check(&self.state.partitions, &self.state.holds, config, command, &result);
        }
        if result.outcome.applied() {
            self.state.alert_if_crossed(config, partition, product, low_before);
        }
        // Refusals for bad input are not remembered: the client may fix the body and reuse the id.
        if result.outcome != Outcome::Invalid {
            let ts_ms = self.state.clock_ms;
            let tags = self.scope_tags_of(partition);
            let seq = self.time_front.wrapping_add(self.state.events_by_time.len() as u32);
            self.state.events_by_time.push_back((ts_ms, key));
            let remembered = RememberedResult::of(&result);
            if let Some(scope) = self.state.events.insert(key, fingerprint, ts_ms, tags, remembered) {
                self.events_by_partition.entry(scope).or_default().push_back(seq);
                self.bound_partition_events(scope);
            }
        }
        result
    }

    /// [`scope_tags`], through the shard's cache.
    fn scope_tags_of(&mut self, partition: &PartitionKey) -> (u64, u64) {
        if let Some(tags) = self.scope_tags.get(partition) {
            return *tags;
        }
        let tags = scope_tags(partition);
        if self.scope_tags.len() >= super::SCOPE_TAGS_CACHED_MAX {
            self.scope_tags.clear();
        }
        self.scope_tags.insert(partition.clone(), tags);
        tags
    }

    fn apply_admin(&mut self, command: &Command) -> CmdResult {
        match command {
            Command::Hold(hold) => {
                let config = config_of(&self.compiled, &self.default_config, &hold.key().environment);
                let now = self.state.clock_ms;
                // Holding stock lowers availability: watch every product the new lines touch.
                let touched: BTreeSet<(PartitionKey, String)> = match hold {
                    HoldCommand::Create { lines, .. } | HoldCommand::ReplaceLines { lines, .. } => lines
                        .iter()
                        .map(|l| (l.partition.clone(), l.cell.product.clone()))
                        .collect(),
                    _ => BTreeSet::new(),
                };
                let before: Vec<Option<Qty>> = touched
                    .iter()
                    .map(|(p, product)| self.state.low_stock_level(config, p, Some(product)))
                    .collect();
                let checked = cfg!(debug_assertions)
                    .then(|| Before::take(&self.state.partitions, &self.state.holds, config, command));
                let result = self.state.holds.apply(&mut self.state.partitions, config, now, hold);
                if let Some(before) = checked {
                    before.check(&self.state.partitions, &self.state.holds, config, command, &result);
                }
                if result.outcome.applied() {
                    for ((p, product), before) in touched.iter().zip(before) {
                        self.state.alert_if_crossed(config, p, Some(product), before);
                    }
                }
                result
            }
            Command::PutConfig {
                environment,
                config_json,
            } => match Config::from_json(config_json) {
                Ok(config) => {
                    self.state.configs.insert(environment.clone(), config_json.clone());
                    self.compiled.insert(environment.clone(), Arc::new(config));
                    CmdResult::success()
                }
                Err(e) => CmdResult::refused(Outcome::Invalid, e.to_string()),
            },
            Command::CleanUp {
                environment,
                partitions,
            } => {
                let doomed = |p: &PartitionKey| {
                    p.environment == *environment && partitions.as_ref().is_none_or(|list| list.contains(p))
                };
                self.state.partitions.retain(|p, _| !doomed(p));
                self.state.holds.forget(environment, partitions.is_none(), doomed);
                let doomed_tags: Option<BTreeSet<u64>> = partitions
                    .as_ref()
                    .map(|list| list.iter().map(|p| scope_tags(p).1).collect());
                let environment_tag = scope_tags(&PartitionKey::new(environment.clone(), "", "", "")).0;
                self.state.events.retain_scopes(|environment, partition| {
                    let in_scope = environment == environment_tag
                        && doomed_tags.as_ref().is_none_or(|tags| tags.contains(&partition));
                    !in_scope
                });
                // The time index keeps the forgotten keys; pruning skips keys no longer remembered.
                self.index_events_by_partition();
                CmdResult::success()
            }
            // Stock commands always carry an event id and a partition.
            _ => CmdResult::refused(Outcome::Invalid, "command without an event id or partition"),
        }
    }
}

/// The one place that says which rules module applies a stock command.
fn apply_rules(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    clock_ms: u64,
    command: &Command,
) -> CmdResult {
    // By location, site and location are the partition: stock may arrive without them (it is
    // kept under empty ones), but nothing can be reserved or allocated there (IV: body 500).
    let takes_stock = matches!(
        command,
        Command::Reserve(_)
            | Command::Allocate(_)
            | Command::Unallocate(_)
            | Command::Reallocate(_)
            | Command::Consume(_)
    );
    if takes_stock
        && config.partition_mode == PartitionMode::ByLocation
        && command
            .partition()
            .is_some_and(|p| p.site.is_empty() || p.location.is_empty())
    {
        return CmdResult::refused(
            Outcome::Refused,
            "dimensions.siteId and dimensions.locationId are required: partitions are by location",
        );
    }
    match command {
        Command::OnHandChange(c) => stock::on_hand_change(partitions, config, c),
        Command::SetOnHand(c) => stock::set_on_hand(partitions, config, c),
        Command::Reserve(c) => stock::reserve(partitions, config, c),
        Command::Unreserve(c) => stock::unreserve(partitions, c),
        Command::ScheduleChange(c) => schedule::schedule_change(partitions, config, clock_ms, c),
        Command::Allocate(c) => allocation::allocate(partitions, config, c),
        Command::Unallocate(c) => allocation::unallocate(partitions, config, c),
        Command::Reallocate(c) => allocation::reallocate(partitions, config, c),
        Command::Consume(c) => allocation::consume(partitions, config, c),
        Command::Hold(_) | Command::PutConfig { .. } | Command::CleanUp { .. } => {
            CmdResult::refused(Outcome::Invalid, "not a stock command")
        }
    }
}

impl ShardState {
    /// The low-stock measure of a product over its whole partition, when alerts are on.
    fn low_stock_level(&self, config: &Config, partition: &PartitionKey, product: Option<&str>) -> Option<Qty> {
        let low = config.low_stock.as_ref()?;
        let cells = self.partitions.get(partition)?.products.get(product?)?;
        Some(calculated_over(Some(cells), &low.formula, &[]))
    }

    fn alert_if_crossed(
        &mut self,
        config: &Config,
        partition: &PartitionKey,
        product: Option<&str>,
        before: Option<Qty>,
    ) {
        let (Some(low), Some(product)) = (config.low_stock.as_ref(), product) else {
            return;
        };
        let Some(after) = self.low_stock_level(config, partition, Some(product)) else {
            return;
        };
        // A product first seen below the threshold (before = None) alerts too: it never had stock.
        let was_above = before.is_none_or(|b| b >= low.threshold);
        if was_above && after < low.threshold {
            let alert = StockAlert {
                partition: partition.clone(),
                product: product.to_string(),
                measure: low.measure.clone(),
                value: after,
                threshold: low.threshold,
            };
            self.holds.emit_stock(self.clock_ms, alert);
        }
    }
}
