//! The jump host and known_hosts file in `ansible_ssh_*_args`.
//!
//! Ansible passes these words to `ssh`; swarm-upgrade opens its connections
//! through the openssh crate instead, so it keeps what it can express
//! (`-J`, `-o ProxyJump`, a plain `ssh -W %h:%p` ProxyCommand,
//! `-o UserKnownHostsFile`) and refuses what would silently be lost.

use std::path::Path;

/// What swarm-upgrade takes from ssh arguments. As in `ssh`, the first value wins.
#[derive(Debug, Default)]
pub(super) struct SshOpts {
    /// `Some(None)`: `ProxyJump none`.
    pub(super) jump: Option<Option<String>>,
    pub(super) known_hosts: Option<String>,
}

impl SshOpts {
    pub(super) fn parse(&mut self, words: &[String]) -> Result<(), String> {
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let Some(flags) = w.strip_prefix('-') else {
                continue;
            };
            let Some(flag) = flags.chars().next() else {
                continue;
            };
            let inline = &flags[flag.len_utf8()..];
            let mut arg = || -> Result<String, String> {
                if inline.is_empty() {
                    it.next()
                        .cloned()
                        .ok_or(format!("`-{flag}` lacks its argument"))
                } else {
                    Ok(inline.to_string())
                }
            };
            match flag {
                'J' => {
                    let j = arg()?;
                    self.set_jump(&j);
                }
                'o' => {
                    let o = arg()?;
                    self.option(&o)?;
                }
                'F' => {
                    return Err(format!(
                        "which passes the ssh config file `{}`, which swarm-upgrade cannot pass on",
                        arg()?
                    ));
                }
                c if "BbcDEeIiLlmOPpQRSWw".contains(c) => {
                    arg()?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn set_jump(&mut self, j: &str) {
        if self.jump.is_none() {
            self.jump = Some((!j.eq_ignore_ascii_case("none")).then(|| j.to_string()));
        }
    }

    /// One `-o` option: `Key=Value`, `Key Value` or `Key = Value`.
    fn option(&mut self, o: &str) -> Result<(), String> {
        let o = o.trim();
        let split = o
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(o.len());
        let (key, value) = o.split_at(split);
        let value = value.trim_start().trim_start_matches('=').trim();
        match key.to_ascii_lowercase().as_str() {
            "proxyjump" => self.set_jump(value),
            "proxycommand" if self.jump.is_none() => {
                if value.eq_ignore_ascii_case("none") {
                    self.jump = Some(None);
                } else {
                    let j = proxy_command_jump(value).ok_or_else(|| {
                        format!("which has `ProxyCommand {value}`: only `ssh -W %h:%p [user@]bastion` is understood")
                    })??;
                    self.jump = Some(Some(j));
                }
            }
            "userknownhostsfile" if self.known_hosts.is_none() => {
                self.known_hosts = value.split_whitespace().next().map(str::to_string);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The jump host of `ssh [opts] -W %h:%p [user@]bastion`, or `None` when the
/// command has another form; `Some(Err)` for options that cannot be kept.
fn proxy_command_jump(cmd: &str) -> Option<Result<String, String>> {
    let words = shlex::split(cmd)?;
    let (prog, args) = words.split_first()?;
    if Path::new(prog).file_name()? != "ssh" {
        return None;
    }
    let (mut user, mut port, mut host, mut inner, mut forward) = (None, None, None, None, false);
    let mut it = args.iter();
    while let Some(w) = it.next() {
        let Some(flags) = w.strip_prefix('-') else {
            if host.is_some() {
                return None; // a remote command (`nc %h %p` and the like)
            }
            host = Some(w.clone());
            continue;
        };
        let flag = flags.chars().next()?;
        let inline = &flags[flag.len_utf8()..];
        let mut arg = || {
            if inline.is_empty() {
                it.next().cloned()
            } else {
                Some(inline.to_string())
            }
        };
        match flag {
            'W' => forward = matches!(arg()?.as_str(), "%h:%p" | "[%h]:%p"),
            'l' => user = Some(arg()?),
            'p' => port = Some(arg()?),
            'J' => inner = Some(arg()?),
            'i' | 'F' => {
                return Some(Err(format!(
                    "which has a ProxyCommand with `-{flag}`, which a ProxyJump cannot express"
                )));
            }
            c if "BbcDEeILmOoPQRSw".contains(c) => {
                arg()?;
            }
            _ => {}
        }
    }
    if !forward {
        return None;
    }
    let mut j = host?;
    if let Some(u) = user
        && !j.contains('@')
    {
        j = format!("{u}@{j}");
    }
    if let Some(p) = port {
        j = if j.contains(':') && !j.contains('[') {
            format!("[{j}]:{p}")
        } else {
            format!("{j}:{p}")
        };
    }
    Some(Ok(match inner {
        Some(i) => format!("{i},{j}"),
        None => j,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testutil::{host, ini};
    use super::*;

    #[test]
    fn jump_hosts_from_ssh_args() {
        let j = |args: &str| {
            let mut o = SshOpts::default();
            o.parse(&shlex::split(args).unwrap())
                .map(|_| o.jump.flatten())
        };
        assert_eq!(j("-J bastion").unwrap().as_deref(), Some("bastion"));
        assert_eq!(j("-Jops@b1,b2").unwrap().as_deref(), Some("ops@b1,b2"));
        assert_eq!(j("-o ProxyJump=b:2022").unwrap().as_deref(), Some("b:2022"));
        assert_eq!(j("-oproxyjump=b").unwrap().as_deref(), Some("b"));
        assert_eq!(j("-o 'ProxyJump b'").unwrap().as_deref(), Some("b"));
        assert_eq!(
            j("-o ProxyJump=first -J second").unwrap().as_deref(),
            Some("first")
        );
        assert_eq!(j("-o StrictHostKeyChecking=no -i key -p 22").unwrap(), None);
        assert_eq!(j("-o ProxyJump=none").unwrap(), None);
        assert_eq!(
            j("-o ProxyCommand=\"ssh -W %h:%p -q ops@bastion\"")
                .unwrap()
                .as_deref(),
            Some("ops@bastion")
        );
        assert_eq!(
            j("-o 'ProxyCommand=ssh -l ops -p 2022 -W %h:%p bastion'")
                .unwrap()
                .as_deref(),
            Some("ops@bastion:2022")
        );
        assert!(
            j("-o 'ProxyCommand=nc -X 5 -x proxy %h %p'")
                .unwrap_err()
                .contains("ProxyCommand")
        );
        assert!(j("-o 'ProxyCommand=ssh -i k -W %h:%p b'").is_err());
        assert!(j("-F ./ssh.cfg").unwrap_err().contains("ssh.cfg"));

        let mut o = SshOpts::default();
        o.parse(&shlex::split("-o UserKnownHostsFile=kh -o ProxyJump=b").unwrap())
            .unwrap();
        assert_eq!(o.known_hosts.as_deref(), Some("kh"));

        // extra args do not override common args (ssh keeps the first value).
        let inv = ini(
            "m ansible_ssh_common_args='-J first' ansible_ssh_extra_args='-J second'\nn ansible_ssh_extra_args='-o UserKnownHostsFile=kh'\n",
        )
        .unwrap();
        assert_eq!(host(&inv, "m").jump.as_deref(), Some("first"));
        assert_eq!(
            host(&inv, "n").known_hosts_file.as_deref(),
            Some(Path::new("/inv/kh"))
        );
    }
}
