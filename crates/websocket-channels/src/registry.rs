//! Who in this process is subscribed to what, and delivery to them.
//!
//! Delivery never waits: a [`Subscriber`] queues the message or reports
//! that it is gone (its connection ended, or it was too slow and is being
//! closed), and gone subscribers are dropped from the channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::{ChannelName, Kind};

/// Most channels one connection may be subscribed to at once.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The subscriber will take nothing more: forget it.
    Gone,
}

/// A connection as channels see it.
pub trait Subscriber: Send + Sync {
    /// Queues `payload` for the client without waiting.
    fn deliver(&self, kind: Kind, payload: &[u8]) -> Delivery;
}

type Shared = Arc<dyn Subscriber>;

fn same(a: &Shared, b: &Shared) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The subscriptions of one process.
#[derive(Default)]
pub struct Registry {
    channels: RwLock<HashMap<ChannelName, Vec<Shared>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds `who` to `name`; false if it was there already.
    fn add(&self, name: &ChannelName, who: &Shared) -> bool {
        let mut channels = self.channels.write().unwrap_or_else(PoisonError::into_inner);
        let list = channels.entry(name.clone()).or_default();
        if list.iter().any(|s| same(s, who)) {
            return false;
        }
        list.push(who.clone());
        true
    }

    /// Removes `who` from `name`; false if it was not there.
    fn remove(&self, name: &str, who: &Shared) -> bool {
        let mut channels = self.channels.write().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = channels.get_mut(name) else {
            return false;
        };
        let before = list.len();
        list.retain(|s| !same(s, who));
        let removed = list.len() != before;
        if list.is_empty() {
            channels.remove(name);
        }
        removed
    }

    /// Hands the message to every subscriber of `name`; how many queued it.
    pub fn deliver(&self, name: &str, kind: Kind, payload: &[u8]) -> usize {
        let mut gone = Vec::new();
        let mut queued = 0;
        {
            let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            let Some(list) = channels.get(name) else {
                return 0;
            };
            for s in list {
                match s.deliver(kind, payload) {
                    Delivery::Queued => queued += 1,
                    Delivery::Gone => gone.push(s.clone()),
                }
            }
        }
        for s in &gone {
            self.remove(name, s);
        }
        queued
    }

    /// Subscribers of `name` right now.
    pub fn subscribers(&self, name: &str) -> usize {
        let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        channels.get(name).map_or(0, Vec::len)
    }

    /// Channels with at least one subscriber.
    pub fn channels(&self) -> usize {
        self.channels.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// Already [`MAX_SUBSCRIPTIONS`] channels.
    TooMany,
    /// The connection has ended.
    Ended,
}

/// One connection's subscriptions: it joins and leaves channels, and leaves
/// them all when it ends.
pub struct Member {
    who: Shared,
    /// The channels joined; `None` once the connection has ended.
    names: Mutex<Option<Vec<ChannelName>>>,
}

impl Member {
    pub fn new(who: Arc<dyn Subscriber>) -> Member {
        Member {
            who,
            names: Mutex::new(Some(Vec::new())),
        }
    }

    /// Joins `name` (joining twice is joining once).
    pub fn subscribe(&self, registry: &Registry, name: &ChannelName) -> Result<(), SubscribeError> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let names = names.as_mut().ok_or(SubscribeError::Ended)?;
        if names.contains(name) {
            return Ok(());
        }
        if names.len() >= MAX_SUBSCRIPTIONS {
            return Err(SubscribeError::TooMany);
        }
        // Under the member's lock, so that a concurrent `leave_all` cannot
        // miss a channel joined meanwhile.
        registry.add(name, &self.who);
        names.push(name.clone());
        Ok(())
    }

    /// Leaves `name`; false if not subscribed.
    pub fn unsubscribe(&self, registry: &Registry, name: &ChannelName) -> bool {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(names) = names.as_mut() else {
            return false;
        };
        let Some(i) = names.iter().position(|n| n == name) else {
            return false;
        };
        names.swap_remove(i);
        registry.remove(name.as_str(), &self.who);
        true
    }

