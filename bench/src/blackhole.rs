//! Making a deleted pod's IP stop answering, as in a cluster: with root, an iptables chain of our
//! own drops every packet to it (SYNs included, so a connect hangs); without root, nothing is
//! dropped and the stopped pod's IP refuses connections instead, which the lab says up front.

use std::net::Ipv4Addr;

use testkit::netfilter::{iptables, is_root};

pub struct Blackhole {
    chain: Option<String>,
}

impl Blackhole {
    /// Sets up a chain `LAB<pid>` hooked into OUTPUT, or the refusing fallback.
    pub fn setup() -> Self {
        let chain = format!("LAB{}", std::process::id());
        let ok = is_root()
            && iptables(&["-N", &chain])
            && iptables(&["-I", "OUTPUT", "-d", "127.0.0.0/8", "-j", &chain]);
        if ok {
            Self { chain: Some(chain) }
        } else {
            let _ = iptables(&["-X", &chain]);
            Self { chain: None }
        }
    }

    /// How deleted pods' IPs behave, for the results: `iptables` (they hang) or `refuse`.
    pub fn mode(&self) -> &'static str {
        if self.chain.is_some() {
            "iptables"
        } else {
            "refuse"
        }
    }

    /// How deleted pods' IPs behave, for the banner.
    pub fn describe(&self) -> &'static str {
        if self.chain.is_some() {
            "deleted pods' IPs are blackholed with iptables (connections hang, as in a cluster)"
        } else {
            "NOT root or no iptables: deleted pods' IPs refuse connections instead of hanging \
             (run as root with iptables for the cluster's behaviour)"
        }
    }

    pub fn drop_ip(&self, ip: Ipv4Addr) {
        if let Some(chain) = &self.chain {
            iptables(&["-A", chain, "-d", &ip.to_string(), "-j", "DROP"]);
        }
    }

    pub fn restore_ip(&self, ip: Ipv4Addr) {
        if let Some(chain) = &self.chain {
            while iptables(&["-D", chain, "-d", &ip.to_string(), "-j", "DROP"]) {}
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        if let Some(chain) = self.chain.take() {
            iptables(&["-D", "OUTPUT", "-d", "127.0.0.0/8", "-j", &chain]);
            iptables(&["-F", &chain]);
            iptables(&["-X", &chain]);
        }
    }
}
