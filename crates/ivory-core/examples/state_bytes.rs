//! Heap bytes of a shard's state per stock key and per reservation, counted by the allocator.
//! The shapes are those of `ivory-bench spread` (a product per key over 5 x 10 locations, one
//! on-hand event per key, then single reserves of 1 with fresh ids); every key and reserve lands
//! in one shard here, so the figures are the state's own, without Raft, HTTP or sled.
//!
//! `cargo run --release -p ivory-core --example state_bytes [KEYS] [RESERVES]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ivory_core::*;

mod shapes;
use shapes::{load, reserve};

/// Live heap bytes (requested sizes; the allocator's own rounding comes on top).
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let keys = args.next().filter(|n| *n > 0).unwrap_or(100_000);
    let reserves = args.next().filter(|n| *n > 0).unwrap_or(200_000);
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let base = live();
    let loaded_at_ms = load(&mut shard, keys);
    let loaded = live();
    for (r, ts_ms) in (0..reserves).zip(loaded_at_ms + 1..) {
        shard.apply(&Batch {
            ts_ms,
            commands: vec![reserve(r, keys)],
        });
    }
    let reserved = live();
    let per_key = (loaded - base) as f64 / keys as f64;
    let per_reserve = (reserved - loaded) as f64 / reserves as f64;
    println!(
        "{keys} keys: {:.1} MB, {per_key:.0} B per key (cell and its on-hand event id); \
         {reserves} reserves: {:.1} MB more, {per_reserve:.0} B per reserve (event id, and a reservation per key reserved); \
         {} remembered event ids",
        (loaded - base) as f64 / 1e6,
        (reserved - loaded) as f64 / 1e6,
        shard.remembered_events()
    );
}
