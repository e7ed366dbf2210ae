//! Overload protection: a bounded number of requests in flight per node (held by `front::Api`;
//! past it an immediate 429 with Retry-After, before the body is read), a cap on event-stream
//! followers per environment, and metric labels only from a fixed set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Requests in flight per node when not configured: enough to keep the cores and the disk busy
/// (most of a request's time is waiting for replication), few enough that a burst is refused
/// quickly instead of queueing until every caller times out.
pub fn requests_in_flight_default() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 64
}

/// Event-stream followers per environment when not configured (each polls every shard).
pub const EVENT_FOLLOWERS_DEFAULT: usize = 32;

pub(crate) struct Limits {
    followers_max: usize,
    followers: Arc<Mutex<HashMap<String, usize>>>,
}

impl Limits {
    pub fn new(followers_max: usize) -> Limits {
        Limits {
            followers_max: followers_max.max(1),
            followers: Arc::default(),
        }
    }

    /// A follower's place for `environment`, given back on drop; `None` when all are taken.
    pub fn follow(&self, environment: &str) -> Option<FollowerSlot> {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        let n = followers.entry(environment.to_string()).or_insert(0);
        if *n >= self.followers_max {
            return None;
        }
        *n += 1;
        Some(FollowerSlot {
            environment: environment.to_string(),
            followers: self.followers.clone(),
        })
    }
}

/// Held by an event stream for as long as it runs.
pub(crate) struct FollowerSlot {
    environment: String,
    followers: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = followers.get_mut(&self.environment) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                followers.remove(&self.environment);
            }
        }
    }
}

pub(crate) fn overloaded(code: &str, message: impl Into<String>) -> Response {
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message);
    e.retry_after_s = Some(1);
    e.into_response()
}

/// The `method` metric label: a client cannot invent new label values.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
