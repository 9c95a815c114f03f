//! Ansible inventories: INI, YAML, and `ansible-inventory --list` JSON.
//!
//! When `ansible-inventory` is on `PATH`, it reads the inventory, so plugins,
//! inventory directories, `group_vars/` and `host_vars/` work as they do in
//! Ansible. This module then maps its `--list` JSON. Without Ansible, the file
//! is read directly:
//!
//! - INI: `[group]`, `[group:vars]`, `[group:children]`, host lines
//!   `name[:port] key=value ...`, `#`/`;` comments, ranges `node[01:20]`,
//!   `node[a:c]`, `node[1:9:2]`;
//! - YAML: `all: {hosts: {h: {vars}}, children: {g: {...}}, vars: {...}}`;
//! - JSON: the output of `ansible-inventory --list` saved to a file.
//!
//! For INI and YAML files, `group_vars/` and `host_vars/` next to the file are
//! read too (`NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json`, or a `NAME/`
//! directory). Vault-encrypted files there are skipped.
//!
//! Variables apply with Ansible's precedence: `all` < parent groups < child
//! groups (groups of equal depth: by `ansible_group_priority`, then by name)
//! < host; `group_vars/` files override group variables written in the
//! inventory file, and `host_vars/` files override host variables.
//!
//! | Ansible variable | Meaning here |
//! |---|---|
//! | `ansible_host` (`ansible_ssh_host`) | address (default: the inventory name) |
//! | `ansible_port` (`ansible_ssh_port`) | port |
//! | `ansible_user` (`ansible_ssh_user`) | user |
//! | `ansible_ssh_private_key_file` (`ansible_private_key_file`) | identity_file |
//! | `-J X`, `-o ProxyJump=X`, `-o ProxyCommand="ssh -W %h:%p X"` in `ansible_ssh_common_args` / `ansible_ssh_extra_args` | jump |
//! | `-o UserKnownHostsFile=F` in the same | known_hosts_file |
//! | `ansible_become` (`ansible_sudo`) | sudo (default: true when a user other than root is set) |
//! | `ansible_connection` other than `ssh`/`smart`/`paramiko` | host skipped (not reachable over SSH) |
//!
//! All hosts are listed, hosts of manager groups (`managers`, `manager`,
//! `swarm_managers`, `docker_swarm_manager`, ...: a name ending in
//! `manager(s)`) first. Nodes that the inventory does not list are reached
//! with the settings every listed host shares (see [`Defaults`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::yaml::resolve_path;
use super::{Defaults, Inventory, SshTarget};
use crate::error::usage;

const ANSIBLE_INVENTORY: &str = "ansible-inventory";
const ANSIBLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on the hosts one range pattern may expand to.
const MAX_RANGE: usize = 100_000;
const INSTALL_HINT: &str =
    "install Ansible (e.g. `pipx install ansible-core`) so that `ansible-inventory` is on PATH";

