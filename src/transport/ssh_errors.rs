//! What a failed SSH connection says, read from OpenSSH's own messages.
//!
//! Two cases matter behind a bastion: a jump host that refuses a burst of
//! connections (sshd's MaxStartups drops handshakes beyond its limit, and a
//! bastion restarting refuses them for a while), which is worth a few
//! retries; and a host key that fails on the jump host rather than on the
//! node, which the operator must be told about by the jump host's name: "the
//! host key of node X changed" would send them to the wrong machine.

/// The connection was refused or cut before any key exchange: sshd dropped
/// it (MaxStartups), or it is restarting. Not a host key or authentication
/// failure, and not a node that the jump host could not reach (the jump host
/// answered then: retrying would only wait for a node that is down).
pub fn refused_before_handshake(detail: &str) -> bool {
    let final_word = [
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "Permission denied",
        "stdio forwarding failed",
        "open failed",
        "Could not resolve hostname",
    ];
    if final_word.iter().any(|w| detail.contains(w)) {
        return false;
    }
    [
        "kex_exchange_identification",
        // Through a ProxyJump, a node's banner cut short by the jump host
        // dropping the stream (MaxStartups on the lab, under load).
        "banner exchange",
        "Connection reset by peer",
        "Connection closed by remote host",
        "Connection refused",
    ]
    .iter()
    .any(|w| detail.contains(w))
}

/// The host whose key failed strict checking, as ssh names it (its address,
/// or its `HostKeyAlias`), if the failure was about a host key.
pub fn host_key_failure_host(detail: &str) -> Option<&str> {
    for (before, after) in [
        ("Host key for ", " has changed"),
        ("host key is known for ", " and you have requested strict"),
    ] {
        if let Some(i) = detail.find(before) {
            let rest = &detail[i + before.len()..];
            if let Some(j) = rest.find(after) {
                return Some(rest[..j].trim());
            }
        }
    }
    None
}

/// A field of `ssh -G HOST` output (`hostname`, `proxyjump`, ...).
pub fn ssh_g_field<'a>(ssh_g: &'a str, key: &str) -> Option<&'a str> {
    ssh_g.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then_some(v.trim())
    })
}

/// Whether `host` (as ssh named it in a host key failure) is the final host
/// of a connection whose `ssh -G` hostname is `hostname`: `[addr]:port`
/// and `addr` both mean `addr`.
pub fn is_final_host(host: &str, hostname: &str, alias: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map_or(host, |(h, _)| h);
    bare == hostname || bare == alias
}

/// A command that failed on the way to the master (its control socket gone
/// or closing: the master died), so it was never sent to the host. Errors
/// after the session was opened (the master dying while the command runs)
/// are not this: the command may have run.
pub fn mux_not_delivered(error_chain: &str) -> bool {
    error_chain.contains("failed to connect to the ssh multiplex server")
        && [
            "Broken pipe",
            "Connection refused",
            "No such file or directory",
        ]
        .iter()
        .any(|w| error_chain.contains(w))
}

/// What to do with a command that failed on the way or on the host.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// It never reached the host: send it again over a new master.
    Resend,
    /// Its master died while it ran: it may have run to its end or not; run
    /// it again over a new master (it can run twice).
    RunAgain,
    /// Its master died while it ran and it must not run twice.
    OutcomeUnknown,
    /// A failure of its own (a timeout, the host's answer): report it.
    Fail,
}

