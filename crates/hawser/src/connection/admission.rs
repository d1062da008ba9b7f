//! Connections per remote address: the limit that applies before a client
//! has authenticated, so that one host cannot take every connection the
//! broker serves (`max_connections` bounds them all).
//!
//! The table holds an entry only while its address has a connection open,
//! so it is bounded by the connections served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Open connections per remote address, against a limit.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back on drop.
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A table allowing `limit` connections per address.
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, if it has fewer than the limit.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            ip,
        })
    }

    /// Connections allowed per address.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Addresses with a connection open.
    pub fn addresses(&self) -> usize {
        self.open.lock().len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_another_is_not_affected() {
        let t = PerAddress::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = t.take(a).unwrap();
        let _second = t.take(a).unwrap();
        assert!(t.take(a).is_none(), "a third from the same address");
        let _other = t.take(b).unwrap();
        drop(first);
        assert!(t.take(a).is_some(), "a place came back");
        assert_eq!(t.addresses(), 2);
        let none = PerAddress::new(0);
        assert!(none.take(a).is_none());
        assert_eq!(none.addresses(), 0, "a refused address leaves no entry");
    }
}