/// Loads an Ansible inventory, through `ansible-inventory` when it is installed.
pub fn load(path: &Path) -> anyhow::Result<Inventory> {
    std::fs::metadata(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    match find_on_path(ANSIBLE_INVENTORY) {
        Some(exe) => {
            let json = run_ansible_inventory(&exe, path)?;
            parse_list_json(&json, path).map_err(|e| {
                usage(format!(
                    "{e}\n  (read through `{} -i {} --list`)",
                    exe.display(),
                    path.display()
                ))
            })
        }
        None => load_direct(path),
    }
}

/// Reads an inventory file without Ansible.
pub fn load_direct(path: &Path) -> anyhow::Result<Inventory> {
    let shown = path.display();
    if path.is_dir() {
        return Err(usage(format!(
            "{shown}: is a directory; inventory directories are read by Ansible: {INSTALL_HINT}, or pass a single inventory file"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("{shown}: cannot read the inventory: {e}")))?;
    if text.starts_with("#!") {
        return Err(usage(format!(
            "{shown}: is a dynamic inventory script; {INSTALL_HINT}, or save its output and pass that: `{shown} --list > inventory.json`"
        )));
    }
    if text.starts_with("$ANSIBLE_VAULT") {
        return Err(usage(format!(
            "{shown}: is encrypted with ansible-vault; {INSTALL_HINT} and configure the vault password (ANSIBLE_VAULT_PASSWORD_FILE), or pass a decrypted copy"
        )));
    }
    let mut model = match detect_format(path, &text) {
        Format::Json => return parse_list_json(&text, path),
        Format::Ini => parse_ini(&text, path)?,
        Format::Yaml => parse_yaml(&text, path)?,
    };
    read_var_dirs(&mut model, path.parent().unwrap_or(Path::new(".")))?;
    model.finish()
}

// ---------------------------------------------------------------------------
// ansible-inventory

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Runs `ansible-inventory -i PATH --list` (no shell) and returns its stdout.
fn run_ansible_inventory(exe: &Path, path: &Path) -> anyhow::Result<String> {
    let what = format!("`{} -i {} --list`", exe.display(), path.display());
    let mut child = Command::new(exe)
        .arg("-i")
        .arg(path)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| usage(format!("{}: cannot run {what}: {e}", path.display())))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + ANSIBLE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(usage(format!(
                    "{}: {what} did not finish within {} s; check that the inventory does not wait for input (vault password prompt, slow dynamic plugin)",
                    path.display(),
                    ANSIBLE_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                return Err(usage(format!(
                    "{}: waiting for {what}: {e}",
                    path.display()
                )));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(usage(format!(
            "{}: {what} failed ({status}):\n{}\n  fix the inventory so that ansible-inventory accepts it",
            path.display(),
            indent(stderr.trim_end())
        )));
    }
    String::from_utf8(stdout).map_err(|_| {
        usage(format!(
            "{}: {what} printed output that is not UTF-8",
            path.display()
        ))
    })
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = vec![];
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Format detection

#[derive(Debug, PartialEq)]
enum Format {
    Ini,
    Yaml,
    Json,
}

fn detect_format(path: &Path, text: &str) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yml" | "yaml") => return Format::Yaml,
        Some("json") => return Format::Json,
        Some("ini" | "cfg") => return Format::Ini,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .unwrap_or("");
    if first.starts_with('{') {
        Format::Json
    } else if first.starts_with('[') {
        Format::Ini
    } else if first.starts_with("---") || looks_like_yaml_key(first) {
        Format::Yaml
    } else {
        Format::Ini
    }
}

/// `all:` or `all: {...}`, but not an INI host line such as `h1:2222 x=y`.
fn looks_like_yaml_key(line: &str) -> bool {
    line.split_once(':').is_some_and(|(key, rest)| {
        !key.is_empty()
            && !key.contains(|c: char| c.is_whitespace() || c == '=')
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

// ---------------------------------------------------------------------------
// The model shared by all readers

#[derive(Debug, Clone)]
struct Var {
    value: Value,
    /// Where it was set, for messages.
    at: String,
}

type Vars = BTreeMap<String, Var>;

#[derive(Debug, Default)]
struct Group {
    hosts: BTreeSet<String>,
    children: BTreeSet<String>,
    /// Variables written in the inventory source.
    vars: Vars,
    /// Variables from `group_vars/` (they override `vars` of every group).
    dir_vars: Vars,
}

#[derive(Debug)]
struct Host {
    at: String,
    vars: Vars,
    dir_vars: Vars,
}

#[derive(Debug)]
struct Model {
    source: PathBuf,
    groups: BTreeMap<String, Group>,
    hosts: BTreeMap<String, Host>,
    /// Hosts in order of first appearance.
    host_order: Vec<String>,
}

impl Model {
    fn new(source: &Path) -> Model {
        let mut m = Model {
            source: source.to_path_buf(),
            groups: BTreeMap::new(),
            hosts: BTreeMap::new(),
            host_order: vec![],
        };
        m.group("all");
        m
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn add_host(&mut self, group: &str, name: &str, at: &str) -> &mut Host {
        self.group(group).hosts.insert(name.to_string());
        if !self.hosts.contains_key(name) {
            self.host_order.push(name.to_string());
        }
        self.hosts.entry(name.to_string()).or_insert_with(|| Host {
            at: at.to_string(),
            vars: Vars::new(),
            dir_vars: Vars::new(),
        })
    }

    fn add_child(&mut self, parent: &str, child: &str) {
        self.group(child);
        self.group(parent).children.insert(child.to_string());
    }

    /// Applies inheritance and maps every host to an [`SshTarget`].
    fn finish(self) -> anyhow::Result<Inventory> {
        let src = self.source.display().to_string();
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for c in g.children.iter().filter(|c| *c != "all") {
                parents.entry(c.as_str()).or_default().push(name.as_str());
            }
        }
        let mut depth = HashMap::new();
        for name in self.groups.keys() {
            depth_of(name, &parents, &mut depth, &mut vec![], &src)?;
        }
        let mut priority = HashMap::new();
        for (name, g) in &self.groups {
            let p = match g.dir_vars.get(PRIORITY).or(g.vars.get(PRIORITY)) {
                Some(v) => as_int(&v.value).ok_or_else(|| {
                    usage(format!(
                        "{}: field `{PRIORITY}` of group `{name}` is {}, which is not a number; fix: write an integer, e.g. {PRIORITY}=10",
                        v.at,
                        show(&v.value)
                    ))
                })?,
                None => 1,
            };
            priority.insert(name.as_str(), p);
        }
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for h in &g.hosts {
                direct.entry(h.as_str()).or_default().push(name.as_str());
            }
        }

        let managers = self.manager_hosts();
        let base = self.source.parent().unwrap_or(Path::new("."));
        let (first, rest): (Vec<&String>, Vec<&String>) = self
            .host_order
            .iter()
            .partition(|h| managers.contains(h.as_str()));
        let mut hosts = vec![];
        for name in first.into_iter().chain(rest) {
            let host = &self.hosts[name];
            // The host's groups and all their ancestors, in merge order.
            let mut groups = BTreeSet::from(["all"]);
            let mut todo: Vec<&str> = direct.get(name.as_str()).cloned().unwrap_or_default();
            while let Some(g) = todo.pop() {
                if groups.insert(g) {
                    todo.extend(parents.get(g).into_iter().flatten());
                }
            }
            let mut groups: Vec<&str> = groups.into_iter().collect();
            groups.sort_by_key(|g| (depth[g], priority[g], *g));
            let mut vars = Vars::new();
            for g in &groups {
                vars.extend(self.groups[*g].vars.clone());
            }
            for g in &groups {
                vars.extend(self.groups[*g].dir_vars.clone());
            }
            vars.extend(host.vars.clone());
            vars.extend(host.dir_vars.clone());
            if let Some(t) = target(name, &host.at, &vars, base)? {
                hosts.push(t);
            }
        }
        if hosts.is_empty() {
            return Err(usage(format!(
                "{src}: the inventory lists no host reachable over SSH; list at least one manager of the swarm, e.g.\n    [managers]\n    mgr-1 ansible_host=10.0.0.11"
            )));
        }
        Ok(Inventory {
            source: self.source.clone(),
            defaults: shared_defaults(&hosts),
            hosts,
        })
    }

    /// Hosts in groups named like `managers` (and in their child groups).
    fn manager_hosts(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = self
            .groups
            .keys()
            .filter(|g| is_manager_group(g))
            .map(String::as_str)
            .collect();
        while let Some(g) = todo.pop() {
            if !seen.insert(g) {
                continue;
            }
            if let Some(grp) = self.groups.get(g) {
                out.extend(grp.hosts.iter().map(String::as_str));
                todo.extend(grp.children.iter().map(String::as_str));
            }
        }
        out
    }
}

const PRIORITY: &str = "ansible_group_priority";

/// `managers`, `manager`, `swarm_managers`, `docker-swarm-manager`, ...
fn is_manager_group(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    let stem = n
        .strip_suffix("managers")
        .or_else(|| n.strip_suffix("manager"));
    stem.is_some_and(|s| s.is_empty() || s.ends_with('_'))
}

/// A group's distance from `all` (the longest path, as Ansible computes it).
fn depth_of<'a>(
    g: &'a str,
    parents: &HashMap<&'a str, Vec<&'a str>>,
    memo: &mut HashMap<&'a str, usize>,
    stack: &mut Vec<&'a str>,
    src: &str,
) -> anyhow::Result<usize> {
    if g == "all" {
        memo.insert(g, 0);
        return Ok(0);
    }
    if let Some(d) = memo.get(g) {
        return Ok(*d);
    }
    if let Some(i) = stack.iter().position(|s| *s == g) {
        let mut cycle: Vec<&str> = stack[i..].to_vec();
        cycle.push(g);
        return Err(usage(format!(
            "{src}: group `{g}` is its own ancestor ({}); fix the `children` of these groups",
            cycle.join(" is a child of ")
        )));
    }
    stack.push(g);
    let mut d = 1;
    for p in parents.get(g).into_iter().flatten() {
        d = d.max(depth_of(p, parents, memo, stack, src)? + 1);
    }
    stack.pop();
    memo.insert(g, d);
    Ok(d)
}

/// The settings every listed host shares, for nodes the inventory omits.
fn shared_defaults(hosts: &[SshTarget]) -> Defaults {
    fn shared<T: PartialEq>(hosts: &[SshTarget], f: impl Fn(&SshTarget) -> Option<T>) -> Option<T> {
        let first = f(hosts.first()?)?;
        hosts
            .iter()
            .skip(1)
            .all(|h| f(h).as_ref() == Some(&first))
            .then_some(first)
    }
    Defaults {
        user: shared(hosts, |h| h.user.clone()),
        port: shared(hosts, |h| h.port),
        identity_file: shared(hosts, |h| h.identity_file.clone()),
        known_hosts_file: shared(hosts, |h| h.known_hosts_file.clone()),
        jump: shared(hosts, |h| h.jump.clone()),
        sudo: shared(hosts, |h| Some(h.sudo)),
    }
}

// ---------------------------------------------------------------------------
// Mapping Ansible variables to a connection

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn field_error(var: &Var, key: &str, host: &str, problem: &str, fix: &str) -> anyhow::Error {
    usage(format!(
        "{}: field `{key}` of host `{host}` is {}, {problem}; fix: {fix}",
        var.at,
        show(&var.value)
    ))
}

/// The first of `keys` that is set (and not null).
fn lookup<'a>(vars: &'a Vars, keys: &[&'static str]) -> Option<(&'static str, &'a Var)> {
    keys.iter()
        .find_map(|k| vars.get(*k).filter(|v| !v.value.is_null()).map(|v| (*k, v)))
}

/// A string variable; templates and vault values are refused.
fn string_var(
    vars: &Vars,
    keys: &[&'static str],
    host: &str,
    example: &str,
) -> anyhow::Result<Option<(String, &'static str, Var)>> {
    let Some((key, var)) = lookup(vars, keys) else {
        return Ok(None);
    };
    let s = match &var.value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(field_error(
                var,
                key,
                host,
                "which is not a string",
                &format!("write e.g. {key}={example}"),
            ));
        }
    };
    if s.contains("{{") || s.contains("{%") {
        return Err(field_error(
            var,
            key,
            host,
            "a Jinja template, which swarm-upgrade does not evaluate (ansible-inventory does not either)",
            &format!("write the value itself, e.g. {key}={example}"),
        ));
    }
    if s.trim_start().starts_with("$ANSIBLE_VAULT") {
        return Err(field_error(
            var,
            key,
            host,
            "encrypted with ansible-vault, which swarm-upgrade cannot decrypt",
            &format!("write the value unencrypted, e.g. {key}={example}"),
        ));
    }
    Ok(Some((s, key, var.clone())))
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ansible's truthy and falsy words.
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "on" | "1" => Some(true),
            "no" | "n" | "false" | "f" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

const SSH_CONNECTIONS: &[&str] = &["ssh", "smart", "paramiko", "paramiko_ssh"];

/// The connection for one host, or `None` when Ansible would not use SSH.
fn target(name: &str, at: &str, vars: &Vars, base: &Path) -> anyhow::Result<Option<SshTarget>> {
    if let Some((conn, _, _)) = string_var(vars, &["ansible_connection"], name, "ssh")? {
        let c = conn.strip_prefix("ansible.builtin.").unwrap_or(&conn);
        if !SSH_CONNECTIONS.contains(&c) {
            return Ok(None);
        }
    }
    check_word(at, "name", name, name)?;
    let address = match string_var(
        vars,
        &["ansible_host", "ansible_ssh_host"],
        name,
        "10.0.0.11",
    )? {
        Some((a, key, var)) => {
            check_word(&var.at, key, name, &a)?;
            a
        }
        None => name.to_string(),
    };
    let port = match lookup(vars, &["ansible_port", "ansible_ssh_port"]) {
        Some((key, var)) => {
            let p = as_int(&var.value)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            Some(p.ok_or_else(|| {
                field_error(
                    var,
                    key,
                    name,
                    "which is not a port number",
                    &format!("write a number from 1 to 65535, e.g. {key}=2222"),
                )
            })?)
        }
        None => None,
    };
    let user = match string_var(vars, &["ansible_user", "ansible_ssh_user"], name, "ops")? {
        Some((u, key, var)) => {
            if u.is_empty()
                || u.starts_with('-')
                || u.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(field_error(
                    &var,
                    key,
                    name,
                    "which is not a user name",
                    &format!("write e.g. {key}=ops"),
                ));
            }
            Some(u)
        }
        None => None,
    };
    let identity_file = string_var(
        vars,
        &["ansible_ssh_private_key_file", "ansible_private_key_file"],
        name,
        "~/.ssh/id_ed25519",
    )?
    .map(|(p, _, _)| resolve_path(base, &p));
    let sudo = match lookup(vars, &["ansible_become", "ansible_sudo"]) {
        Some((key, var)) => as_bool(&var.value).ok_or_else(|| {
            field_error(
                var,
                key,
                name,
                "which is not a boolean",
                &format!("write {key}=true or {key}=false"),
            )
        })?,
        None => user.as_deref().is_some_and(|u| u != "root"),
    };
    let mut opts = SshOpts::default();
    for key in [
        "ansible_ssh_args",
        "ansible_ssh_common_args",
        "ansible_ssh_extra_args",
    ] {
        if let Some((args, key, var)) = string_var(vars, &[key], name, "'-o ProxyJump=bastion'")? {
            let words = shlex::split(&args).ok_or_else(|| {
                field_error(
                    &var,
                    key,
                    name,
                    "which has unbalanced quotes",
                    "close the quotes",
                )
            })?;
            opts.parse(&words)
                .map_err(|problem| field_error(&var, key, name, &problem, "use `-J [user@]bastion[:port]` or `-o ProxyJump=...`, or move the setting to ~/.ssh/config"))?;
            if let Some(Some(j)) = &opts.jump {
                check_jump(&var, key, name, j)?;
            }
        }
    }
    Ok(Some(SshTarget {
        name: name.to_string(),
        address,
        port,
        user,
        identity_file,
        known_hosts_file: opts.known_hosts.map(|p| resolve_path(base, &p)),
        jump: opts.jump.flatten(),
        sudo,
        defined_at: at.to_string(),
    }))
}

/// Host names and addresses go to `ssh` as arguments: refuse anything that
/// could be read as an option or that is not a plain host word.
fn check_word(at: &str, field: &str, host: &str, value: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && !value.starts_with('-')
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '%')
        });
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "{at}: field `{field}` of host `{host}` is `{value}`, which is not a host name or address (letters, digits, `.-_:` only, not starting with `-`)"
        )))
    }
}

