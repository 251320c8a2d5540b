//! Who holds the server's connections: a bound per client address, so one client cannot take
//! them all, and the choice of an idle connection to close when every one is taken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// One served connection, as the gate reports it.
pub struct Tracked {
    /// Waiting for a request head with nothing of it received.
    idle: AtomicBool,
    /// When the connection last did anything, in milliseconds since the registry began.
    last_activity: AtomicU64,
    epoch: Instant,
    /// Asks the connection to close once what it is answering is sent.
    pub close: Notify,
}

impl Tracked {
    pub fn set_idle(&self, idle: bool) {
        if self.idle.swap(idle, Ordering::Relaxed) != idle {
            self.touch();
        }
    }

    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_activity.store(now, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Held {
    per_address: HashMap<IpAddr, usize>,
    connections: HashMap<u64, (IpAddr, Arc<Tracked>)>,
    next: u64,
}

/// The connections being served, by client address.
pub struct Clients {
    per_client: usize,
    /// Addresses not bound per client: trusted proxies carry many clients' connections.
    exempt: Vec<IpAddr>,
    epoch: Instant,
    held: Mutex<Held>,
}

/// A connection's place in [`Clients`], given back when dropped.
pub struct Admission {
    clients: Arc<Clients>,
    id: u64,
    pub tracked: Arc<Tracked>,
}

impl Clients {
    pub fn new(per_client: usize, exempt: Vec<IpAddr>) -> Arc<Clients> {
        Arc::new(Clients {
            per_client: per_client.max(1),
            exempt,
            epoch: Instant::now(),
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or `None` when that address holds its share.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let mut held = self.held();
        let count = held.per_address.entry(ip).or_insert(0);
        if *count >= self.per_client && !self.exempt.contains(&ip) {
            return None;
        }
        *count += 1;
        let id = held.next;
        held.next += 1;
        let tracked = Arc::new(Tracked {
            idle: AtomicBool::new(false),
            last_activity: AtomicU64::new(0),
            epoch: self.epoch,
            close: Notify::new(),
        });
        tracked.touch();
        held.connections.insert(id, (ip, tracked.clone()));
        Some(Admission {
            clients: self.clone(),
            id,
            tracked,
        })
    }

    /// Asks the idle connection that has been quiet longest to close; false if none is idle.
    pub fn close_an_idle_one(&self) -> bool {
        let held = self.held();
        let quietest = held
            .connections
            .values()
            .filter(|(_, t)| t.idle.load(Ordering::Relaxed))
            .min_by_key(|(_, t)| t.last_activity.load(Ordering::Relaxed));
        match quietest {
            Some((ip, t)) => {
                tracing::debug!(client = %ip, "closing an idle connection to make room");
                t.close.notify_one();
                // Not chosen again while it closes.
                t.idle.store(false, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut held = self.clients.held();
        if let Some((ip, _)) = held.connections.remove(&self.id) {
            if let Some(n) = held.per_address.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    held.per_address.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_its_share_and_gets_it_back() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let clients = Clients::new(2, vec![proxy]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = clients.admit(a).expect("first");
        let _second = clients.admit(a).expect("second");
        assert!(clients.admit(a).is_none());
        assert!(clients.admit("10.0.0.2".parse().unwrap()).is_some());
        let proxied: Vec<_> = (0..5).map(|_| clients.admit(proxy)).collect();
        assert!(proxied.iter().all(Option::is_some));
        drop(first);
        assert!(clients.admit(a).is_some());
    }

    #[test]
    fn the_quietest_idle_connection_is_asked_to_close() {
        let clients = Clients::new(8, Vec::new());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let busy = clients.admit(ip).unwrap();
        assert!(!clients.close_an_idle_one());
        let old = clients.admit(ip).unwrap();
        old.tracked.set_idle(true);
        old.tracked.last_activity.store(5, Ordering::Relaxed);
        let recent = clients.admit(ip).unwrap();
        recent.tracked.set_idle(true);
        recent.tracked.last_activity.store(9, Ordering::Relaxed);
        assert!(clients.close_an_idle_one());
        let woken = |t: &Tracked| {
            let n = t.close.notified();
            tokio::pin!(n);
            n.as_mut().enable()
        };
        assert!(woken(&old.tracked));
        assert!(!woken(&recent.tracked));
        assert!(!woken(&busy.tracked));
    }
}
