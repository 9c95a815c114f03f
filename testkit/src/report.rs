//! Probe report: what the probe clients saw while the swarm was being changed.
//!
//! Every probe client appends one line per request to /data/<slot>-<hostname>.log on the
//! node it runs on (`probe-data` volume):
//!
//! ```text
//! 2025-11-21T10:00:00.123Z 1 ok 10.0.1.5:8080 2ms probe-server 3f2a...
//! 2025-11-21T10:00:00.223Z 1 fail no server answered within 1s: 10.0.1.5:8080: refused
//! ```
//!
//! A task moved to another node starts a new file there; records are merged per slot. All
//! functions here are pure so that the arithmetic can be tested without a lab.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A period longer than this with no record is a gap (the client was not running, e.g.
/// because its task was being moved off a drained node).
pub const GAP_THRESHOLD: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: SystemTime,
    pub slot: u32,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReport {
    pub slot: u32,
    pub sent: u64,
    pub failed: u64,
    pub longest_failure_streak_ms: u64,
    /// When the longest failure streak began (RFC 3339), null without failures.
    pub longest_failure_streak_at: Option<String>,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub sent: u64,
    pub failed: u64,
    /// The longest streak of any client.
    pub longest_failure_streak_ms: u64,
    pub longest_failure_streak_at: Option<String>,
    /// Periods in which no client at all recorded anything.
    pub gaps: Vec<Gap>,
    pub clients: Vec<ClientReport>,
    /// The first failed requests as `<time> slot <n> <detail>`, so that a test that finds
    /// failures can say what failed and when (to line up with the run's journal).
    #[serde(default)]
    pub first_failures: Vec<String>,
}

/// How many failed requests a report lists by line.
pub const LISTED_FAILURES: usize = 20;

/// Parse one log line. `None` for blank lines.
pub fn parse_line(line: &str) -> Option<Result<Record>> {
    let line = line.trim_end();
    if line.trim().is_empty() {
        return None;
    }
    Some(
        (|| {
            let mut words = line.splitn(4, ' ');
            let at = words.next().context("no timestamp")?;
            let at = humantime::parse_rfc3339_weak(at)
                .with_context(|| format!("bad timestamp {at:?}"))?;
            let slot = words.next().context("no slot")?;
            let slot = slot.parse().with_context(|| format!("bad slot {slot:?}"))?;
            let ok = match words.next().context("no outcome")? {
                "ok" => true,
                "fail" => false,
                other => anyhow::bail!("bad outcome {other:?}"),
            };
            Ok(Record {
                at,
                slot,
                ok,
                detail: words.next().unwrap_or("").to_string(),
            })
        })()
        .with_context(|| format!("probe log line {line:?}")),
    )
}

/// Parse a whole log. A last line without newline may be half written (read while the
/// client was writing) and is ignored; any other malformed line is returned as a warning.
pub fn parse_log(text: &str) -> (Vec<Record>, Vec<String>) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for line in complete.lines() {
        match parse_line(line) {
            Some(Ok(r)) => records.push(r),
            Some(Err(e)) => warnings.push(format!("{e:#}")),
            None => {}
        }
    }
    (records, warnings)
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Gaps longer than `threshold` between consecutive timestamps (sorted input).
fn gaps(times: &[SystemTime], threshold: Duration) -> Vec<Gap> {
    times
        .windows(2)
        .filter_map(|w| {
            let d = w[1].duration_since(w[0]).unwrap_or_default();
            (d > threshold).then(|| Gap {
                from: rfc3339(w[0]),
                to: rfc3339(w[1]),
            })
        })
        .collect()
}

