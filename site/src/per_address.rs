//! Per-address counting: how many of something (connections, logins in progress) each client
//! address holds, with a cap, so that one address cannot take every slot. The HTTP listener
//! (`limits.max_connections_per_address`) and the SSH endpoint
//! (`sftp.max_unauthenticated_per_address`) both count with it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The places each address holds.
#[derive(Default)]
pub struct PerAddress {
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A place for one more from `ip`, or `None` when it already holds `cap`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            owner: self.clone(),
            ip,
        })
    }
}

/// One place in its address's count; given back on drop.
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_places_back() {
        let counts = Arc::new(PerAddress::default());
        let (a, b): (IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])),
            IpAddr::from([127, 0, 0, 2]),
        );
        let first = counts.admit(a, 2);
        let second = counts.admit(a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(counts.admit(a, 2).is_none());
        assert!(
            counts.admit(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(counts.admit(a, 2).is_some());
    }
}
