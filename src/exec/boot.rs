//! A host's boot identity: what tells a host that really rebooted from one
//! that did not (`--reboot`). On a real host the kernel's `boot_id` changes
//! at every boot; in a container (the lab) `boot_id` and `btime` are the
//! host kernel's, so PID 1's start time counts too: a new PID 1 is a new
//! boot of the node. Reading it changes nothing.

use std::time::Duration;

use crate::transport::Cmd;

/// Prints `BOOT_ID PID1_START BTIME`: `/proc/1/stat` field 22 is PID 1's
/// start time in clock ticks since the kernel booted (the fields after the
/// command name, which may hold spaces, start at field 3).
pub const SCRIPT: &str = "printf '%s %s %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\" \
\"$(sed 's/^.*) //' /proc/1/stat | cut -d' ' -f20)\" \"$(sed -n 's/^btime //p' /proc/stat)\"";

/// The command reading it (no root needed: /proc is world-readable). Short
/// timeout: while the host reboots the read fails, and is tried again.
pub fn command() -> Cmd {
    Cmd::new(["sh", "-c", SCRIPT]).timeout(Duration::from_secs(15))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootIdentity {
    pub boot_id: String,
    /// PID 1's start time, clock ticks after `btime`.
    pub pid1_start: u64,
    /// When the kernel booted, seconds since the epoch.
    pub btime: u64,
}

impl BootIdentity {
    pub fn parse(out: &str) -> anyhow::Result<BootIdentity> {
        let words: Vec<&str> = out.split_whitespace().collect();
        let bad = || {
            anyhow::anyhow!(
                "unreadable boot identity `{}` (want: boot_id pid1-start btime)",
                out.trim()
            )
        };
        let [boot_id, pid1, btime] = words.as_slice() else {
            return Err(bad());
        };
        Ok(BootIdentity {
            boot_id: boot_id.to_string(),
            pid1_start: pid1.parse().map_err(|_| bad())?,
            btime: btime.parse().map_err(|_| bad())?,
        })
    }

    /// Whether `self` is a later boot than `before`: a new kernel boot, or
    /// a new PID 1 of the same kernel (a container restarted).
    pub fn rebooted_since(&self, before: &BootIdentity) -> bool {
        self.boot_id != before.boot_id
            || self.btime != before.btime
            || self.pid1_start != before.pid1_start
    }
}

impl std::fmt::Display for BootIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "boot_id {}, PID 1 started at tick {}, kernel booted at {}",
            self.boot_id, self.pid1_start, self.btime
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_tells_a_new_boot_or_a_new_pid1() {
        let a = BootIdentity::parse("1b2c-33 4711 1764700000\n").unwrap();
        assert_eq!(a.pid1_start, 4711);
        assert!(!a.rebooted_since(&a.clone()));
        let container = BootIdentity::parse("1b2c-33 9000 1764700000").unwrap();
        assert!(container.rebooted_since(&a));
        let host = BootIdentity::parse("ffff-00 4711 1764700000").unwrap();
        assert!(host.rebooted_since(&a));
        for bad in ["", "x 1", "x y 3", "x 1 2 3"] {
            assert!(BootIdentity::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_script_reads_this_machine() {
        // The script runs under `sh`: it must work here too (Linux /proc).
        let out = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = BootIdentity::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(!id.boot_id.is_empty() && id.btime > 0);
    }
}
