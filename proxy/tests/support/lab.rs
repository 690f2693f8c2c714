//! The lab of the failover and gray-failure tests: a real DNS server whose records change, pods
//! on their own loopback IPs, and the proxy binary following the name.

use std::time::Duration;

use testkit::DnsServer;

use super::{ip, Load, Pod, ProxyProcess, Sample, NAME, POD_PORT};

pub struct Lab {
    pub net: u8,
    pub dns: DnsServer,
    pub pods: Vec<Pod>,
    pub proxy: ProxyProcess,
}

impl Lab {
    /// DNS on 127.0.<net>.53, pods on 127.0.<net>.<host>:8000, the proxy on 127.0.<net>.254.
    pub async fn start(net: u8, hosts: &[u8], extra: &[&str]) -> Self {
        let dns = DnsServer::start(ip(net, 53)).await.unwrap();
        let mut pods = Vec::new();
        for host in hosts {
            pods.push(Pod::start(ip(net, *host), POD_PORT, &format!("pod-{host}")).await);
        }
        dns.set(NAME, &pods.iter().map(|p| p.ip()).collect::<Vec<_>>());
        let upstream = format!("{NAME}:{POD_PORT}");
        let resolver = dns.addr().to_string();
        let mut args = vec![
            "--upstream",
            upstream.as_str(),
            "--resolver",
            resolver.as_str(),
        ];
        args.extend_from_slice(extra);
        let proxy = ProxyProcess::start(
            (ip(net, 254), 8080).into(),
            (ip(net, 254), 9091).into(),
            &args,
        )
        .await;
        Self {
            net,
            dns,
            pods,
            proxy,
        }
    }

    pub fn pod(&mut self, host: u8) -> &mut Pod {
        let addr = ip(self.net, host);
        self.pods
            .iter_mut()
            .find(|p| p.ip() == addr)
            .expect("no such pod")
    }

    pub fn set_dns(&self, hosts: &[u8]) {
        let ips: Vec<_> = hosts.iter().map(|h| ip(self.net, *h)).collect();
        self.dns.set(NAME, &ips);
    }

    pub fn addr(&self, host: u8) -> String {
        format!("{}:{POD_PORT}", ip(self.net, host))
    }
}

pub fn served_by<'a>(samples: &'a [Sample], addr: &str) -> impl Iterator<Item = &'a Sample> + 'a {
    let addr = addr.to_owned();
    samples
        .iter()
        .filter(move |s| s.upstream() == Some(addr.as_str()))
}

pub async fn warm_up(load: &Load, lab: &Lab, hosts: &[u8]) {
    for host in hosts {
        let addr = lab.addr(*host);
        testkit::wait::until(&format!("{addr} serves"), Duration::from_secs(10), || {
            served_by(&load.snapshot(), &addr).count() >= 5
        })
        .await;
    }
}