/// The decision after a failed command, from its error chain and whether
/// its master is still alive.
pub fn after_failure(error_chain: &str, master_lost: bool, at_most_once: bool) -> Next {
    if mux_not_delivered(error_chain) {
        Next::Resend
    } else if !master_lost {
        Next::Fail
    } else if at_most_once {
        Next::OutcomeUnknown
    } else {
        Next::RunAgain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // OpenSSH 9.2 through a ProxyJump: MaxStartups 3 refusing a burst (seen on
    // the lab), the jump host down, a node down behind it, host key failures.
    const MAX_STARTUPS: &str = "kex_exchange_identification: read: Connection reset by peer\r\n\
        Connection reset by 172.31.62.5 port 22\r\n\
        kex_exchange_identification: Connection closed by remote host\r\n\
        Connection closed by UNKNOWN port 65535";
    // Seen in CI: MaxStartups 3 dropping one of four workers' handshakes at once.
    const BANNER_CUT: &str = "failed to connect to the remote host: banner exchange: \
        Connection to UNKNOWN port 65535: Broken pipe";
    const BASTION_DOWN: &str = "ssh: connect to host 172.31.62.5 port 22: Connection refused\r\n\
        kex_exchange_identification: Connection closed by remote host\r\n\
        Connection closed by UNKNOWN port 65535";
    const NODE_DOWN_BEHIND_BASTION: &str = "channel 0: open failed: connect failed: Connection refused\r\n\
        stdio forwarding failed\r\n\
        kex_exchange_identification: Connection closed by remote host";
    const CHANGED: &str = "@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
        Offending ED25519 key in /lab/known_hosts:5\r\n\
        Host key for 172.31.62.5 has changed and you have requested strict checking.\r\n\
        Host key verification failed.\r\n\
        kex_exchange_identification: Connection closed by remote host";
    const UNKNOWN: &str = "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\r\n\
        Host key verification failed.";

    #[test]
    fn bursts_and_restarts_are_retried_key_and_auth_failures_are_not() {
        assert!(refused_before_handshake(MAX_STARTUPS));
        assert!(refused_before_handshake(BASTION_DOWN));
        assert!(refused_before_handshake(BANNER_CUT));
        assert!(!refused_before_handshake(NODE_DOWN_BEHIND_BASTION));
        assert!(!refused_before_handshake(CHANGED));
        assert!(!refused_before_handshake(UNKNOWN));
        assert!(!refused_before_handshake(
            "upgrader@10.0.0.5: Permission denied (publickey)."
        ));
        assert!(!refused_before_handshake(
            "ssh: connect to host 10.0.0.5 port 22: Connection timed out"
        ));
    }

    #[test]
    fn only_commands_that_never_reached_the_master_are_sent_again() {
        // Seen on the lab: the bastion's sshd killed between the master's
        // check and the command.
        assert!(mux_not_delivered(
            "host bst-w4: running `sudo -n -- sh -c true`: failed to connect to the ssh multiplex server: IO Error (Excluding `EWOULDBLOCK`): Broken pipe (os error 32).: Broken pipe (os error 32)"
        ));
        assert!(mux_not_delivered(
            "failed to connect to the ssh multiplex server: Connection refused (os error 111)"
        ));
        assert!(!mux_not_delivered("the connection was terminated"));
        assert!(!mux_not_delivered("the remote process has terminated"));
        assert!(!mux_not_delivered(
            "failed to connect to the ssh multiplex server: the server closed the connection mid-session"
        ));
    }

    #[test]
    fn the_host_of_a_key_failure_is_read_from_ssh() {
        assert_eq!(host_key_failure_host(CHANGED), Some("172.31.62.5"));
        assert_eq!(host_key_failure_host(UNKNOWN), Some("[10.0.0.5]:2222"));
        assert_eq!(host_key_failure_host(MAX_STARTUPS), None);
    }

    #[test]
    fn final_host_or_jump_host() {
        assert!(is_final_host("172.31.61.11", "172.31.61.11", "bst-m1"));
        assert!(is_final_host("[10.0.0.5]:2222", "10.0.0.5", "n"));
        assert!(is_final_host("bst-m1", "172.31.61.11", "bst-m1"));
        assert!(!is_final_host("172.31.62.5", "172.31.61.11", "bst-m1"));
        let g = "user upgrader\nhostname 172.31.61.11\nproxyjump bst-bastion\nport 22\n";
        assert_eq!(ssh_g_field(g, "hostname"), Some("172.31.61.11"));
        assert_eq!(ssh_g_field(g, "proxyjump"), Some("bst-bastion"));
        assert_eq!(ssh_g_field(g, "proxycommand"), None);
    }

    #[test]
    fn a_command_cut_in_flight_runs_again_unless_it_must_run_at_most_once() {
        let refused = "failed to connect to the ssh multiplex server: Connection refused";
        let cut = "host m1: running `sh -c x`: the remote process was terminated";
        assert_eq!(after_failure(refused, true, true), Next::Resend);
        assert_eq!(after_failure(cut, true, false), Next::RunAgain);
        assert_eq!(after_failure(cut, true, true), Next::OutcomeUnknown);
        // The master is fine: the failure is the command's own (a timeout).
        assert_eq!(after_failure(cut, false, false), Next::Fail);
    }
}
