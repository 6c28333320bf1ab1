//! The publication ids (`message_id`) already handled, kept for a while.
//!
//! docs/messages.md: de-duplicate by `message_id` (`<callbackId>:<attempt>`), never by
//! callbackId, since each attempt must be dialled. A repeat follows its original within
//! seconds, so a day is plenty. This store is in memory and per process: a production
//! worker, or several workers on one queue, would keep the ids in a shared store with an
//! expiry, e.g. Redis `SET <id> 1 NX EX 86400`, or a table with a unique key.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct SeenIds {
    ttl: Duration,
    capacity: usize,
    /// id → when it was claimed.
    claimed: HashMap<String, Instant>,
    /// The same, oldest first, to expire them in order.
    order: VecDeque<(Instant, String)>,
}

impl SeenIds {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        SeenIds {
            ttl,
            capacity,
            claimed: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// True if `id` is new (and is now taken), false if it was seen.
    pub fn claim(&mut self, id: &str) -> bool {
        let now = Instant::now();
        let ttl = self.ttl;
        self.forget_oldest_while(|at, _| now.duration_since(at) >= ttl);
        if self.claimed.contains_key(id) {
            return false;
        }
        let capacity = self.capacity;
        self.forget_oldest_while(|_, len| len >= capacity);
        self.claimed.insert(id.to_owned(), now);
        self.order.push_back((now, id.to_owned()));
        true
    }

    fn forget_oldest_while(&mut self, condition: impl Fn(Instant, usize) -> bool) {
        while let Some((at, old)) = self.order.front() {
            if !condition(*at, self.order.len()) {
                break;
            }
            // An id released and claimed again has a newer entry: keep that one.
            if self.claimed.get(old) == Some(at) {
                self.claimed.remove(old);
            }
            self.order.pop_front();
        }
    }

    /// Forgets an id whose outcome could not be reported, so its redelivery is dialled.
    pub fn release(&mut self, id: &str) {
        self.claimed.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_refused_until_released_or_expired() {
        let mut seen = SeenIds::new(Duration::from_millis(50), 10);
        assert!(seen.claim("cb:1"));
        assert!(!seen.claim("cb:1"));
        assert!(
            seen.claim("cb:2"),
            "another attempt of the same callback is new"
        );
        seen.release("cb:1");
        assert!(seen.claim("cb:1"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(seen.claim("cb:2"), "expired");
    }

    #[test]
    fn the_oldest_ids_go_past_capacity() {
        let mut seen = SeenIds::new(Duration::from_secs(60), 2);
        assert!(seen.claim("a") && seen.claim("b") && seen.claim("c"));
        assert!(seen.claim("a"), "forgotten to make room");
        assert!(!seen.claim("c"));
    }
}
