//! Maintenance windows (`--window "Mon-Fri 01:00-05:00 UTC"`): when a run
//! may start taking a node down. A window gates the start of each node,
//! never interrupts one already started. Pure: a parser and an evaluator
//! of a point in time (no clock, no time-zone database: `UTC` or a fixed
//! offset such as `+02:00`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;

/// One weekly window: on the given weekdays, from `start` to `end` (minutes
/// after midnight, local to `offset`); a window whose end is not after its
/// start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    start: i64,
    end: i64,
    /// Minutes east of UTC.
    offset: i64,
    text: String,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `DAYS HH:MM-HH:MM ZONE`: DAYS a comma-separated list of days
    /// (`Mon`) and ranges (`Mon-Fri`, `Sat-Sun`, `Fri-Mon`), or `daily`;
    /// ZONE `UTC` or an offset (`+02:00`, `-05:00`).
    fn from_str(s: &str) -> Result<Window, String> {
        let example = "e.g. \"Mon-Fri 01:00-05:00 UTC\", \"Sat,Sun 22:00-06:00 +01:00\" or \"daily 02:00-04:00 UTC\"";
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [days, times, zone] = parts.as_slice() else {
            return Err(format!(
                "window {s:?}: expected DAYS HH:MM-HH:MM ZONE ({example})"
            ));
        };
        let days = parse_days(days).map_err(|e| format!("window {s:?}: {e} ({example})"))?;
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("window {s:?}: times {times:?} are not HH:MM-HH:MM"))?;
        let start = parse_hhmm(start).map_err(|e| format!("window {s:?}: {e}"))?;
        let end = parse_hhmm(end).map_err(|e| format!("window {s:?}: {e}"))?;
        if start == end {
            return Err(format!(
                "window {s:?}: it starts when it ends; for all day give 00:00-23:59"
            ));
        }
        let offset = parse_zone(zone).map_err(|e| format!("window {s:?}: {e}"))?;
        Ok(Window {
            days,
            start,
            end,
            offset,
            text: parts.join(" "),
        })
    }
}

fn parse_day(d: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|x| x.eq_ignore_ascii_case(d))
        .ok_or_else(|| format!("{d:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    if s.eq_ignore_ascii_case("daily") || s == "*" {
        return Ok([true; 7]);
    }
    let mut days = [false; 7];
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                // A range may wrap the week: Fri-Mon.
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(part)?] = true,
        }
    }
    Ok(days)
}

fn parse_hhmm(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a time HH:MM (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (0..24).contains(&h) && (0..60).contains(&m) || (h == 24 && m == 0) {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

fn parse_zone(z: &str) -> Result<i64, String> {
    if z.eq_ignore_ascii_case("UTC") || z == "Z" {
        return Ok(0);
    }
    let bad = || {
        format!(
            "zone {z:?}: give UTC or a fixed offset such as +02:00 (no time-zone names: daylight saving would move the window)"
        )
    };
    let (sign, rest) = match z.as_bytes().first() {
        Some(b'+') => (1, &z[1..]),
        Some(b'-') => (-1, &z[1..]),
        _ => return Err(bad()),
    };
    let minutes = parse_hhmm(rest).map_err(|_| bad())?;
    if minutes > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * minutes)
}

impl Window {
    /// Whether `minute_of_week` (Monday 00:00 = 0, local to the window's
    /// offset) lies in the window.
    fn contains(&self, minute_of_week: i64) -> bool {
        let day = (minute_of_week / MINUTES_PER_DAY) as usize;
        let minute = minute_of_week % MINUTES_PER_DAY;
        let yesterday = (day + 6) % 7;
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening part belongs to the day it starts
            // on, the morning part to the day before.
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }

    /// The minute of the week at `t` in this window's zone.
    fn minute_of_week(&self, t: SystemTime) -> i64 {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        let minutes = secs.div_euclid(60) + self.offset;
        // 1970-01-01 was a Thursday: 3 days after a Monday.
        (minutes + 3 * MINUTES_PER_DAY).rem_euclid(MINUTES_PER_WEEK)
    }
}

/// Whether a node may be started at `t`: no window given, or `t` in one.
pub fn open(windows: &[Window], t: SystemTime) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(w.minute_of_week(t)))
}

