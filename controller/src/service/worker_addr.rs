//! A worker's address as the operator wrote it: an IP address or a host name, and a
//! port. Names are resolved again at every connection attempt, so a worker that comes
//! back under the same name at a new address (a rescheduled Kubernetes pod behind its
//! StatefulSet name) is found again. Resolution runs on glommio's blocking pool: a slow
//! DNS server never stalls the scheduler's executor.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// `host:port`, `ip:port` or `[ipv6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerAddr {
    host: String,
    port: u16,
}

impl WorkerAddr {
    /// The host as written (a name or an IP address): what a worker's TLS
    /// certificate must name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The socket address to dial now: the address itself, or the first address the
    /// name resolves to.
    pub async fn resolve(&self) -> io::Result<SocketAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let (host, port) = (self.host.clone(), self.port);
        glommio::executor()
            .spawn_blocking(move || {
                (host.as_str(), port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                    })
            })
            .await
    }
}

impl From<SocketAddr> for WorkerAddr {
    fn from(a: SocketAddr) -> Self {
        Self {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl FromStr for WorkerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{s}`: `{port}` is not a port number"))?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "`{s}`: `{host}` is neither an IP address nor a host name"
            ));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for WorkerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerAddr;

    #[test]
    fn addresses_and_names_parse_and_print_back() {
        for s in [
            "127.0.0.1:12345",
            "[::1]:12345",
            "gpu-host-1:12345",
            "clockwork-worker-0.clockwork-worker.clockwork.svc.cluster.local:12345",
        ] {
            let a: WorkerAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        for (s, why) in [
            ("gpu-host-1", "not host:port"),
            ("gpu-host-1:http", "not a port number"),
            ("gpu-host-1:70000", "not a port number"),
            (":12345", "neither an IP address nor a host name"),
            ("bad_name:12345", "neither an IP address nor a host name"),
            ("-x.example:1", "neither an IP address nor a host name"),
        ] {
            let e = s.parse::<WorkerAddr>().unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn names_resolve_off_the_executor() {
        let cfg = clockwork_net::runtime::ExecutorConfig::named("resolve-test");
        let (ip, name, missing) = clockwork_net::runtime::run_here(cfg, async {
            let ip: WorkerAddr = "127.0.0.1:7".parse().unwrap();
            let name: WorkerAddr = "localhost:7".parse().unwrap();
            let missing: WorkerAddr = "no-such-host.invalid:7".parse().unwrap();
            (
                ip.resolve().await.unwrap(),
                name.resolve().await.unwrap(),
                missing.resolve().await.is_err(),
            )
        })
        .unwrap();
        assert_eq!(ip, "127.0.0.1:7".parse::<std::net::SocketAddr>().unwrap());
        assert!(name.ip().is_loopback(), "{name}");
        assert_eq!(name.port(), 7);
        assert!(missing);
    }
}