/// ProxyJump: `[user@]host[:port]` or `ssh://...`, comma separated.
fn check_jump(var: &Var, key: &str, host: &str, jump: &str) -> anyhow::Result<()> {
    for part in jump.split(',').map(str::trim) {
        let ok = !part.is_empty()
            && !part.starts_with('-')
            && part.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '-' | '_' | ':' | '@' | '[' | ']' | '%' | '/')
            });
        if !ok {
            return Err(field_error(
                var,
                key,
                host,
                &format!("whose jump host `{part}` is not `[user@]host[:port]`"),
                "write e.g. -J ops@bastion:22",
            ));
        }
    }
    Ok(())
}

/// What swarm-upgrade takes from ssh arguments. As in `ssh`, the first value wins.
#[derive(Debug, Default)]
struct SshOpts {
    /// `Some(None)`: `ProxyJump none`.
    jump: Option<Option<String>>,
    known_hosts: Option<String>,
}

impl SshOpts {
    fn parse(&mut self, words: &[String]) -> Result<(), String> {
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

// ---------------------------------------------------------------------------
// Host patterns: `name`, `name:port`, `[v6]:port`, `node[01:20]`, `node[a:c]`

/// Expands a host pattern to `(name, port)` pairs.
fn expand_pattern(pattern: &str) -> Result<Vec<(String, Option<u16>)>, String> {
    let (name, port) = split_port(pattern)?;
    let names = expand_ranges(&name)?;
    Ok(names.into_iter().map(|n| (n, port)).collect())
}

fn split_port(pattern: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = pattern.strip_prefix('[')
        && let Some((v6, tail)) = rest.split_once(']')
        && v6.contains(':')
        && !is_range(v6)
    {
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if tail.is_empty() => None,
            None => return Err(format!("`{pattern}` is not `[address]:port`")),
        };
        return Ok((v6.to_string(), port));
    }
    if let Some((head, p)) = pattern.rsplit_once(':')
        && !p.is_empty()
        && p.chars().all(|c| c.is_ascii_digit())
        && !outside_brackets(head).contains(':')
    {
        return Ok((head.to_string(), Some(parse_port(p)?)));
    }
    Ok((pattern.to_string(), None))
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port `{p}` is not a number from 1 to 65535"))
}

fn outside_brackets(s: &str) -> String {
    let mut depth = 0usize;
    s.chars()
        .filter(|c| {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// `01:20`, `a:c`, `1:9:2` (`:` separated start, end, optional step).
fn is_range(inner: &str) -> bool {
    let parts: Vec<&str> = inner.split(':').collect();
    (parts.len() == 2 || parts.len() == 3)
        && !parts[1].is_empty()
        && parts[..2]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts
            .get(2)
            .is_none_or(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
}

fn expand_ranges(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let Some(len) = name[open..].find(']') else {
        return Err(format!("`{name}` has `[` without `]`"));
    };
    let inner = &name[open + 1..open + len];
    if !is_range(inner) {
        return Err(format!(
            "`[{inner}]` in `{name}` is not a range; write e.g. node[01:20] or node[a:c]"
        ));
    }
    let (head, tail) = (&name[..open], &name[open + len + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let (beg, end) = (if parts[0].is_empty() { "0" } else { parts[0] }, parts[1]);
    let step: usize = match parts.get(2) {
        Some(s) => s
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .ok_or(format!("the step of `[{inner}]` must be at least 1"))?,
        None => 1,
    };
    let items: Vec<String> = if beg.chars().all(|c| c.is_ascii_digit())
        && end.chars().all(|c| c.is_ascii_digit())
    {
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(format!(
                    "`[{inner}]`: a zero-padded range needs a start and an end of the same width, e.g. [01:20]"
                ));
            }
            beg.len()
        } else {
            0
        };
        let (b, e): (u64, u64) = match (beg.parse(), end.parse()) {
            (Ok(b), Ok(e)) => (b, e),
            _ => return Err(format!("`[{inner}]`: the numbers are too large")),
        };
        if b > e {
            return Err(format!("`[{inner}]`: the start is after the end"));
        }
        if (e - b) / step as u64 >= MAX_RANGE as u64 {
            return Err(format!(
                "`[{inner}]` expands to more than {MAX_RANGE} hosts"
            ));
        }
        (b..=e)
            .step_by(step)
            .map(|i| format!("{i:0width$}"))
            .collect()
    } else {
        let one = |s: &str| {
            let mut c = s.chars();
            match (c.next(), c.next()) {
                (Some(ch), None) if ch.is_ascii_alphabetic() => Some(ch),
                _ => None,
            }
        };
        let (Some(b), Some(e)) = (one(beg), one(end)) else {
            return Err(format!(
                "`[{inner}]`: a range is numbers ([01:20]) or single letters ([a:c])"
            ));
        };
        if b > e {
            return Err(format!("`[{inner}]`: the start is after the end"));
        }
        (b..=e).step_by(step).map(String::from).collect()
    };
    let mut out = vec![];
    for item in items {
        for rest in expand_ranges(tail)? {
            out.push(format!("{head}{item}{rest}"));
            if out.len() > MAX_RANGE {
                return Err(format!("`{name}` expands to more than {MAX_RANGE} hosts"));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// INI

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

fn parse_ini(text: &str, path: &Path) -> anyhow::Result<Model> {
    let mut m = Model::new(path);
    let mut section = Section::Hosts("ungrouped".to_string());
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = ini_section(line, &at)?;
            let (Section::Hosts(g) | Section::Vars(g) | Section::Children(g)) = &section;
            m.group(g);
            continue;
        }
        match &section {
            Section::Hosts(g) => ini_host_line(&mut m, g, line, &at)?,
            Section::Vars(g) => {
                let Some((key, value)) = line.split_once('=') else {
                    return Err(usage(format!(
                        "{at}: `{line}` in [{g}:vars] is not a variable; fix: write key=value, e.g. ansible_user=ops"
                    )));
                };
                let key = key.trim();
                check_var_name(&at, key)?;
                let value = Value::String(unquote(value.trim()));
                m.group(g).vars.insert(key.to_string(), Var { value, at });
            }
            Section::Children(g) => {
                if line.contains(char::is_whitespace) || line.contains('=') {
                    return Err(usage(format!(
                        "{at}: `{line}` in [{g}:children] is not a group name; fix: write one child group per line"
                    )));
                }
                if line == g {
                    return Err(usage(format!(
                        "{at}: group `{g}` lists itself in [{g}:children]; fix: remove that line"
                    )));
                }
                m.add_child(g, line);
            }
        }
    }
    Ok(m)
}

fn ini_section(line: &str, at: &str) -> anyhow::Result<Section> {
    let bad = |why: &str| {
        usage(format!(
            "{at}: `{line}` {why}; fix: write [group], [group:vars] or [group:children]"
        ))
    };
    let inner = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .ok_or_else(|| bad("is not a section header"))?;
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "[]:=".contains(c)) {
        return Err(bad("does not name a group"));
    }
    let name = name.to_string();
    match kind {
        None | Some("hosts") => Ok(Section::Hosts(name)),
        Some("vars") => Ok(Section::Vars(name)),
        Some("children") => Ok(Section::Children(name)),
        Some(k) => Err(bad(&format!("has the unknown section type `:{k}`"))),
    }
}

fn ini_host_line(m: &mut Model, group: &str, line: &str, at: &str) -> anyhow::Result<()> {
    let words = shlex::split(line).ok_or_else(|| {
        usage(format!(
            "{at}: unbalanced quotes in `{line}`; fix: close the quotes"
        ))
    })?;
    let Some((pattern, rest)) = words.split_first() else {
        return Ok(());
    };
    let hosts =
        expand_pattern(pattern).map_err(|e| usage(format!("{at}: host `{pattern}`: {e}")))?;
    let mut vars = vec![];
    for w in rest {
        let Some((k, v)) = w.split_once('=') else {
            return Err(usage(format!(
                "{at}: `{w}` after host `{pattern}` is not a variable; fix: write `name key=value ...`, e.g. `{pattern} ansible_host=10.0.0.11`"
            )));
        };
        check_var_name(at, k)?;
        vars.push((k.to_string(), Value::String(v.to_string())));
    }
    for (name, port) in hosts {
        let host = m.add_host(group, &name, at);
        if let Some(p) = port {
            host.vars.insert(
                "ansible_port".to_string(),
                Var {
                    value: Value::from(p),
                    at: at.to_string(),
                },
            );
        }
        for (k, v) in &vars {
            host.vars.insert(
                k.clone(),
                Var {
                    value: v.clone(),
                    at: at.to_string(),
                },
            );
        }
    }
    Ok(())
}

fn check_var_name(at: &str, key: &str) -> anyhow::Result<()> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(usage(format!(
            "{at}: `{key}` is not a variable name (letters, digits, `_`); fix: write key=value"
        )));
    }
    Ok(())
}

/// Drops `#` comments (at the start of a word, outside quotes) and `;` comment lines.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with(';') {
        return "";
    }
    let (mut single, mut double, mut escaped, mut prev_space) = (false, false, false, true);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && !single {
            escaped = true;
        } else if c == '\'' && !double {
            single = !single;
        } else if c == '"' && !single {
            double = !double;
        } else if c == '#' && !single && !double && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// `'x y'` or `"x y"` → `x y`; anything else as written.
fn unquote(v: &str) -> String {
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted
        && let Some(mut words) = shlex::split(v)
        && words.len() == 1
    {
        return words.remove(0);
    }
    v.to_string()
}

// ---------------------------------------------------------------------------
// YAML

/// A mapping that keeps its order (serde_json's map sorts its keys).
#[derive(Debug)]
struct Ordered<K, T>(Vec<(K, T)>);

impl<'de, K: Deserialize<'de>, T: Deserialize<'de>> Deserialize<'de> for Ordered<K, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K, T>(PhantomData<(K, T)>);
        impl<'de, K: Deserialize<'de>, T: Deserialize<'de>> Visitor<'de> for V<K, T> {
            type Value = Ordered<K, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = vec![];
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(vec![]))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(vec![]))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

type YVars = Ordered<Spanned<String>, Value>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YGroup {
    #[serde(default)]
    hosts: Option<Ordered<Spanned<String>, Option<YVars>>>,
    #[serde(default)]
    children: Option<Ordered<Spanned<String>, Option<YGroup>>>,
    #[serde(default)]
    vars: Option<YVars>,
}

fn parse_yaml(text: &str, path: &Path) -> anyhow::Result<Model> {
    let top: Ordered<Spanned<String>, Option<YGroup>> = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: {}\n  expected an Ansible YAML inventory: all: {{hosts: {{NAME: {{VARS}}}}, children: {{GROUP: {{hosts, children, vars}}}}, vars: {{VARS}}}}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut m = Model::new(path);
    for (name, group) in top.0 {
        if let Some(g) = group {
            yaml_group(&mut m, &name.value, g, path)?;
        } else {
            m.group(&name.value);
        }
    }
    Ok(m)
}

fn yaml_at(path: &Path, s: &Spanned<String>) -> String {
    format!("{}:{}", path.display(), s.referenced.line())
}

fn yaml_vars(path: &Path, vars: YVars) -> Vars {
    vars.0
        .into_iter()
        .map(|(k, value)| {
            let at = yaml_at(path, &k);
            (k.value, Var { value, at })
        })
        .collect()
}

fn yaml_group(m: &mut Model, name: &str, g: YGroup, path: &Path) -> anyhow::Result<()> {
    m.group(name);
    for (pattern, vars) in g.hosts.map(|h| h.0).unwrap_or_default() {
        let at = yaml_at(path, &pattern);
        let hosts = expand_pattern(&pattern.value)
            .map_err(|e| usage(format!("{at}: host `{}`: {e}", pattern.value)))?;
        let vars = vars.map(|v| yaml_vars(path, v)).unwrap_or_default();
        for (h, port) in hosts {
            let host = m.add_host(name, &h, &at);
            if let Some(p) = port {
                host.vars.insert(
                    "ansible_port".to_string(),
                    Var {
                        value: Value::from(p),
                        at: at.clone(),
                    },
                );
            }
            host.vars.extend(vars.clone());
        }
    }
    if let Some(v) = g.vars {
        let vars = yaml_vars(path, v);
        m.group(name).vars.extend(vars);
    }
    for (child, cg) in g.children.map(|c| c.0).unwrap_or_default() {
        if child.value == name {
            return Err(usage(format!(
                "{}: group `{name}` lists itself in its children; fix: remove it",
                yaml_at(path, &child)
            )));
        }
        m.add_child(name, &child.value);
        if let Some(cg) = cg {
            yaml_group(m, &child.value, cg, path)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// group_vars/ and host_vars/ next to an inventory file

fn read_var_dirs(m: &mut Model, base: &Path) -> anyhow::Result<()> {
    let groups: Vec<String> = m.groups.keys().cloned().collect();
    for g in groups {
        let vars = read_var_files(&base.join("group_vars"), &g)?;
        m.group(&g).dir_vars = vars;
    }
    let hosts: Vec<String> = m.hosts.keys().cloned().collect();
    for h in hosts {
        let vars = read_var_files(&base.join("host_vars"), &h)?;
        if let Some(host) = m.hosts.get_mut(&h) {
            host.dir_vars = vars;
        }
    }
    Ok(())
}

/// `DIR/NAME`, `DIR/NAME.{yml,yaml,json}`, or the files of `DIR/NAME/` (by name).
fn read_var_files(dir: &Path, name: &str) -> anyhow::Result<Vars> {
    let mut files = vec![];
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = dir.join(format!("{name}{ext}"));
        if p.is_file() {
            files.push(p);
        } else if ext.is_empty() && p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| usage(format!("{}: cannot read: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && match f.extension().and_then(|e| e.to_str()) {
                            None => !f
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.')),
                            Some(e) => matches!(e, "yml" | "yaml" | "json"),
                        }
                })
                .collect();
            inner.sort();
            files.extend(inner);
        }
    }
    let mut vars = Vars::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| usage(format!("{}: cannot read: {e}", f.display())))?;
        if text.starts_with("$ANSIBLE_VAULT") {
            continue;
        }
        let v: YVars = serde_saphyr::from_str(&text).map_err(|e| {
            usage(format!(
                "{}: {}\n  expected a mapping of variables, e.g. `ansible_user: ops`",
                f.display(),
                e.to_string().trim_end()
            ))
        })?;
        vars.extend(yaml_vars(&f, v));
    }
    Ok(vars)
}

