//! An authoritative DNS server on loopback (UDP and TCP on one port) that answers A queries from a
//! table the caller edits at run time. Unknown names get NXDOMAIN, as CoreDNS answers for a headless
//! Service with no ready pod; a name set to no addresses answers NOERROR with no records. The server
//! can also be told to go silent or to fail, to test what a client does when its resolver does.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

/// How the server treats queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsMode {
    /// Answer from the table.
    Answer,
    /// Read queries and never answer: a resolver that hangs.
    Silent,
    /// Answer every query with SERVFAIL.
    ServFail,
}

#[derive(Debug)]
struct Table {
    ttl: u32,
    mode: DnsMode,
    names: HashMap<LowerName, Vec<Ipv4Addr>>,
}

#[derive(Debug, Clone)]
struct Handler {
    table: Arc<Mutex<Table>>,
    queries: Arc<AtomicU64>,
}

/// A running DNS server. It stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    handler: Handler,
    server: Server<Handler>,
}

impl DnsServer {
    /// Starts a server on `ip`, on a port the system picks, answering with TTL 5 s (CoreDNS's
    /// default in k3s) until [`DnsServer::set_ttl`] says otherwise.
    pub async fn start(ip: Ipv4Addr) -> io::Result<Self> {
        // UDP and TCP must share a port: a resolver falls back to TCP on the same address.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind((ip, 0)).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind((ip, port)).await {
                Ok(tcp) => break (udp, tcp),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        };
        Self::serve(udp, tcp)
    }

    /// Starts a server on exactly `addr` (port 53 where a client cannot be told another port,
    /// such as Docker's embedded DNS forwarding to `--dns` servers).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        Self::serve(udp, tcp)
    }

    fn serve(udp: UdpSocket, tcp: TcpListener) -> io::Result<Self> {
        let addr = udp.local_addr()?;
        let handler = Handler {
            table: Arc::new(Mutex::new(Table {
                ttl: 5,
                mode: DnsMode::Answer,
                names: HashMap::new(),
            })),
            queries: Arc::new(AtomicU64::new(0)),
        };
        let mut server = Server::new(handler.clone());
        server.register_socket(udp);
        server.register_listener(tcp, std::time::Duration::from_secs(5), 64);
        Ok(Self {
            addr,
            handler,
            server,
        })
    }

    /// The address to point a resolver at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the A records of `name` (a fully qualified name, with or without the final dot).
    /// An empty list answers NOERROR with no records.
    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        let name = lower_name(name);
        self.table().names.insert(name, ips.to_vec());
    }

    /// Removes `name`: queries for it get NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.table().names.remove(&lower_name(name));
    }

    /// The TTL of every answer from now on.
    pub fn set_ttl(&self, seconds: u32) {
        self.table().ttl = seconds;
    }

    /// Answer, go silent or fail.
    pub fn set_mode(&self, mode: DnsMode) {
        self.table().mode = mode;
    }

    /// How many queries arrived so far (answered or not).
    pub fn queries(&self) -> u64 {
        self.handler.queries.load(Ordering::Relaxed)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.handler.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

fn lower_name(name: &str) -> LowerName {
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    LowerName::new(&Name::from_ascii(&fqdn).unwrap_or_else(|e| panic!("bad DNS name {name}: {e}")))
}

enum Answer {
    Drop,
    Code(ResponseCode),
    Records(Vec<Record>),
}

impl Handler {
    fn answer(&self, request: &Request) -> Answer {
        let Some(query) = request.queries.queries().first() else {
            return Answer::Code(ResponseCode::FormErr);
        };
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.mode {
            DnsMode::Silent => return Answer::Drop,
            DnsMode::ServFail => return Answer::Code(ResponseCode::ServFail),
            DnsMode::Answer => {}
        }
        let Some(ips) = table.names.get(query.name()) else {
            return Answer::Code(ResponseCode::NXDomain);
        };
        if query.query_type() != RecordType::A {
            return Answer::Records(Vec::new());
        }
        let name = Name::from(query.name().clone());
        Answer::Records(
            ips.iter()
                .map(|ip| Record::from_rdata(name.clone(), table.ttl, RData::A(A(*ip))))
                .collect(),
        )
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let sent = match self.answer(request) {
            Answer::Drop => {
                // Never answered: the client times out, as with a resolver that is down.
                let mut info = Metadata::response_from_request(&request.metadata);
                info.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: info,
                    counts: Default::default(),
                });
            }
            Answer::Code(code) => {
                response_handle
                    .send_response(builder.error_msg(&request.metadata, code))
                    .await
            }
            Answer::Records(records) => {
                let response = builder.build(metadata, records.iter(), [], [], []);
                response_handle.send_response(response).await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "test DNS server could not send a response");
            let mut info = Metadata::response_from_request(&request.metadata);
            info.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: info,
                counts: Default::default(),
            })
        })
    }
}
