//! The lab's connectivity probe (std only: it is copied into a minimal image in every node).
//!
//! A Rust reimplementation of the client/server pair of Docker's swarm-upgrade test
//! procedure: while the swarm is being upgraded, clients keep asking servers over an overlay
//! network and log every outcome, so that any interruption shows up afterwards.
//!
//! `probe server [--port 8080]` answers every TCP connection with one line.
//!
//! `probe client [--target probe-server:8080] [--dir /data] [--interval-ms 100]
//! [--timeout-ms 1000]` every interval resolves the target name (libc resolver, i.e. the
//! swarm's embedded DNS, which returns every task of a dnsrr service), tries the addresses in
//! turn starting at a rotating index and fails over to the next one on any error; the request
//! fails when no server answered within the timeout. Each outcome is appended as one line to
//! DIR/<slot>-<hostname>.log: `<RFC 3339 UTC, ms> <slot> ok|fail <detail>`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => Err(
            "usage: probe server [--port N] | probe client [--target HOST:PORT] [--dir DIR] \
             [--interval-ms N] [--timeout-ms N]"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` from the arguments, or the default.
fn flag(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn server(args: &[String]) -> Result<(), String> {
    let port = flag(args, "--port", "8080");
    let listener =
        TcpListener::bind(format!("0.0.0.0:{port}")).map_err(|e| format!("bind :{port}: {e}"))?;
    let reply = format!("probe-server {}\n", hostname());
    eprintln!("probe: server listening on :{port}");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let reply = reply.clone();
        // One short-lived thread per connection: answering must never wait on a slow peer.
        thread::spawn(move || {
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = conn.write_all(reply.as_bytes());
        });
    }
    Ok(())
}

fn client(args: &[String]) -> Result<(), String> {
    let target = flag(args, "--target", "probe-server:8080");
    let dir = PathBuf::from(flag(args, "--dir", "/data"));
    let interval = Duration::from_millis(parse_ms(&flag(args, "--interval-ms", "100"))?);
    let timeout = Duration::from_millis(parse_ms(&flag(args, "--timeout-ms", "1000"))?);
    let (host, port) = target
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("--target {target:?} is not HOST:PORT"))?;
    let slot = std::env::var("PROBE_SLOT").unwrap_or_else(|_| "0".to_string());
    if slot.parse::<u32>().is_err() {
        return Err(format!("PROBE_SLOT={slot:?} is not a number"));
    }
    let path = dir.join(format!("{slot}-{}.log", hostname()));
    let mut log: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    eprintln!(
        "probe: client slot {slot} -> {target}, logging to {}",
        path.display()
    );

    let resolver = Resolver::default();
    let mut rotation = 0usize;
    let mut next = Instant::now();
    loop {
        let sent_at = SystemTime::now();
        let outcome = request(&resolver, &host, port, rotation, timeout);
        rotation = rotation.wrapping_add(1);
        let line = match outcome {
            Ok(detail) => format!("{} {slot} ok {detail}\n", rfc3339_millis(sent_at)),
            Err(detail) => format!("{} {slot} fail {detail}\n", rfc3339_millis(sent_at)),
        };
        // One write per line, so that a reader never sees two records interleaved.
        if let Err(e) = log.write_all(line.as_bytes()) {
            eprintln!("probe: cannot write {}: {e}", path.display());
        }
        // Fixed rate: a slow request eats into the pause rather than shifting the schedule,
        // but a request slower than the interval does not cause a burst to catch up.
        next += interval;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

fn parse_ms(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))
}

/// Name resolution with a deadline. getaddrinfo cannot be cancelled, so it runs on a helper
/// thread; at most one lookup is outstanding, so a hung resolver cannot pile up threads.
#[derive(Default)]
struct Resolver {
    busy: Arc<AtomicBool>,
}

impl Resolver {
    fn resolve(&self, host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err("dns: previous lookup still pending".to_string());
        }
        let (tx, rx) = mpsc::channel();
        let busy = Arc::clone(&self.busy);
        let name = host.to_string();
        thread::spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            busy.store(false, Ordering::SeqCst);
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(addrs)) if addrs.is_empty() => Err(format!("dns: no address for {host}")),
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(format!("dns: {host}: {e}")),
            Err(_) => Err(format!(
                "dns: {host}: no answer within {} ms",
                timeout.as_millis()
            )),
        }
    }
}

/// One request: Ok(detail) from the first server that answered, Err(detail) otherwise.
fn request(
    resolver: &Resolver,
    host: &str,
    port: u16,
    rotation: usize,
    timeout: Duration,
) -> Result<String, String> {
    let start = Instant::now();
    let mut addrs = resolver.resolve(host, port, timeout)?;
    addrs.sort();
    addrs.dedup();
    let first = rotation % addrs.len();
    addrs.rotate_left(first);
    let left = timeout.saturating_sub(start.elapsed());
    match first_answer(&addrs, left, ask) {
        Ok((addr, answer)) => {
            let ms = start.elapsed().as_millis();
            Ok(format!("{addr} {ms}ms {answer}"))
        }
        Err(errors) => Err(format!(
            "no server answered within {} ms ({} addresses): {}",
            timeout.as_millis(),
            addrs.len(),
            if errors.is_empty() {
                "timed out".to_string()
            } else {
                errors.join("; ")
            }
        )),
    }
}

/// Ask the addresses in turn until one answers, within `budget` overall. Each attempt gets
/// an even share of what is left for the untried addresses: a server that hangs (e.g. a task
/// on a node that just went away, still listed by DNS) must not use the whole budget and so
/// keep the client from failing over to the servers that are up.
fn first_answer(
    addrs: &[SocketAddr],
    budget: Duration,
    mut ask: impl FnMut(&SocketAddr, Duration) -> Result<String, String>,
) -> Result<(SocketAddr, String), Vec<String>> {
    let deadline = Instant::now() + budget;
    let mut errors = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match ask(addr, share) {
            Ok(answer) => return Ok((*addr, answer)),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(errors)
}

fn ask(addr: &SocketAddr, left: Duration) -> Result<String, String> {
    let conn = TcpStream::connect_timeout(addr, left).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let line = line.trim();
    if line.is_empty() {
        return Err("connection closed without an answer".to_string());
    }
    Ok(line.to_string())
}

/// RFC 3339 UTC with milliseconds, e.g. 2025-11-21T10:00:00.123Z (std has no formatter).
fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_humantime() {
        // Every ~11 days over 60 years, plus leap days and odd milliseconds.
        let mut secs = 0u64;
        while secs < 60 * 365 * 86_400 {
            let t = UNIX_EPOCH + Duration::from_millis(secs * 1000 + secs % 1000);
            assert_eq!(
                rfc3339_millis(t),
                humantime::format_rfc3339_millis(t).to_string()
            );
            secs += 950_401;
        }
        let leap = humantime::parse_rfc3339("2024-02-29T23:59:59.999Z").unwrap();
        assert_eq!(rfc3339_millis(leap), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn a_hanging_server_leaves_time_to_fail_over() {
        let addrs: Vec<SocketAddr> = ["10.0.1.3:8080", "10.0.1.4:8080", "10.0.1.5:8080"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut shares = Vec::new();
        // The first server hangs for its whole share; the second answers.
        let got = first_answer(&addrs, Duration::from_millis(900), |addr, share| {
            shares.push(share);
            if *addr == addrs[0] {
                thread::sleep(share);
                Err("connection timed out".into())
            } else {
                Ok("probe-server b".into())
            }
        })
        .unwrap();
        assert_eq!(got.0, addrs[1]);
        assert!(shares[0] <= Duration::from_millis(300), "{shares:?}");
        assert!(shares[1] >= Duration::from_millis(250), "{shares:?}");

        // Nobody answers: every address was tried and is named.
        let errors = first_answer(&addrs, Duration::from_millis(300), |_, share| {
            thread::sleep(share);
            Err("connection timed out".into())
        })
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[2].starts_with("10.0.1.5:8080"));
    }

    #[test]
    fn flags_have_defaults() {
        let args: Vec<String> = ["--port", "9"].iter().map(|s| s.to_string()).collect();
        assert_eq!(flag(&args, "--port", "8080"), "9");
        assert_eq!(flag(&args, "--dir", "/data"), "/data");
    }

    #[test]
    fn a_request_fails_over_and_reports_every_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let _ = c.write_all(b"probe-server test\n");
            }
        });
        let resolver = Resolver::default();
        let ok = request(&resolver, "127.0.0.1", port, 0, Duration::from_secs(1)).unwrap();
        assert!(ok.ends_with("probe-server test"), "{ok}");

        // Port 1 on localhost refuses: the request fails, naming the address.
        let err = request(&resolver, "127.0.0.1", 1, 0, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("127.0.0.1:1"), "{err}");
        let err = request(
            &resolver,
            "no-such-host.invalid",
            1,
            0,
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(err.starts_with("dns:"), "{err}");
    }
}
