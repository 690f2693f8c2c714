//! A Service's virtual IP, as kube-proxy makes one: connections to `VIP:port` are DNATed to the
//! pod behind it, and repointing the rule moves new connections to another pod while open ones
//! stay where they are (conntrack). This is how the lab restarts pgbalancer as a Deployment's
//! rolling update does: the new pod starts on a new IP, becomes ready, the Service points at it,
//! and only then does the old pod get SIGTERM.
//!
//! Root with iptables: a `nat` chain `LABNAT<pid>` hooked into `OUTPUT`. Otherwise there is no
//! virtual IP: clients dial the pod itself, and a restart stops the old pod before the new one
//! takes its address, which the lab says up front.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Mutex;

use testkit::netfilter::{iptables, is_root};

pub struct ServiceIps {
    chain: Option<String>,
    /// Where each virtual IP points now, to delete exactly that rule when it moves.
    rules: Mutex<HashMap<SocketAddrV4, SocketAddrV4>>,
}

impl ServiceIps {
    pub fn setup() -> Self {
        let chain = format!("LABNAT{}", std::process::id());
        let ok = is_root()
            && iptables(&["-t", "nat", "-N", &chain])
            && iptables(&[
                "-t",
                "nat",
                "-I",
                "OUTPUT",
                "-d",
                "127.0.0.0/8",
                "-j",
                &chain,
            ]);
        if !ok {
            let _ = iptables(&["-t", "nat", "-X", &chain]);
        }
        Self {
            chain: ok.then_some(chain),
            rules: Mutex::default(),
        }
    }

    pub fn available(&self) -> bool {
        self.chain.is_some()
    }

    /// For the banner.
    pub fn describe(&self) -> &'static str {
        if self.available() {
            "the Postgres balancer sits behind a Service IP (iptables DNAT, as kube-proxy does)"
        } else {
            "NOT root or no iptables nat: no Service IP; a Postgres balancer restart stops the \
             old one before the new one listens (connections in between are refused)"
        }
    }

    /// Sends new connections to `vip` to `pod` from now on.
    pub fn point(&self, vip: SocketAddrV4, pod: SocketAddrV4) {
        let Some(chain) = &self.chain else { return };
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        // Insert the new rule first, then delete the old one: no instant without a rule.
        nat(chain, "-I", vip, pod);
        if let Some(old) = rules.insert(vip, pod).filter(|old| *old != pod) {
            nat(chain, "-D", vip, old);
        }
    }
}

/// Inserts (`-I`) or deletes (`-D`) the rule `vip -> pod` in `chain`.
fn nat(chain: &str, op: &str, vip: SocketAddrV4, pod: SocketAddrV4) -> bool {
    let (ip, port, to) = (
        format!("{}/32", vip.ip()),
        vip.port().to_string(),
        pod.to_string(),
    );
    iptables(&[
        "-t",
        "nat",
        op,
        chain,
        "-d",
        &ip,
        "-p",
        "tcp",
        "--dport",
        &port,
        "-j",
        "DNAT",
        "--to-destination",
        &to,
    ])
}

impl Drop for ServiceIps {
    fn drop(&mut self) {
        if let Some(chain) = self.chain.take() {
            iptables(&[
                "-t",
                "nat",
                "-D",
                "OUTPUT",
                "-d",
                "127.0.0.0/8",
                "-j",
                &chain,
            ]);
            iptables(&["-t", "nat", "-F", &chain]);
            iptables(&["-t", "nat", "-X", &chain]);
        }
    }
}
