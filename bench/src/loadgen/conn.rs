//! The load generator's HTTP/1.1 side: the target URL, request byte templates built
//! once per (model, SLO class), and one keep-alive connection on glommio that sends a
//! template and reads the answer's head with `httparse`.
//!
//! One request is outstanding per connection (no pipelining: servers such as ours
//! answer a connection's requests in order, so pipelining would queue them behind
//! each other). A connection that fails is dropped and reopened by the next request.
//! There is no per-read timeout (it would cost a timer per read): the run's end
//! bounds how long an answer is waited for, and requests still open then are counted
//! as unanswered errors.

use super::driver::{Answer, Exchange};
use anyhow::{anyhow, bail, Context as _};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Where the requests go: `http://host[:port][/prefix]`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The resolved address.
    pub(crate) addr: SocketAddr,
    /// The `Host` header's value.
    pub(crate) host: String,
    /// A path prefix before `/v2/...` (empty for most servers).
    pub(crate) prefix: String,
}

impl Target {
    /// Parse and resolve `url` (only `http://`).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url {url}: only http:// URLs are supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("--url {url}: no host");
        }
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("--url {url}: cannot resolve {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("--url {url}: {with_port} resolves to no address"))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// The SLO parameter a request carries: `parameters.timeout` in microseconds (the
/// Open Inference Protocol's reserved name, as Triton and Clockwork-RS read it).
pub(crate) fn body_with_timeout(
    template: &serde_json::Value,
    slo: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    let mut body = template.clone();
    let obj = body
        .as_object_mut()
        .ok_or_else(|| anyhow!("the request body must be a JSON object"))?;
    if let Some(slo) = slo {
        let params = obj
            .entry("parameters")
            .or_insert_with(|| serde_json::json!({}));
        let params = params
            .as_object_mut()
            .ok_or_else(|| anyhow!("the body's `parameters` must be a JSON object"))?;
        params.insert(
            "timeout".into(),
            serde_json::json!(u64::try_from(slo.as_micros()).unwrap_or(u64::MAX)),
        );
    }
    Ok(serde_json::to_vec(&body)?)
}

/// Whole HTTP requests, one per (model, SLO class), built once.
#[derive(Debug)]
pub(crate) struct Templates {
    requests: Vec<Vec<u8>>,
    classes: usize,
}

impl Templates {
    /// `POST {prefix}/v2/models/{model}/infer` for every model and SLO class, with the
    /// body `template` plus the class's timeout.
    pub(crate) fn build(
        target: &Target,
        models: &[String],
        slos: &[Option<Duration>],
        template: &serde_json::Value,
    ) -> anyhow::Result<Self> {
        let classes = slos.len().max(1);
        let bodies = slos
            .iter()
            .map(|&s| body_with_timeout(template, s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut requests = Vec::with_capacity(models.len() * classes);
        for m in models {
            if m.is_empty() || m.bytes().any(|b| b <= b' ' || b == b'/' || b >= 0x7f) {
                bail!("model name {m:?}: must be non-empty printable ASCII without / or spaces");
            }
            for body in &bodies {
                let mut r = format!(
                    "POST {}/v2/models/{m}/infer HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    target.prefix,
                    target.host,
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                requests.push(r);
            }
        }
        Ok(Self { requests, classes })
    }

    /// The request for `model` in `class`.
    pub(crate) fn get(&self, model: u32, class: u8) -> &[u8] {
        let i = model as usize * self.classes + usize::from(class);
        self.requests.get(i).map_or(&[], Vec::as_slice)
    }
}

/// The longest response head read (bytes); a larger one is an error.
const MAX_HEAD: usize = 64 * 1024;
/// The largest response body read (bytes).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Headers parsed per response.
const MAX_HEADERS: usize = 48;

/// One keep-alive HTTP/1.1 connection to the target.
#[derive(Debug)]
pub(crate) struct HttpConn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpConn {
    /// A connection to `addr`, opened on first use.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: vec![0; 16 * 1024],
        }
    }

    /// Open the connection now (it is otherwise opened by the first request).
    pub(crate) async fn open(&mut self) -> std::io::Result<()> {
        self.stream().await.map(|_| ())
    }

    async fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no stream"))
    }

    /// Send `request` and read one response. `Err((true, _))`: the connection was
    /// reused and closed before any byte of the answer came (the server dropped an
    /// idle connection), so the request may be sent again on a new one.
    async fn try_exchange(&mut self, request: &[u8]) -> Result<Answer, (bool, String)> {
        let reused = self.stream.is_some();
        if let Err(e) = self.stream().await {
            return Err((false, format!("connect {}: {e}", self.addr)));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err((false, "connect: no stream".into()));
        };
        let result = match stream.write_all(request).await {
            Err(e) => Err((reused, format!("write: {e}"))),
            Ok(()) => read_response(stream, &mut self.buf, reused).await,
        };
        if !matches!(&result, Ok(a) if a.keep_alive) {
            self.stream = None;
        }
        result
    }
}

impl Exchange for HttpConn {
    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, String> {
        match self.try_exchange(request).await {
            Ok(a) => Ok(a),
            Err((true, _)) => self.try_exchange(request).await.map_err(|(_, e)| e),
            Err((false, e)) => Err(e),
        }
    }
}

/// Read one response into `buf` (reused, grown as needed): its status, `Retry-After`
/// and whether the connection stays open; the body is read and dropped.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    reused: bool,
) -> Result<Answer, (bool, String)> {
    let mut filled = 0usize;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err((false, format!("response head over {MAX_HEAD} bytes")));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|e| (reused && filled == 0, format!("read: {e}")))?;
        if n == 0 {
            return Err((
                reused && filled == 0,
                "the server closed the connection".into(),
            ));
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err((false, format!("bad response: {e}"))),
        };
        let status = resp.code.unwrap_or(0);
        let mut content_length = None;
        let mut retry_after = None;
        let mut keep_alive = resp.version == Some(1);
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                content_length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if content_length.is_none() {
                    return Err((false, "bad Content-Length".into()));
                }
            } else if h.name.eq_ignore_ascii_case("retry-after") {
                // Delta-seconds only; an HTTP date is ignored (the policy's default).
                retry_after = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = h.value.to_ascii_lowercase();
                if v.windows(5).any(|w| w == b"close") {
                    keep_alive = false;
                } else if v.windows(10).any(|w| w == b"keep-alive") {
                    keep_alive = true;
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err((
                    false,
                    "chunked responses are not supported (the server must send Content-Length)"
                        .into(),
                ));
            }
        }
        let Some(body_len) = content_length else {
            return Err((false, format!("HTTP {status} without Content-Length")));
        };
        if body_len > MAX_BODY {
            return Err((false, format!("response body of {body_len} bytes")));
        }
        // Read the rest of the body (discarded), reusing the buffer.
        let total = head_len + body_len;
        let mut have = filled.min(total);
        if filled > total {
            return Err((
                false,
                "bytes after the response (the server answered unasked)".into(),
            ));
        }
        while have < total {
            let want = (total - have).min(buf.len());
            let n = stream
                .read(&mut buf[..want])
                .await
                .map_err(|e| (false, format!("read: {e}")))?;
            if n == 0 {
                return Err((false, "the server closed the connection mid-body".into()));
            }
            have += n;
        }
        return Ok(Answer {
            status,
            retry_after,
            keep_alive,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = Target::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8000".parse::<SocketAddr>().unwrap());
        assert_eq!(t.host, "127.0.0.1:8000");
        assert_eq!(t.prefix, "");
        let t = Target::parse("http://127.0.0.1:9/kserve/").unwrap();
        assert_eq!(t.prefix, "/kserve");
        let t = Target::parse("http://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn templates_carry_the_timeout_in_microseconds() {
        let t = Target::parse("http://127.0.0.1:8000").unwrap();
        let body = serde_json::json!({"inputs": [], "parameters": {"x": 1}});
        let slos = [Some(Duration::from_micros(2500)), None];
        let tpl = Templates::build(&t, &["m0".into(), "m1".into()], &slos, &body).unwrap();
        let template = body;
        let r = String::from_utf8(tpl.get(1, 0).to_vec()).unwrap();
        assert!(
            r.starts_with("POST /v2/models/m1/infer HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"),
            "{r}"
        );
        let (head, sent) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", sent.len())));
        let v: serde_json::Value = serde_json::from_str(sent).unwrap();
        assert_eq!(v["parameters"]["timeout"], 2500);
        assert_eq!(v["parameters"]["x"], 1);
        let r = String::from_utf8(tpl.get(0, 1).to_vec()).unwrap();
        assert!(!r.contains("timeout"), "{r}");
        assert!(Templates::build(&t, &["a b".into()], &slos, &template).is_err());
        assert!(body_with_timeout(&serde_json::json!([1]), None).is_err());
    }
}