    /// Leaves every channel for good: later subscriptions fail.
    pub fn leave_all(&self, registry: &Registry) {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner).take();
        for name in names.into_iter().flatten() {
            registry.remove(name.as_str(), &self.who);
        }
    }

    /// The channels joined, in order.
    pub fn names(&self) -> Vec<ChannelName> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Inbox {
        got: Mutex<Vec<(Kind, Vec<u8>)>>,
        gone: AtomicBool,
    }

    impl Subscriber for Inbox {
        fn deliver(&self, kind: Kind, payload: &[u8]) -> Delivery {
            if self.gone.load(Ordering::SeqCst) {
                return Delivery::Gone;
            }
            self.got.lock().unwrap().push((kind, payload.to_vec()));
            Delivery::Queued
        }
    }

    fn name(s: &str) -> ChannelName {
        ChannelName::new(s.as_bytes()).unwrap()
    }

    fn member() -> (Arc<Inbox>, Member) {
        let inbox = Arc::new(Inbox::default());
        (inbox.clone(), Member::new(inbox))
    }

    #[test]
    fn delivery_reaches_each_subscriber_once() {
        let reg = Registry::new();
        let (a, ma) = member();
        let (b, mb) = member();
        ma.subscribe(&reg, &name("room")).unwrap();
        ma.subscribe(&reg, &name("room")).unwrap();
        mb.subscribe(&reg, &name("room")).unwrap();
        mb.subscribe(&reg, &name("other")).unwrap();
        assert_eq!(reg.deliver("room", Kind::Text, b"hi"), 2);
        assert_eq!(reg.deliver("other", Kind::Binary, b"\x01"), 1);
        assert_eq!(reg.deliver("nobody", Kind::Text, b"x"), 0);
        assert_eq!(*a.got.lock().unwrap(), [(Kind::Text, b"hi".to_vec())]);
        assert_eq!(
            *b.got.lock().unwrap(),
            [(Kind::Text, b"hi".to_vec()), (Kind::Binary, vec![1])]
        );
        assert_eq!(ma.names(), [name("room")]);
    }

    #[test]
    fn unsubscribe_and_leave_all() {
        let reg = Registry::new();
        let (a, ma) = member();
        ma.subscribe(&reg, &name("x")).unwrap();
        ma.subscribe(&reg, &name("y")).unwrap();
        assert!(ma.unsubscribe(&reg, &name("x")));
        assert!(!ma.unsubscribe(&reg, &name("x")));
        assert_eq!(reg.deliver("x", Kind::Text, b"1"), 0);
        assert_eq!(reg.deliver("y", Kind::Text, b"2"), 1);
        ma.leave_all(&reg);
        assert_eq!(reg.channels(), 0);
        assert_eq!(ma.subscribe(&reg, &name("z")), Err(SubscribeError::Ended));
        assert_eq!(reg.deliver("y", Kind::Text, b"3"), 0);
        assert_eq!(a.got.lock().unwrap().len(), 1);
    }

    #[test]
    fn gone_subscribers_are_dropped_and_the_rest_served() {
        let reg = Registry::new();
        let (a, ma) = member();
        let (b, mb) = member();
        ma.subscribe(&reg, &name("c")).unwrap();
        mb.subscribe(&reg, &name("c")).unwrap();
        a.gone.store(true, Ordering::SeqCst);
        assert_eq!(reg.deliver("c", Kind::Text, b"m"), 1);
        assert_eq!(reg.subscribers("c"), 1);
        assert_eq!(b.got.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_member_holds_at_most_the_limit() {
        let reg = Registry::new();
        let (_a, ma) = member();
        for i in 0..MAX_SUBSCRIPTIONS {
            ma.subscribe(&reg, &name(&format!("c{i}"))).unwrap();
        }
        assert_eq!(
            ma.subscribe(&reg, &name("one-more")),
            Err(SubscribeError::TooMany)
        );
        ma.subscribe(&reg, &name("c0")).unwrap();
        assert_eq!(reg.channels(), MAX_SUBSCRIPTIONS);
    }
}