/// When the next window opens after `t` (`t` itself when one is open),
/// to the minute; `None` without windows.
pub fn next_open(windows: &[Window], t: SystemTime) -> Option<SystemTime> {
    if windows.is_empty() {
        return None;
    }
    // Every window recurs weekly: a week of minutes holds its next opening.
    (0..=MINUTES_PER_WEEK)
        .map(|m| {
            if m == 0 {
                t
            } else {
                let base = t - Duration::from_secs(
                    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() % 60),
                );
                base + Duration::from_secs(m as u64 * 60)
            }
        })
        .find(|&at| open(windows, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn w(s: &str) -> Window {
        s.parse().unwrap()
    }

    #[test]
    fn weekday_window_in_utc() {
        let ws = [w("Mon-Fri 01:00-05:00 UTC")];
        // 2026-12-02 is a Wednesday.
        assert!(open(&ws, at("2026-12-02T01:00:00Z")));
        assert!(open(&ws, at("2026-12-02T04:59:59Z")));
        assert!(!open(&ws, at("2026-12-02T05:00:00Z")));
        assert!(!open(&ws, at("2026-12-02T00:59:59Z")));
        // Saturday 2026-12-05.
        assert!(!open(&ws, at("2026-12-05T02:00:00Z")));
        assert_eq!(
            next_open(&ws, at("2026-12-05T02:00:00Z")),
            Some(at("2026-12-07T01:00:00Z"))
        );
        assert_eq!(
            next_open(&ws, at("2026-12-02T02:30:10Z")),
            Some(at("2026-12-02T02:30:10Z"))
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let ws = [w("Fri 22:00-02:00 UTC")];
        // Friday 2026-12-04 23:00 and Saturday 01:59 are in it; Friday
        // 01:00 (Thursday's night) is not.
        assert!(open(&ws, at("2026-12-04T23:00:00Z")));
        assert!(open(&ws, at("2026-12-05T01:59:00Z")));
        assert!(!open(&ws, at("2026-12-04T01:00:00Z")));
        assert!(!open(&ws, at("2026-12-05T02:00:00Z")));
    }

    #[test]
    fn offsets_day_lists_and_wrapping_ranges() {
        // 01:00-05:00 at +02:00 is 23:00-03:00 UTC, starting the day before.
        let ws = [w("Wed 01:00-05:00 +02:00")];
        assert!(open(&ws, at("2026-12-01T23:30:00Z")));
        assert!(!open(&ws, at("2026-12-02T03:00:00Z")));
        let ws = [w("Sat,Sun 10:00-12:00 UTC"), w("Fri-Mon 00:00-01:00 UTC")];
        assert!(open(&ws, at("2026-12-06T11:00:00Z"))); // Sunday
        assert!(open(&ws, at("2026-12-07T00:30:00Z"))); // Monday
        assert!(!open(&ws, at("2026-12-08T00:30:00Z"))); // Tuesday
        assert!(open(
            &[w("daily 00:00-24:00 UTC")],
            at("2026-12-08T23:59:00Z")
        ));
        assert!(open(&[], at("2026-12-08T00:30:00Z")));
        assert_eq!(next_open(&[], at("2026-12-08T00:30:00Z")), None);
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (bad, says) in [
            ("Mon-Fri 01:00-05:00", "expected DAYS HH:MM-HH:MM ZONE"),
            ("Mon-Fry 01:00-05:00 UTC", "\"Fry\" is not a day"),
            ("Mon 1:00-25:00 UTC", "\"25:00\" is not a time"),
            ("Mon 01:00 UTC", "not HH:MM-HH:MM"),
            ("Mon 01:00-05:00 Europe/Paris", "no time-zone names"),
            ("Mon 01:00-01:00 UTC", "starts when it ends"),
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
