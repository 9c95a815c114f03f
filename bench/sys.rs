//! Process measurements (CPU time, peak RSS) and measuring in child
//! processes, so that each size gets its own peak and a pathological size
//! can be cut off at a time budget without losing what it printed so far.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

/// `struct rusage` on 64-bit Linux: two timevals, then 14 longs.
#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    _rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// User + system CPU time of this process so far (getrusage(RUSAGE_SELF)).
pub fn cpu_time() -> Duration {
    let mut r = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        _rest: [0; 14],
    };
    // SAFETY: `r` is a valid, writable `struct rusage` for 64-bit Linux; 0 is RUSAGE_SELF.
    let rc = unsafe { getrusage(0, &mut r) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: &Timeval| Duration::from_secs(t.sec as u64) + Duration::from_micros(t.usec as u64);
    tv(&r.utime) + tv(&r.stime)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak resident set size so far, in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") as f64 / 1024.0
}

/// Current resident set size, in MiB (`VmRSS`).
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") as f64 / 1024.0
}

/// Resets `VmHWM` to the current RSS (Linux: `5` to /proc/self/clear_refs), so
/// that the peak measured next belongs to what runs next, not to setup.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs this binary with `args`, collecting its stdout lines until it exits
/// or `budget` has passed (then it is killed). Returns the lines and whether
/// it finished.
pub fn child(args: &[String], budget: Duration) -> (Vec<String>, bool) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut c = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting a measurement child");
    let stdout = c.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + budget;
    let mut lines = vec![];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let ok = c.wait().map(|s| s.success()).unwrap_or(false);
                return (lines, ok);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = c.kill();
                let _ = c.wait();
                return (lines, false);
            }
        }
    }
}