// ---------------------------------------------------------------------------
// `ansible-inventory --list` JSON

/// Maps `ansible-inventory --list` output (`_meta.hostvars`, and per group
/// `hosts`, `children`, `vars`; a bare list is a list of hosts).
fn parse_list_json(text: &str, path: &Path) -> anyhow::Result<Inventory> {
    let shown = path.display();
    let top: Ordered<String, Value> = serde_json::from_str(text).map_err(|e| {
        usage(format!(
            "{shown}: {e}\n  expected the JSON that `ansible-inventory -i INVENTORY --list` prints"
        ))
    })?;
    let mut m = Model::new(path);
    let mut hostvars = serde_json::Map::new();
    let mut groups: Vec<(String, Value)> = vec![];
    for (name, v) in top.0 {
        if name == "_meta" {
            match v.get("hostvars") {
                Some(Value::Object(h)) => hostvars = h.clone(),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(usage(format!(
                        "{shown}: `_meta.hostvars` is not an object; fix: map each host name to its variables"
                    )));
                }
            }
        } else {
            groups.push((name, v));
        }
    }
    // Visit groups from `all` down, child groups before a group's own hosts
    // (the order of `ansible-inventory --graph`).
    fn visit<'a>(
        g: &'a str,
        groups: &'a [(String, Value)],
        index: &HashMap<&str, usize>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<usize>,
    ) {
        let Some(&i) = index.get(g) else { return };
        if !seen.insert(g) {
            return;
        }
        if let Some(Value::Array(children)) = groups[i].1.get("children") {
            for c in children.iter().filter_map(Value::as_str) {
                visit(c, groups, index, seen, order);
            }
        }
        order.push(i);
    }
    let index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let mut order = vec![];
    visit("all", &groups, &index, &mut BTreeSet::new(), &mut order);
    for i in 0..groups.len() {
        if !order.contains(&i) {
            order.push(i);
        }
    }
    for i in order {
        let (name, v) = &groups[i];
        let gat = format!("{shown} (group {name})");
        let bad = |field: &str, want: &str| {
            usage(format!(
                "{gat}: `{field}` is not {want}; fix: write the format `ansible-inventory --list` prints"
            ))
        };
        m.group(name);
        let (hosts, children, vars) = match v {
            Value::Array(h) => (Some(h), None, None),
            Value::Object(o) => {
                let list = |field: &str| match o.get(field) {
                    Some(Value::Array(a)) => Ok(Some(a)),
                    None | Some(Value::Null) => Ok(None),
                    Some(_) => Err(bad(field, "a list")),
                };
                let vars = match o.get("vars") {
                    Some(Value::Object(v)) => Some(v),
                    None | Some(Value::Null) => None,
                    Some(_) => return Err(bad("vars", "an object")),
                };
                (list("hosts")?, list("children")?, vars)
            }
            Value::Null => (None, None, None),
            _ => return Err(bad(name, "an object with hosts, children and vars")),
        };
        for h in hosts.into_iter().flatten() {
            let h = h
                .as_str()
                .ok_or_else(|| bad("hosts", "a list of host names"))?;
            m.add_host(name, h, &format!("{shown} (host {h})"));
        }
        for c in children.into_iter().flatten() {
            let c = c
                .as_str()
                .ok_or_else(|| bad("children", "a list of group names"))?;
            if c != name {
                m.add_child(name, c);
            }
        }
        for (k, value) in vars.into_iter().flatten() {
            m.group(name).vars.insert(
                k.clone(),
                Var {
                    value: value.clone(),
                    at: gat.clone(),
                },
            );
        }
    }
    for (h, vars) in hostvars {
        let at = format!("{shown} (host {h})");
        let Value::Object(vars) = vars else {
            return Err(usage(format!(
                "{at}: `_meta.hostvars.{h}` is not an object; fix: map variable names to values"
            )));
        };
        let host = m.add_host("ungrouped", &h, &at);
        for (k, value) in vars {
            host.vars.insert(
                k,
                Var {
                    value,
                    at: at.clone(),
                },
            );
        }
    }
    // Hosts only in `_meta` were added to `ungrouped`; that only matters for `all`.
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(s: &str) -> anyhow::Result<Inventory> {
        parse_ini(s, Path::new("/inv/hosts.ini"))?.finish()
    }

    fn yaml(s: &str) -> anyhow::Result<Inventory> {
        parse_yaml(s, Path::new("/inv/hosts.yml"))?.finish()
    }

    fn host<'a>(inv: &'a Inventory, name: &str) -> &'a SshTarget {
        inv.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in {inv:#?}"))
    }

    fn names(inv: &Inventory) -> Vec<&str> {
        inv.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    const INI: &str = r#"
# a comment
bastion.example.com ansible_connection=local

[workers]
worker[01:03] ansible_user=deploy
w-[a:b].example.com:2222   # inline comment

[managers]
mgr-1 ansible_host=10.0.0.11 ansible_port=2201
mgr-2 ansible_host=10.0.0.12 ansible_become=no

[swarm:children]
managers
workers

[swarm:vars]
ansible_user=ops
ansible_ssh_private_key_file=keys/swarm
ansible_ssh_common_args='-o StrictHostKeyChecking=no -o ProxyJump=jump@bastion.example.com:2022'

[all:vars]
ansible_port=22
ansible_user=root
"#;

    #[test]
    fn ini_groups_children_vars_ranges() {
        let inv = ini(INI).unwrap();
        // Managers first; the local-connection host is not an SSH target.
        assert_eq!(
            names(&inv),
            [
                "mgr-1",
                "mgr-2",
                "worker01",
                "worker02",
                "worker03",
                "w-a.example.com",
                "w-b.example.com"
            ]
        );
        let m1 = host(&inv, "mgr-1");
        assert_eq!(m1.address, "10.0.0.11");
        assert_eq!(m1.port, Some(2201));
        assert_eq!(m1.user.as_deref(), Some("ops"));
        assert_eq!(
            m1.identity_file.as_deref(),
            Some(Path::new("/inv/keys/swarm"))
        );
        assert_eq!(m1.jump.as_deref(), Some("jump@bastion.example.com:2022"));
        assert!(m1.sudo);
        assert_eq!(m1.defined_at, "/inv/hosts.ini:10");
        assert!(!host(&inv, "mgr-2").sudo);
        let w = host(&inv, "worker02");
        assert_eq!(w.address, "worker02");
        assert_eq!(w.user.as_deref(), Some("deploy"));
        assert_eq!(w.port, Some(22));
        assert_eq!(host(&inv, "w-b.example.com").port, Some(2222));
        assert_eq!(host(&inv, "w-b.example.com").defined_at, "/inv/hosts.ini:7");
        // Shared by every listed host: the key and the jump host, not the user.
        assert_eq!(
            inv.defaults.identity_file.as_deref(),
            Some(Path::new("/inv/keys/swarm"))
        );
        assert_eq!(
            inv.defaults.jump.as_deref(),
            Some("jump@bastion.example.com:2022")
        );
        assert_eq!(inv.defaults.user, None);
        assert_eq!(inv.defaults.port, None);
    }

    #[test]
    fn precedence_all_parent_child_host() {
        let inv = ini(
            "[all:vars]\nansible_user=a\nansible_port=1\nansible_become=false\n\
             [parent:vars]\nansible_user=p\nansible_port=2\n\
             [child:vars]\nansible_user=c\n\
             [parent:children]\nchild\n\
             [child]\nh1 ansible_user=h\nh2\n\
             [parent]\nh3\n\
             [other]\nh4\n",
        )
        .unwrap();
        let get = |n: &str| {
            let h = host(&inv, n);
            (h.user.clone().unwrap(), h.port.unwrap(), h.sudo)
        };
        assert_eq!(get("h1"), ("h".into(), 2, false));
        assert_eq!(get("h2"), ("c".into(), 2, false));
        assert_eq!(get("h3"), ("p".into(), 2, false));
        assert_eq!(get("h4"), ("a".into(), 1, false));
    }

    #[test]
    fn same_depth_groups_merge_by_priority_then_name() {
        let inv =
            ini("[b:vars]\nansible_user=from_b\n[a:vars]\nansible_user=from_a\n[a]\nh\n[b]\nh\n")
                .unwrap();
        assert_eq!(host(&inv, "h").user.as_deref(), Some("from_b"));
        let inv = ini(
            "[b:vars]\nansible_user=from_b\n[a:vars]\nansible_user=from_a\nansible_group_priority=5\n[a]\nh\n[b]\nh\n",
        )
        .unwrap();
        assert_eq!(host(&inv, "h").user.as_deref(), Some("from_a"));
    }

    #[test]
    fn duplicate_hosts_are_merged() {
        let inv = ini("[a]\nh ansible_host=10.0.0.1\n[b]\nh ansible_user=ops\n").unwrap();
        assert_eq!(inv.hosts.len(), 1);
        let h = &inv.hosts[0];
        assert_eq!(
            (h.address.as_str(), h.user.as_deref()),
            ("10.0.0.1", Some("ops"))
        );
        assert_eq!(h.defined_at, "/inv/hosts.ini:2");
    }

    #[test]
    fn become_and_sudo_default() {
        let inv = ini(
            "a ansible_user=ops\nb ansible_user=root\nc\nd ansible_user=root ansible_become=yes\ne ansible_user=ops ansible_become=0\nf ansible_become=True\n",
        )
        .unwrap();
        let s: Vec<bool> = inv.hosts.iter().map(|h| h.sudo).collect();
        assert_eq!(s, [true, false, false, true, false, true]);
        let err = ini("a ansible_become=maybe\n").unwrap_err().to_string();
        assert!(
            err.contains("hosts.ini:1: field `ansible_become` of host `a`"),
            "{err}"
        );
    }

    #[test]
    fn bad_port_names_file_line_and_field() {
        let err = ini("[managers]\nm0\nm1 ansible_port=seventy\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:3: field `ansible_port` of host `m1` is `seventy`"),
            "{err}"
        );
        assert!(err.contains("fix:"), "{err}");
        let err = ini("[g:vars]\nansible_port=99999\n[g]\nm1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:2: field `ansible_port`"),
            "{err}"
        );
        let err = ini("m1:0\n").unwrap_err().to_string();
        assert!(err.starts_with("/inv/hosts.ini:1: host `m1:0`"), "{err}");
    }

    #[test]
    fn injection_is_refused() {
        let err = ini("m1 ansible_host=-oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hosts.ini:1: field `ansible_host` of host `m1`"),
            "{err}"
        );
        let err = ini("-oProxyCommand=x\n").unwrap_err().to_string();
        assert!(err.contains("field `name`"), "{err}");
        let err = ini("m1 \"ansible_host=a b\"\n").unwrap_err().to_string();
        assert!(err.contains("field `ansible_host`"), "{err}");
        let err = ini("m1 ansible_user=-oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `ansible_user`"), "{err}");
        let err = ini("m1 \"ansible_ssh_common_args=-J -oProxyCommand=x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `ansible_ssh_common_args`"), "{err}");
    }

    #[test]
    fn ini_syntax_errors() {
        let err = ini("[g]\nh1 ansible_user\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:2: `ansible_user` after host `h1`"),
            "{err}"
        );
        let err = ini("[g:vars]\nansible_user\n").unwrap_err().to_string();
        assert!(err.starts_with("/inv/hosts.ini:2:"), "{err}");
        let err = ini("[g:hostvars]\n").unwrap_err().to_string();
        assert!(err.contains("unknown section type `:hostvars`"), "{err}");
        let err = ini("[a:children]\nb\n[b:children]\na\n[a]\nh\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("its own ancestor"), "{err}");
        let err = ini("[g]\nnode[3:1]\n").unwrap_err().to_string();
        assert!(
            err.contains("hosts.ini:2") && err.contains("start is after the end"),
            "{err}"
        );
        let err = ini("# nothing\n[g]\n").unwrap_err().to_string();
        assert!(err.contains("lists no host"), "{err}");
    }

    #[test]
    fn host_patterns() {
        let p = |s| expand_pattern(s).unwrap();
        assert_eq!(p("node[1:3]").len(), 3);
        assert_eq!(p("n[08:10]")[0].0, "n08");
        assert_eq!(
            p("r[a:b]-[1:2]")
                .into_iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            ["ra-1", "ra-2", "rb-1", "rb-2"]
        );
        assert_eq!(
            p("n[0:10:5]").into_iter().map(|h| h.0).collect::<Vec<_>>(),
            ["n0", "n5", "n10"]
        );
        assert_eq!(p("h:2222"), [("h".to_string(), Some(2222))]);
        assert_eq!(p("[fe80::1]:22"), [("fe80::1".to_string(), Some(22))]);
        assert_eq!(p("fe80::1"), [("fe80::1".to_string(), None)]);
        assert_eq!(p("n[1:2]:22")[1], ("n2".to_string(), Some(22)));
        assert!(expand_pattern("n[01:100]").is_err());
        let inv = ini("[fe80::1]:22 ansible_user=ops\n").unwrap();
        assert_eq!(inv.hosts[0].display(), "ops@fe80::1:22");
        assert!(expand_pattern("n[a:1]").is_err());
    }

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

    #[test]
    fn templates_and_vault_values_are_refused() {
        let err = ini("m ansible_host='{{ inventory_hostname }}.lan'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Jinja template"), "{err}");
        let err = yaml("all:\n  hosts:\n    m:\n      ansible_user: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6231\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hosts.yml:4: field `ansible_user`") && err.contains("ansible-vault"),
            "{err}"
        );
    }

    const YAML: &str = "\
all:
  vars:
    ansible_user: ops
    ansible_become: true
  hosts:
    bastion:
      ansible_connection: local
  children:
    swarm:
      vars:
        ansible_port: 2222
      children:
        workers:
          hosts:
            worker[1:2]:
              ansible_user: root
        swarm_managers:
          hosts:
            mgr-1:
              ansible_host: 10.0.0.11
              ansible_ssh_extra_args: -J ops@bastion
            mgr-2:
    workers:
      vars:
        ansible_port: 22
