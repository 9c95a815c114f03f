//! Delivering `--notify` documents: an HTTP/1.1 POST per document, from a
//! background thread per URL with a bounded queue, so that a slow or dead
//! endpoint never stops or slows the upgrade (a full queue drops, a failed
//! POST is given up after its timeout; each says so once).
//!
//! Plain `http://` only: the build has no TLS stack (bollard is built
//! without its TLS features, hyper comes without one, and nothing else
//! brings rustls or OpenSSL), and one is not worth adding for this; an
//! `https://` endpoint is reached through a local relay. Webhook URLs carry
//! tokens in their path or query, so a URL is only ever shown as
//! `http://host:port/…`.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::usage;

/// Documents waiting per URL; beyond that, new ones are dropped.
const QUEUE: usize = 64;

/// A `--notify` URL, checked.
#[derive(Clone)]
pub struct Endpoint {
    url: url::Url,
}

impl Endpoint {
    /// Parses a `--notify` value; errors never repeat the URL's path or query.
    pub fn parse(s: &str) -> anyhow::Result<Endpoint> {
        let url = url::Url::parse(s).map_err(|e| {
            usage(format!(
                "--notify {}: not a URL ({e}); give http://HOST[:PORT]/PATH",
                redact_str(s)
            ))
        })?;
        let shown = Endpoint { url: url.clone() };
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(usage(format!(
                    "--notify {shown}: https is not supported (swarm-upgrade has no TLS stack); \
                     post to a local relay over http instead (e.g. http://127.0.0.1:PORT/…)"
                )));
            }
            other => {
                return Err(usage(format!(
                    "--notify {shown}: scheme {other}: is not supported; give http://HOST[:PORT]/PATH"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(usage(format!("--notify {shown}: the URL has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(usage(format!(
                "--notify {shown}: credentials in the URL (user:password@) are not supported; \
                 webhooks carry their token in the path or query"
            )));
        }
        Ok(shown)
    }
}

/// `http://host:port/…`: never the path or query, where tokens live.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        )?;
        if let Some(p) = self.url.port() {
            write!(f, ":{p}")?;
        }
        if self.url.path() != "/" || self.url.query().is_some() {
            write!(f, "/…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What can be shown of a string that did not parse as a URL: its scheme
/// and host, and nothing of a string that does not even look like one.
fn redact_str(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return "(value not shown)".into();
    };
    let scheme = format!("{scheme}://");
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    let more = if rest.len() > host.len() { "/…" } else { "" };
    format!("{scheme}{host}{more}")
}

/// One background sender per URL.
struct Sender {
    endpoint: Endpoint,
    tx: SyncSender<Arc<Vec<u8>>>,
    /// Queued and not yet sent or given up.
    pending: Arc<AtomicUsize>,
    dropped: AtomicBool,
    thread: JoinHandle<()>,
}

/// The `--notify` URLs' senders, and the warnings they have to give.
pub struct Webhooks {
    senders: Vec<Sender>,
    timeout: Duration,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Webhooks {
    /// Starts a sender per endpoint; each POST is given up after `timeout`.
    pub fn start(endpoints: &[Endpoint], timeout: Duration) -> Webhooks {
        let warnings = Arc::new(Mutex::new(vec![]));
        let senders = endpoints
            .iter()
            .map(|e| {
                let (tx, rx) = sync_channel(QUEUE);
                let pending = Arc::new(AtomicUsize::new(0));
                let thread = std::thread::Builder::new()
                    .name("notify".into())
                    .spawn({
                        let (e, pending, warnings) = (e.clone(), pending.clone(), warnings.clone());
                        move || deliver(&e, &rx, &pending, &warnings, timeout)
                    })
                    .expect("starting a notification thread");
                Sender {
                    endpoint: e.clone(),
                    tx,
                    pending,
                    dropped: AtomicBool::new(false),
                    thread,
                }
            })
            .collect();
        Webhooks {
            senders,
            timeout,
            warnings,
        }
    }

    /// Queues `body` for every URL; never blocks.
    pub fn send(&self, body: Vec<u8>) {
        let body = Arc::new(body);
        for s in &self.senders {
            s.pending.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = s.tx.try_send(body.clone()) {
                s.pending.fetch_sub(1, Ordering::SeqCst);
                if matches!(e, TrySendError::Full(_)) && !s.dropped.swap(true, Ordering::SeqCst) {
                    self.warn(format!(
                        "notifications to {} are falling behind: {QUEUE} are waiting, newer ones are dropped",
                        s.endpoint
                    ));
                }
            }
        }
    }

    /// The warnings given since the last call.
    pub fn warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    fn warn(&self, w: String) {
        self.warnings.lock().expect("warnings lock").push(w);
    }

    /// At the end of the run: lets each sender finish its queue for at most
    /// one POST timeout (they post in parallel), then returns the warnings,
    /// with what was left undelivered.
    pub fn finish(self) -> Vec<String> {
        let deadline = Instant::now() + self.timeout;
        let mut left = vec![];
        for s in self.senders {
            drop(s.tx);
            while !s.thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if s.thread.is_finished() {
                let _ = s.thread.join();
            } else {
                left.push((s.endpoint, s.pending.load(Ordering::SeqCst)));
            }
        }
        let mut warnings = std::mem::take(&mut *self.warnings.lock().expect("warnings lock"));
        for (e, n) in left {
            warnings.push(format!(
                "{n} notification(s) to {e} not delivered when the run ended"
            ));
        }
        warnings
    }
}

/// A sender's loop: posts each document in order until the queue closes.
/// Warns on its endpoint's first failure only.
fn deliver(
    e: &Endpoint,
    rx: &Receiver<Arc<Vec<u8>>>,
    pending: &AtomicUsize,
    warnings: &Mutex<Vec<String>>,
    timeout: Duration,
) {
    let mut warned = false;
    for body in rx {
        if let Err(err) = post(&e.url, &body, timeout)
            && !warned
        {
            warned = true;
            warnings.lock().expect("warnings lock").push(format!(
                "notification to {e} failed ({err}); the upgrade goes on, and further failures of this URL are not reported"
            ));
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// POSTs `body` as JSON to `url`; Ok on a 2xx answer. Every step is
/// bounded by what is left of `timeout` (name resolution excepted, which
/// runs in this background thread and only delays later notifications).
fn post(url: &url::Url, body: &[u8], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("timed out after {}", humantime::format_duration(timeout)))
    };
    let addrs = url
        .socket_addrs(|| Some(80))
        .map_err(|e| format!("cannot resolve the host: {e}"))?;
    let mut stream = None;
    let mut last = String::from("the host has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: swarm-upgrade/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("sending: {e}"))?;
    // The status line is enough: the body of the answer is not ours to read.
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < 1024 {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.lines().next().unwrap_or("");
    let code: Option<u16> = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..300).contains(&c) => Ok(()),
        Some(c) => Err(format!("answered HTTP {c}")),
        None => Err("no HTTP answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_are_shown_without_their_path_or_query() {
        let e = Endpoint::parse("http://hooks.example.com/services/T0/B0/SECRET?token=x").unwrap();
        assert_eq!(e.to_string(), "http://hooks.example.com/…");
        let e = Endpoint::parse("http://127.0.0.1:9999/").unwrap();
        assert_eq!(e.to_string(), "http://127.0.0.1:9999");
        for bad in [
            "https://hooks.example.com/services/SECRET",
            "ftp://x/SECRET",
            "http://user:SECRET@x/",
            "not a url SECRET",
        ] {
            let err = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("--notify "), "{err}");
            assert!(!err.contains("SECRET"), "{bad}: {err}");
            assert_eq!(
                crate::error::exit_code_of(&Endpoint::parse(bad).unwrap_err()),
                2
            );
        }
        assert!(
            Endpoint::parse("https://x/y")
                .unwrap_err()
                .to_string()
                .contains("local relay")
        );
    }

    /// A listener that answers `status` to each request and hands over the
    /// requests it read.
    fn listener(status: &'static str) -> (String, Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook/SECRET?x=1", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let mut c = c.unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = c.read(&mut buf).unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        if body.len() >= len || n == 0 {
                            break;
                        }
                    }
                }
                let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
            }
        });
        (url, rx)
    }

    #[test]
    fn documents_are_posted_in_order_as_json() {
        let (url, rx) = listener("200 OK");
        let hooks = Webhooks::start(&[Endpoint::parse(&url).unwrap()], Duration::from_secs(5));
        hooks.send(br#"{"text":"one"}"#.to_vec());
        hooks.send(br#"{"text":"two"}"#.to_vec());
        assert!(hooks.finish().is_empty());
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            first.starts_with("POST /hook/SECRET?x=1 HTTP/1.1\r\n"),
            "{first}"
        );
        assert!(
            first.contains("\r\nContent-Type: application/json\r\n"),
            "{first}"
        );
        assert!(first.ends_with(r#"{"text":"one"}"#), "{first}");
        let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(second.ends_with(r#"{"text":"two"}"#), "{second}");
    }

    #[test]
    fn a_failing_endpoint_warns_once_without_its_token() {
        let (url, _rx) = listener("500 Internal Server Error");
        let hooks = Webhooks::start(&[Endpoint::parse(&url).unwrap()], Duration::from_secs(5));
        for _ in 0..3 {
            hooks.send(b"{}".to_vec());
        }
        let w = hooks.finish();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("answered HTTP 500"), "{w:?}");
        assert!(!w[0].contains("SECRET"), "{w:?}");
    }

    #[test]
    fn an_endpoint_that_never_answers_costs_the_run_nothing_and_one_timeout_at_the_end() {
        // Accepts connections (the kernel's backlog) but never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/SECRET", l.local_addr().unwrap());
        let hooks = Webhooks::start(
            &[Endpoint::parse(&url).unwrap()],
            Duration::from_millis(300),
        );
        let t = Instant::now();
        for _ in 0..(QUEUE + 10) {
            hooks.send(vec![b'x'; 10]);
        }
        assert!(t.elapsed() < Duration::from_millis(100), "send never waits");
        let w = hooks.finish();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "finish waits one timeout"
        );
        assert!(
            w.iter().any(|w| w.contains("falling behind")),
            "a full queue says so: {w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.contains("not delivered when the run ended")),
            "{w:?}"
        );
        assert!(w.iter().all(|w| !w.contains("SECRET")), "{w:?}");
        drop(l);
    }
}
