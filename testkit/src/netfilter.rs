//! The kernel's packet filter, for tests and the lab that run as root: a pod's address made
//! silent (packets to it dropped, as when a pod is deleted and its IP no longer answers), and the
//! plain `iptables` calls the lab builds on. Every rule is removed again when its guard drops.

use std::net::Ipv4Addr;
use std::process::Command;

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs `iptables ARGS`; whether it succeeded.
pub fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Packets to an address are dropped while this lives.
#[derive(Debug)]
pub struct Silenced {
    ip: String,
}

/// Makes `ip` silent: every packet sent to it is dropped (connections to it hang, data sent on
/// open connections is never acknowledged). Needs root and iptables.
pub fn silence(ip: Ipv4Addr) -> Result<Silenced, String> {
    if !is_root() {
        return Err("silencing an address needs root (iptables)".into());
    }
    let ip = ip.to_string();
    if !iptables(&["-I", "OUTPUT", "-d", &ip, "-j", "DROP"]) {
        return Err(format!("iptables could not add a DROP rule for {ip}"));
    }
    Ok(Silenced { ip })
}

impl Drop for Silenced {
    fn drop(&mut self) {
        let _ = iptables(&["-D", "OUTPUT", "-d", &self.ip, "-j", "DROP"]);
    }
}
