//! The workloads, split by concern: [`spec`] (what each request is), [`setup`] (stock set-up and
//! read-back), [`client`] (the client loop, closed or open).

mod client;
mod setup;
mod spec;
#[cfg(test)]
mod tests;

pub use client::*;
pub use setup::*;
pub use spec::*;