";

    #[test]
    fn yaml_inventory() {
        let inv = yaml(YAML).unwrap();
        assert_eq!(names(&inv), ["mgr-1", "mgr-2", "worker1", "worker2"]);
        let m1 = host(&inv, "mgr-1");
        assert_eq!(m1.address, "10.0.0.11");
        assert_eq!(m1.user.as_deref(), Some("ops"));
        assert_eq!(m1.port, Some(2222));
        assert_eq!(m1.jump.as_deref(), Some("ops@bastion"));
        assert_eq!(m1.defined_at, "/inv/hosts.yml:19");
        assert_eq!(host(&inv, "mgr-2").address, "mgr-2");
        let w = host(&inv, "worker2");
        assert_eq!(
            (w.user.as_deref(), w.port, w.sudo),
            (Some("root"), Some(22), true)
        );
        assert_eq!(w.defined_at, "/inv/hosts.yml:15");
        assert_eq!(inv.defaults.sudo, Some(true));
        assert_eq!(inv.defaults.user, None);
    }

    #[test]
    fn yaml_errors() {
        let err = yaml("all:\n  hosts:\n    m1:\n      ansible_port: seventy\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.yml:4: field `ansible_port` of host `m1`"),
            "{err}"
        );
        let err = yaml("all:\n  host:\n    m1:\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/inv/hosts.yml: ") && err.contains("line 2"),
            "{err}"
        );
        let err = yaml("all:\n  hosts:\n    m1:\n      ansible_host: -oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.yml:4: field `ansible_host`"), "{err}");
        let err = yaml("").unwrap_err().to_string();
        assert!(err.contains("lists no host"), "{err}");
    }

    const LIST_JSON: &str = r#"{
        "_meta": {
            "hostvars": {
                "mgr-1": {"ansible_host": "10.0.0.11", "ansible_user": "ops", "ansible_port": 2222,
                          "ansible_ssh_common_args": "-o ProxyJump=bastion"},
                "wrk-1": {"ansible_host": "10.0.0.21", "ansible_user": "ops", "ansible_become": false,
                          "ansible_ssh_common_args": "-o ProxyJump=bastion"},
                "wrk-2": {"ansible_user": "ops", "ansible_ssh_common_args": "-o ProxyJump=bastion",
                          "ansible_port": "2222"},
                "lonely": {"ansible_user": "ops", "ansible_ssh_common_args": "-o ProxyJump=bastion"}
            }
        },
        "all": {"children": ["ungrouped", "workers", "docker_swarm_manager"]},
        "docker_swarm_manager": {"hosts": ["mgr-1"]},
        "ungrouped": {},
        "workers": {"hosts": ["wrk-2", "wrk-1"], "vars": {"ansible_port": 22}}
    }"#;

    #[test]
    fn list_json() {
        let inv = parse_list_json(LIST_JSON, Path::new("/inv/list.json")).unwrap();
        assert_eq!(names(&inv), ["mgr-1", "wrk-2", "wrk-1", "lonely"]);
        let m = host(&inv, "mgr-1");
        assert_eq!(m.display(), "ops@10.0.0.11:2222");
        assert_eq!(m.jump.as_deref(), Some("bastion"));
        assert!(m.sudo);
        assert_eq!(m.defined_at, "/inv/list.json (host mgr-1)");
        assert!(!host(&inv, "wrk-1").sudo);
        assert_eq!(host(&inv, "wrk-1").port, Some(22));
        assert_eq!(host(&inv, "wrk-2").port, Some(2222));
        assert_eq!(host(&inv, "wrk-2").address, "wrk-2");
        assert_eq!(inv.defaults.user.as_deref(), Some("ops"));
        assert_eq!(inv.defaults.jump.as_deref(), Some("bastion"));
        assert_eq!(inv.defaults.sudo, None);
        let (t, _) = inv.target_for("wrk-9", "10.0.0.29");
        assert_eq!(t.display(), "ops@10.0.0.29");

        let err = parse_list_json(
            r#"{"_meta": {"hostvars": {"m": {"ansible_port": "x"}}}}"#,
            Path::new("l.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("l.json (host m): field `ansible_port` of host `m`"),
            "{err}"
        );
        let err = parse_list_json("{\"all\": [", Path::new("l.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("l.json: ") && err.contains("line 1"),
            "{err}"
        );
        let err = parse_list_json(r#"{"g": {"hosts": "m"}}"#, Path::new("l.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(group g): `hosts` is not a list"), "{err}");
    }

    #[test]
    fn manager_group_names() {
        for g in [
            "managers",
            "manager",
            "swarm_managers",
            "docker_swarm_manager",
            "Swarm-Managers",
        ] {
            assert!(is_manager_group(g), "{g}");
        }
        for g in ["workers", "nomanagers", "manager_nodes"] {
            assert!(!is_manager_group(g), "{g}");
        }
    }

    #[test]
    fn format_detection() {
        let d = |p: &str, t: &str| detect_format(Path::new(p), t);
        assert_eq!(d("hosts", "[managers]\nm1\n"), Format::Ini);
        assert_eq!(d("hosts", "# c\nm1:2222 ansible_user=x\n"), Format::Ini);
        assert_eq!(d("hosts", "---\nall:\n"), Format::Yaml);
        assert_eq!(d("hosts", "all:\n  hosts:\n"), Format::Yaml);
        assert_eq!(d("inv", "{\"_meta\": {}}"), Format::Json);
        assert_eq!(d("inv.yml", "{}"), Format::Yaml);
    }

    #[test]
    fn fixtures_and_var_dirs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible");
        for file in ["hosts.ini", "hosts.yml"] {
            let inv = load_direct(&dir.join(file)).unwrap();
            assert_eq!(
                names(&inv),
                ["mgr-1", "mgr-2", "worker01", "worker02", "worker03"],
                "{file}"
            );
            let m = host(&inv, "mgr-1");
            assert_eq!(m.display(), "ops@10.0.0.11", "{file}");
            // group_vars/swarm.yml
            assert_eq!(m.jump.as_deref(), Some("ops@bastion.example.com"), "{file}");
            // host_vars/mgr-2.yml
            assert_eq!(host(&inv, "mgr-2").port, Some(2222), "{file}");
            assert_eq!(inv.defaults.user.as_deref(), Some("ops"), "{file}");
        }
        let inv = load_direct(&dir.join("list.json")).unwrap();
        assert_eq!(
            names(&inv),
            ["mgr-1", "mgr-2", "worker01", "worker02", "worker03"]
        );
        assert_eq!(host(&inv, "mgr-2").port, Some(2222));

        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("group_vars/all")).unwrap();
        std::fs::write(
            tmp.path().join("group_vars/all/10-conn.yml"),
            "ansible_user: ops\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("group_vars/all/20-vault.yml"),
            "$ANSIBLE_VAULT;1.1;AES256\n6231\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("group_vars/g"), "ansible_port: nope\n").unwrap();
        let inv_path = tmp.path().join("hosts");
        std::fs::write(&inv_path, "[g]\nh\n").unwrap();
        let err = load_direct(&inv_path).unwrap_err().to_string();
        assert!(
            err.contains("group_vars/g:1: field `ansible_port` of host `h`"),
            "{err}"
        );
        std::fs::write(tmp.path().join("group_vars/g"), "ansible_port: 2200\n").unwrap();
        let inv = load_direct(&inv_path).unwrap();
        assert_eq!(inv.hosts[0].display(), "ops@h:2200");

        std::fs::write(&inv_path, "#!/usr/bin/env python3\nprint('{}')\n").unwrap();
        let err = load_direct(&inv_path).unwrap_err().to_string();
        assert!(err.contains("dynamic inventory script"), "{err}");
        let err = load_direct(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }
}
