//! One process's side of the channels: its registry, the ring it follows
//! (with a thread, started by the first subscription), and the broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::broker::{Broker, BrokerConfig, Level, Log};
use crate::registry::{Member, Registry, SubscribeError};
use crate::ring::{Next, Record, Ring, TooLarge};
use crate::{ChannelName, Kind};

struct Follower {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Channels in one process.
pub struct Bus {
    registry: Arc<Registry>,
    ring: Ring,
    broker: Option<Broker>,
    follower: Mutex<Option<Follower>>,
    stopped: AtomicBool,
    log: Log,
}

impl Bus {
    pub fn new(ring: Ring, broker: Option<BrokerConfig>, log: Log) -> Bus {
        Bus {
            registry: Arc::new(Registry::new()),
            broker: broker.map(|config| Broker::new(config, ring.origin(), log.clone())),
            ring,
            follower: Mutex::new(None),
            stopped: AtomicBool::new(false),
            log,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn broker(&self) -> Option<&BrokerConfig> {
        self.broker.as_ref().map(Broker::config)
    }

    /// The largest payload a publish may carry.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// Subscribes `member`; from when this returns, it gets every message
    /// published to `name` anywhere.
    pub fn subscribe(&self, member: &Member, name: &ChannelName) -> Result<(), SubscribeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(SubscribeError::Ended);
        }
        self.follow();
        if let Some(b) = &self.broker {
            b.listen(self.registry.clone());
        }
        member.subscribe(&self.registry, name)
    }

    pub fn unsubscribe(&self, member: &Member, name: &ChannelName) -> bool {
        member.unsubscribe(&self.registry, name)
    }

    /// The end of a connection: it leaves every channel.
    pub fn leave(&self, member: &Member) {
        member.leave_all(&self.registry);
    }

    /// Publishes to every subscriber of this server (through the ring) and,
    /// with a broker, of the others.
    pub fn publish(&self, name: &ChannelName, kind: Kind, payload: &[u8]) -> Result<(), TooLarge> {
        self.ring.publish(name, kind, payload)?;
        if let Some(b) = &self.broker {
            b.publish(name, kind, payload);
        }
        Ok(())
    }

    /// Starts following the ring, once; the reader starts at the ring's end
    /// before this returns, so nothing published afterwards is missed.
    fn follow(&self) {
        let mut follower = self.follower.lock().unwrap_or_else(PoisonError::into_inner);
        if follower.is_some() {
            return;
        }
        let mut reader = self.ring.reader();
        let stop = Arc::new(AtomicBool::new(false));
        let registry = self.registry.clone();
        let log = self.log.clone();
        let stopping = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("ws-channels".into())
            .spawn(move || {
                let mut rec = Record::default();
                while !stopping.load(Ordering::Acquire) {
                    match reader.next(&mut rec) {
                        Next::Record => {
                            if let (Some(kind), Ok(name)) = (rec.kind, std::str::from_utf8(&rec.channel)) {
                                registry.deliver(name, kind, &rec.payload);
                            }
                        }
                        Next::Empty => reader.wait(Duration::from_millis(500)),
                        Next::Lost(bytes) => log(
                            Level::Warning,
                            &format!(
                                "channels: this process fell a whole channel buffer behind and lost {bytes} bytes of messages (see WebSocketChannelBuffer)"
                            ),
                        ),
                    }
                }
            });
        match spawned {
            Ok(thread) => *follower = Some(Follower { stop, thread }),
            Err(e) => (self.log)(
                Level::Error,
                &format!("channels: cannot start the delivery thread: {e}"),
            ),
        }
    }

    /// Stops the threads and waits for them: before the process exits, so
    /// that none runs while the module is unloaded.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(f) = self
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            f.stop.store(true, Ordering::Release);
            self.ring.wake_readers();
            let _ = f.thread.join();
        }
        if let Some(b) = &self.broker {
            b.stop();
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Delivery, Subscriber};
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    #[derive(Default)]
    struct Inbox(Mutex<Vec<Vec<u8>>>);

    impl Subscriber for Inbox {
        fn deliver(&self, _kind: Kind, payload: &[u8]) -> Delivery {
            self.0.lock().unwrap().push(payload.to_vec());
            Delivery::Queued
        }
    }

    fn quiet() -> Log {
        Arc::new(|_, _| {})
    }

    fn wait_for(inbox: &Inbox, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = inbox.0.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn two_processes_on_one_ring_each_deliver_once() {
        // Two buses on the same memory stand for two child processes.
        let words: Vec<AtomicU64> = (0..crate::ring::words_for(1 << 16))
            .map(|_| AtomicU64::new(0))
            .collect();
        let words = Vec::leak(words);
        let p1 = Bus::new(Ring::new(words).unwrap(), None, quiet());
        let p2 = Bus::new(Ring::new(words).unwrap(), None, quiet());
        let room = ChannelName::new(b"room").unwrap();
        let (a, b, c) = (
            Arc::new(Inbox::default()),
            Arc::new(Inbox::default()),
            Arc::new(Inbox::default()),
        );
        let (ma, mb, mc) = (
            Member::new(a.clone()),
            Member::new(b.clone()),
            Member::new(c.clone()),
        );
        p1.subscribe(&ma, &room).unwrap();
        p2.subscribe(&mb, &room).unwrap();
        p2.subscribe(&mc, &ChannelName::new(b"elsewhere").unwrap())
            .unwrap();
        for i in 0..100u8 {
            let publisher = if i % 2 == 0 { &p1 } else { &p2 };
            publisher.publish(&room, Kind::Binary, &[i]).unwrap();
        }
        let expected: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i]).collect();
        assert_eq!(wait_for(&a, 100), expected);
        assert_eq!(wait_for(&b, 100), expected);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(a.0.lock().unwrap().len(), 100, "no duplicates");
        assert!(c.0.lock().unwrap().is_empty());
        p2.leave(&mb);
        p1.publish(&room, Kind::Text, b"after").unwrap();
        assert_eq!(wait_for(&a, 101).len(), 101);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.0.lock().unwrap().len(), 100);
        p1.stop();
        p2.stop();
        assert_eq!(p1.subscribe(&ma, &room), Err(SubscribeError::Ended));
    }
}