/// Longest run of consecutive failures of one client (sorted records), as (duration, start).
///
/// A streak lasts from its first failed request until the next successful one: that is how
/// long the client could not get an answer. A streak still open at the end of the log lasts
/// until its last failure.
fn longest_streak(records: &[&Record]) -> Option<(Duration, SystemTime)> {
    let mut best: Option<(Duration, SystemTime)> = None;
    let mut open: Option<(SystemTime, SystemTime)> = None; // (first failure, latest failure)
    let close = |start: SystemTime, end: SystemTime, best: &mut Option<(Duration, SystemTime)>| {
        let d = end.duration_since(start).unwrap_or_default();
        if best.is_none_or(|(b, _)| d > b) {
            *best = Some((d, start));
        }
    };
    for r in records {
        match (r.ok, open) {
            (false, None) => open = Some((r.at, r.at)),
            (false, Some((start, _))) => open = Some((start, r.at)),
            (true, Some((start, _))) => {
                close(start, r.at, &mut best);
                open = None;
            }
            (true, None) => {}
        }
    }
    if let Some((start, last)) = open {
        close(start, last, &mut best);
    }
    best
}

/// Aggregate records (any order, any number of files) into the report. Records before
/// `since` are ignored.
pub fn aggregate(records: &[Record], since: Option<SystemTime>) -> ProbeReport {
    let mut kept: Vec<&Record> = records
        .iter()
        .filter(|r| since.is_none_or(|s| r.at >= s))
        .collect();
    kept.sort_by_key(|r| (r.at, r.slot));

    let mut by_slot: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
    for r in &kept {
        by_slot.entry(r.slot).or_default().push(r);
    }
    let clients: Vec<ClientReport> = by_slot
        .iter()
        .map(|(slot, rs)| {
            let streak = longest_streak(rs);
            let times: Vec<SystemTime> = rs.iter().map(|r| r.at).collect();
            ClientReport {
                slot: *slot,
                sent: rs.len() as u64,
                failed: rs.iter().filter(|r| !r.ok).count() as u64,
                longest_failure_streak_ms: streak.map_or(0, |(d, _)| millis(d)),
                longest_failure_streak_at: streak.map(|(_, at)| rfc3339(at)),
                gaps: gaps(&times, GAP_THRESHOLD),
            }
        })
        .collect();

    let worst = clients
        .iter()
        .filter(|c| c.longest_failure_streak_at.is_some())
        .max_by_key(|c| c.longest_failure_streak_ms);
    let all_times: Vec<SystemTime> = kept.iter().map(|r| r.at).collect();
    ProbeReport {
        sent: clients.iter().map(|c| c.sent).sum(),
        failed: clients.iter().map(|c| c.failed).sum(),
        longest_failure_streak_ms: worst.map_or(0, |c| c.longest_failure_streak_ms),
        longest_failure_streak_at: worst.and_then(|c| c.longest_failure_streak_at.clone()),
        gaps: gaps(&all_times, GAP_THRESHOLD),
        clients,
        first_failures: kept
            .iter()
            .filter(|r| !r.ok)
            .take(LISTED_FAILURES)
            .map(|r| format!("{} slot {} {}", rfc3339(r.at), r.slot, r.detail))
            .collect(),
    }
}

impl ProbeReport {
    pub fn render_text(&self) -> String {
        let streak = |ms: u64, at: &Option<String>| match at {
            Some(at) => format!("{ms} ms from {at}"),
            None => "-".to_string(),
        };
        let mut out = format!(
            "probe: {} requests, {} failed, longest failure streak {}, {} gap(s) with no client running\n",
            self.sent,
            self.failed,
            streak(
                self.longest_failure_streak_ms,
                &self.longest_failure_streak_at
            ),
            self.gaps.len()
        );
        for g in &self.gaps {
            out.push_str(&format!("  gap {} .. {}\n", g.from, g.to));
        }
        for c in &self.clients {
            out.push_str(&format!(
                "  client slot {}: {} requests, {} failed, longest failure streak {}, {} gap(s)\n",
                c.slot,
                c.sent,
                c.failed,
                streak(c.longest_failure_streak_ms, &c.longest_failure_streak_at),
                c.gaps.len()
            ));
            for g in &c.gaps {
                out.push_str(&format!("    gap {} .. {}\n", g.from, g.to));
            }
        }
        if !self.first_failures.is_empty() {
            out.push_str(&format!(
                "  first failed requests (up to {LISTED_FAILURES}):\n"
            ));
            for f in &self.first_failures {
                out.push_str(&format!("    {f}\n"));
            }
        }
        out
    }
}

