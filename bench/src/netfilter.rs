//! The two things the lab asks of the kernel's packet filter, both as root and both undone when
//! the lab ends: [`crate::blackhole`] (a deleted pod's IP goes silent) and [`crate::service_ip`]
//! (a Service's virtual IP forwards to the pod behind it).

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
