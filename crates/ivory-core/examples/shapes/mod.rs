//! The shapes of `ivory-bench spread` for the state-machine examples: a product per key over
//! 5 x 10 locations, each key loaded with one on-hand event (512 per batch).

use ivory_core::*;

pub fn key(i: usize) -> (PartitionKey, Cell) {
    let pair = i % 50;
    let partition = PartitionKey::new("bench", "usmf", format!("{}", pair / 10 + 1), format!("{pair:03}"));
    let cell = Cell {
        product: format!("b1796553428866-p{i}"),
        dims: Dims::new(),
    };
    (partition, cell)
}

/// Loads `keys` keys into `shard`; returns the last batch's timestamp.
pub fn load(shard: &mut Shard, keys: usize) -> u64 {
    let mut ts_ms = 1;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(512) {
        let commands = chunk
            .iter()
            .map(|&i| {
                let (partition, cell) = key(i);
                let quantities = [(
                    "pos".to_string(),
                    [("inbound".to_string(), Qty::from_i64(1_000_000))]
                        .into_iter()
                        .collect(),
                )]
                .into_iter()
                .collect();
                Command::OnHandChange(OnHandChange {
                    id: format!("load-{i}"),
                    partition,
                    cell,
                    quantities,
                })
            })
            .collect();
        ts_ms += 1;
        shard.apply(&Batch { ts_ms, commands });
    }
    ts_ms
}

/// A reserve of 1 with a fresh id on one of `keys` keys, spread over them.
pub fn reserve(r: usize, keys: usize) -> Command {
    let (partition, cell) = key(r.wrapping_mul(7919) % keys);
    Command::Reserve(Reserve {
        id: format!("b1796553428866-c{}-{r}", r % 64),
        partition,
        cell,
        measure: MeasureRef::new("iv", "softreservphysical"),
        quantity: Qty::ONE,
        availability: Availability::Checked,
    })
}