/// Parse `--since`: an RFC 3339 timestamp, or a duration meaning "that long ago" ("5m").
pub fn parse_since(text: &str) -> Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("--since {text:?}: neither an RFC 3339 time nor a duration like 5m")
    })?;
    Ok(SystemTime::now() - ago)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    /// A client log from `start` with one record per 100 ms; `fails` lists failing indices.
    fn log(slot: u32, start: &str, count: usize, fails: &[usize]) -> String {
        let start = t(start);
        (0..count)
            .map(|i| {
                let at = start + Duration::from_millis(100 * i as u64);
                let outcome = if fails.contains(&i) {
                    "fail x"
                } else {
                    "ok 10.0.1.2:8080 1ms"
                };
                format!("{} {slot} {outcome}\n", rfc3339(at))
            })
            .collect()
    }

    #[test]
    fn lines_parse() {
        let r = parse_line("2025-11-21T10:00:00.123Z 2 fail no server answered: a b")
            .unwrap()
            .unwrap();
        assert_eq!(r.slot, 2);
        assert!(!r.ok);
        assert_eq!(r.detail, "no server answered: a b");
        assert_eq!(r.at, t("2025-11-21T10:00:00.123Z"));
        assert!(parse_line("").is_none());
        assert!(
            parse_line("2025-11-21T10:00:00.123Z x ok")
                .unwrap()
                .is_err()
        );
        assert!(parse_line("yesterday 1 ok").unwrap().is_err());
        assert!(
            parse_line("2025-11-21T10:00:00.123Z 1 maybe")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn a_half_written_last_line_is_ignored_quietly() {
        let text = format!(
            "{}2025-11-21T10:00:0",
            log(1, "2025-11-21T10:00:00Z", 3, &[])
        );
        let (records, warnings) = parse_log(&text);
        assert_eq!(records.len(), 3);
        assert!(warnings.is_empty());
        let (_, warnings) = parse_log("garbage\n");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_clean_run_has_no_failures_and_no_gaps() {
        let (r1, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 300, &[]));
        let (r2, _) = parse_log(&log(2, "2025-11-21T10:00:00.050Z", 300, &[]));
        let report = aggregate(&[r1, r2].concat(), None);
        assert_eq!(report.sent, 600);
        assert_eq!(report.failed, 0);
        assert_eq!(report.longest_failure_streak_ms, 0);
        assert_eq!(report.longest_failure_streak_at, None);
        assert!(report.gaps.is_empty());
        assert_eq!(report.clients.len(), 2);
        assert!(report.clients.iter().all(|c| c.gaps.is_empty()));
    }

    #[test]
    fn streaks_run_from_the_first_failure_to_the_next_success() {
        // Failures at 1,2,3 (ends at the ok at 4: 300 ms) and 10 (ends at 11: 100 ms).
        let (r, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 20, &[1, 2, 3, 10]));
        let report = aggregate(&r, None);
        assert_eq!(report.failed, 4);
        assert_eq!(report.first_failures.len(), 4);
        assert!(
            report.first_failures[0].starts_with("2025-11-21T10:00:00.100Z slot 1 "),
            "{:?}",
            report.first_failures
        );
        assert!(report.render_text().contains("first failed requests"));
        assert_eq!(report.clients[0].longest_failure_streak_ms, 300);
        assert_eq!(
            report.clients[0].longest_failure_streak_at.as_deref(),
            Some("2025-11-21T10:00:00.100Z")
        );
        // A streak still open at the end lasts until its last failure.
        let (r, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 5, &[2, 3, 4]));
        assert_eq!(aggregate(&r, None).longest_failure_streak_ms, 200);
    }

    #[test]
    fn the_total_streak_is_the_worst_client() {
        let (a, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 20, &[5]));
        let (b, _) = parse_log(&log(2, "2025-11-21T10:00:00Z", 20, &[7, 8, 9]));
        let report = aggregate(&[a, b].concat(), None);
        assert_eq!(report.longest_failure_streak_ms, 300);
        assert_eq!(
            report.longest_failure_streak_at.as_deref(),
            Some("2025-11-21T10:00:00.700Z")
        );
    }

    #[test]
    fn a_moved_task_makes_a_client_gap_but_not_a_total_gap() {
        // Slot 1 runs 10:00:00-10:00:05 on one node and again from 10:00:09 on another (two
        // files); slot 2 runs throughout.
        let before = log(1, "2025-11-21T10:00:00Z", 50, &[]);
        let after = log(1, "2025-11-21T10:00:09Z", 10, &[]);
        let (r1a, _) = parse_log(&before);
        let (r1b, _) = parse_log(&after);
        let (r2, _) = parse_log(&log(2, "2025-11-21T10:00:00Z", 100, &[]));
        let report = aggregate(&[r1b, r2, r1a].concat(), None);
        let c1 = &report.clients[0];
        assert_eq!(c1.sent, 60);
        assert_eq!(
            c1.gaps,
            vec![Gap {
                from: "2025-11-21T10:00:04.900Z".into(),
                to: "2025-11-21T10:00:09.000Z".into()
            }]
        );
        assert!(report.clients[1].gaps.is_empty());
        assert!(report.gaps.is_empty());
    }

    #[test]
    fn a_period_without_any_client_is_a_total_gap() {
        let (a, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 10, &[]));
        let (b, _) = parse_log(&log(2, "2025-11-21T10:00:05Z", 10, &[]));
        let report = aggregate(&[a, b].concat(), None);
        assert_eq!(report.gaps.len(), 1);
        assert_eq!(report.gaps[0].from, "2025-11-21T10:00:00.900Z");
        assert_eq!(report.gaps[0].to, "2025-11-21T10:00:05.000Z");
        // Exactly the threshold is not a gap.
        let (c, _) = parse_log("2025-11-21T10:00:00Z 1 ok\n2025-11-21T10:00:02Z 1 ok\n");
        assert!(aggregate(&c, None).gaps.is_empty());
    }

    #[test]
    fn since_filters_old_records() {
        let (r, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 100, &[1, 2]));
        let report = aggregate(&r, Some(t("2025-11-21T10:00:05Z")));
        assert_eq!(report.sent, 50);
        assert_eq!(report.failed, 0);
    }

    #[test]
    fn since_accepts_times_and_durations() {
        assert_eq!(
            parse_since("2025-11-21T10:00:00Z").unwrap(),
            t("2025-11-21T10:00:00Z")
        );
        let five_min_ago = parse_since("5m").unwrap();
        let d = SystemTime::now().duration_since(five_min_ago).unwrap();
        assert!(d >= Duration::from_secs(299) && d <= Duration::from_secs(310));
        assert!(parse_since("soon").is_err());
    }

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let (r, _) = parse_log(&log(1, "2025-11-21T10:00:00Z", 3, &[1]));
        let v = serde_json::to_value(aggregate(&r, None)).unwrap();
        for key in [
            "sent",
            "failed",
            "longest_failure_streak_ms",
            "gaps",
            "clients",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        for key in [
            "slot",
            "sent",
            "failed",
            "longest_failure_streak_ms",
            "gaps",
        ] {
            assert!(
                v["clients"][0].get(key).is_some(),
                "clients[].{key} missing"
            );
        }
    }
}
