//! Host facts: one shell script per host, one SSH round trip, parsed by a
//! pure function. The script only reads; it changes nothing on the host.

use std::collections::BTreeMap;

use crate::facts::model::{
    Firewall, HostFacts, InitSystem, LocalImage, OsRelease, PackageManager, PortProbe,
};
use crate::playbook::HOST_STATE_DIR;

/// Engine-related packages whose installed and available versions matter.
pub const ENGINE_PACKAGES: [&str; 10] = [
    "docker.io",
    "docker-cli",
    "docker-ce",
    "docker-ce-cli",
    "containerd",
    "containerd.io",
    "runc",
    "docker-buildx-plugin",
    "docker-compose-plugin",
    "docker-ce-rootless-extras",
];

/// The fact-gathering script. Sections start with `### name`; every command
/// may fail (the section is then empty) without stopping the rest. The raw
/// table is looked for in /sys, /proc and modinfo rather than with
/// `iptables -t raw`, which would load the kernel module: the script only reads.
/// Behind nf_tables (often built into the kernel, so absent from /sys/module)
/// a raw table is an ordinary nft table: a working `iptables-nft-save` is enough.
///
/// `peers` are the other nodes' swarm ports (address, port) that this host
/// tries to open a TCP connection to (`swarm-ports`), all at once, each
/// given 3 seconds.
pub fn script(bundle_paths: &[String], peers: &[(String, u16)]) -> String {
    let pkgs = ENGINE_PACKAGES.join(" ");
    // PATH: dockerd lives in /usr/sbin, which a non-root login's PATH lacks
    // (the facts are read without sudo when sudo is refused; sudo's
    // secure_path has it).
    let mut s = format!(
        r#"export LC_ALL=C
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH
echo '### os-release'; cat /etc/os-release 2>/dev/null
echo '### arch'; uname -m
echo '### init'; if [ -d /run/systemd/system ]; then echo systemd; elif [ -x /etc/init.d/docker ]; then echo sysvinit; else echo unknown; fi
echo '### pkgmgr'; for p in apt-get dnf yum; do command -v $p >/dev/null 2>&1 && echo $p; done
echo '### dpkg'; command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${{Package}}\t${{Version}}\t${{db:Status-Abbrev}}\n' {pkgs} 2>/dev/null
echo '### rpm'; command -v rpm >/dev/null 2>&1 && rpm -q --qf '%{{NAME}}\t%|EPOCH?{{%{{EPOCH}}:}}:{{}}|%{{VERSION}}-%{{RELEASE}}\n' docker-ce docker-ce-cli containerd.io 2>/dev/null | grep -v 'not installed'
echo '### madison'; command -v apt-cache >/dev/null 2>&1 && apt-cache madison {pkgs} 2>/dev/null
echo '### dnf-list'; command -v dnf >/dev/null 2>&1 && dnf -q list --showduplicates docker-ce docker-ce-cli containerd.io 2>/dev/null
echo '### held'; command -v apt-mark >/dev/null 2>&1 && apt-mark showhold 2>/dev/null
echo '### df'; df -Pk /var/lib/docker {state} / 2>/dev/null
echo '### daemon.json'; cat /etc/docker/daemon.json 2>/dev/null
echo '### dockerd'; p=$(command -v dockerd 2>/dev/null) && {{ echo "path $p"; dockerd --version 2>/dev/null | sed 's/^/version /'; command -v dpkg >/dev/null 2>&1 && dpkg -S "$(readlink -f "$p")" 2>/dev/null | sed 's/^/owner /; s/:.*//'; command -v rpm >/dev/null 2>&1 && rpm -qf --qf '%{{NAME}}\n' "$p" 2>/dev/null | grep -v 'not owned' | sed 's/^/owner /'; }}
echo '### apparmor'; cat /sys/module/apparmor/parameters/enabled 2>/dev/null; command -v apparmor_parser >/dev/null 2>&1 && echo parser
echo '### standalone'; docker ps --filter 'label!=com.docker.swarm.service.id' --format '{{{{.Names}}}}' 2>/dev/null
echo '### docker-info'; docker info --format '{{{{.Driver}}}}|{{{{.LiveRestoreEnabled}}}}|{{{{.CgroupVersion}}}}' 2>/dev/null
echo '### swarm-node'; docker info --format '{{{{.Swarm.LocalNodeState}}}}|{{{{.Swarm.NodeID}}}}' 2>/dev/null
echo '### ipvlan'; docker network ls --filter driver=ipvlan --format '{{{{.Name}}}}' 2>/dev/null && echo '#ok'
echo '### sizes'; command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${{Package}}\t${{Installed-Size}}\n' {pkgs} 2>/dev/null
echo '### swarm-du'; du -sk /var/lib/docker/swarm 2>/dev/null
echo '### kernel-modules'; ls /sys/module 2>/dev/null && echo '#ok'
echo '### cert'; f=/var/lib/docker/swarm/certificates/swarm-node.crt; command -v openssl >/dev/null 2>&1 && [ -f $f ] && end=$(openssl x509 -enddate -noout -in $f | cut -d= -f2) && echo $(( $(date -d "$end" +%s) - $(date +%s) ))
echo '### images'; docker image ls --digests --format '{{{{.Repository}}}}|{{{{.Tag}}}}|{{{{.Digest}}}}' 2>/dev/null && echo '#ok'
echo '### flag-files'; for f in /etc/default/docker /etc/systemd/system/docker.service.d/*.conf; do [ -f "$f" ] && {{ echo "%file $f"; sed 's/^/|/' "$f"; }}; done; echo '#ok'
echo '### firewall'; command -v iptables >/dev/null 2>&1 && {{ iptables --version 2>/dev/null | sed 's/^/version /'; iptables-legacy-save 2>/dev/null | grep -q '^:DOCKER' && echo legacy-docker; iptables-nft-save 2>/dev/null | grep -q '^:DOCKER' && echo nft-docker; {{ [ -d /sys/module/iptable_raw ] || grep -qx raw /proc/net/ip_tables_names 2>/dev/null || modinfo iptable_raw >/dev/null 2>&1 || {{ iptables --version 2>/dev/null | grep -q nf_tables && iptables-nft-save >/dev/null 2>&1; }}; }} && echo raw; echo '#ok'; }}
"#,
        state = HOST_STATE_DIR
    );
    s.push_str(&port_probes(peers));
    s.push_str("echo '### bundles'\n");
    for b in bundle_paths {
        let q = shlex::try_quote(b)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        s.push_str(&format!(
            "[ -f {q} ] && printf '%s %s\\n' \"$(sha256sum < {q} | cut -c1-64)\" {q}\n"
        ));
    }
    s
}

/// Parses the script's output. `sudo_ok` is measured separately.
pub fn parse(host: &str, out: &str) -> HostFacts {
    let sections = split_sections(out);
    let get = |name: &str| sections.get(name).map(String::as_str).unwrap_or("");
    let mut f = HostFacts {
        host: host.to_string(),
        os: parse_os_release(get("os-release")),
        arch: get("arch").trim().to_string(),
        init: match get("init").trim() {
            "systemd" => InitSystem::Systemd,
            "sysvinit" => InitSystem::Sysvinit,
            _ => InitSystem::Unknown,
        },
        ..Default::default()
    };
    let mgrs: Vec<&str> = get("pkgmgr").lines().map(str::trim).collect();
    f.package_manager = if mgrs.contains(&"apt-get") {
        PackageManager::Apt
    } else if mgrs.contains(&"dnf") {
        PackageManager::Dnf
    } else if mgrs.contains(&"yum") {
        PackageManager::Yum
    } else {
        PackageManager::None
    };
    for line in get("dpkg").lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        // Only packages really installed ("ii", or "hi" when held).
        if let [name, version, status] = cols.as_slice()
            && status.trim().ends_with('i')
            && status.starts_with(['i', 'h'])
            && !version.is_empty()
        {
            f.installed.insert(name.to_string(), version.to_string());
        }
    }
    for line in get("rpm").lines() {
        if let Some((name, version)) = line.split_once('\t') {
            f.installed
                .insert(name.to_string(), version.trim().to_string());
        }
    }
    f.available = parse_madison(get("madison"));
    for (name, versions) in parse_dnf_list(get("dnf-list")) {
        f.available.entry(name).or_default().extend(versions);
    }
    f.held = get("held")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    f.disk_free = parse_df(get("df"));
    let dj = get("daemon.json");
    f.daemon_json = (!dj.trim().is_empty()).then(|| dj.to_string());
    for line in get("dockerd").lines() {
        if let Some(p) = line.strip_prefix("path ") {
            f.dockerd_path = Some(p.trim().to_string());
        } else if let Some(v) = line.strip_prefix("version ") {
            f.dockerd_version = Some(v.trim().to_string());
        } else if let Some(o) = line.strip_prefix("owner ") {
            f.dockerd_package = Some(o.trim().to_string());
        }
    }
    let aa = get("apparmor");
    f.apparmor_enabled = aa.lines().any(|l| l.trim() == "Y");
    f.apparmor_parser = aa.lines().any(|l| l.trim() == "parser");
    f.standalone_containers = get("standalone")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(line) = get("docker-info").lines().next() {
        let cols: Vec<&str> = line.trim().split('|').collect();
        if let [driver, live_restore, cgroup] = cols.as_slice() {
            f.storage_driver = Some(driver.to_string()).filter(|s| !s.is_empty());
            f.live_restore_enabled = live_restore.parse().ok();
            f.cgroup_version = Some(cgroup.to_string()).filter(|s| !s.is_empty());
        }
    }
    f.engine_node_id = parse_swarm_node(get("swarm-node"));
    f.ipvlan_networks = list_if_read(get("ipvlan"));
    for line in get("sizes").lines() {
        if let Some((name, kib)) = line.split_once('\t')
            && let Ok(kib) = kib.trim().parse::<u64>()
            && f.installed.contains_key(name)
        {
            f.installed_sizes.insert(name.to_string(), kib * 1024);
        }
    }
    f.swarm_dir_bytes = get("swarm-du")
        .split_whitespace()
        .next()
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k * 1024);
    f.node_cert_valid_secs = get("cert").trim().parse().ok();
    f.kernel_modules = list_if_read(get("kernel-modules"));
    f.images = list_if_read(get("images")).map(|lines| parse_images(&lines));
    f.daemon_flag_files = parse_flag_files(get("flag-files"));
    f.firewall = parse_firewall(get("firewall"));
    f.port_probes = list_if_read(get("ports")).map(|lines| parse_port_probes(&lines));
    for line in get("bundles").lines() {
        if let Some((sum, path)) = line.trim().split_once(' ') {
            f.bundles.insert(path.to_string(), sum.to_string());
        }
    }
    f
}

/// The `ports` section: every peer port tried at once (bash's `/dev/tcp`
/// under `timeout`, so a dropped SYN costs 3 s, not the kernel's minutes).
/// Without bash or timeout the section stays unread (`None`).
fn port_probes(peers: &[(String, u16)]) -> String {
    let mut s = String::from(
        "echo '### ports'\n\
         probe() { if timeout 3 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' \"$1\" \"$2\" 2>/dev/null; \
         then echo \"$1 $2 open\"; else echo \"$1 $2 closed\"; fi; }\n\
         if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then\n",
    );
    for (addr, port) in peers {
        let q = shlex::try_quote(addr)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        s.push_str(&format!("probe {q} {port} &\n"));
    }
    s.push_str("wait; echo '#ok'; fi\n");
    s
}

fn parse_port_probes(lines: &[String]) -> Vec<PortProbe> {
    lines
        .iter()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let (addr, port, state) = (cols.next()?, cols.next()?, cols.next()?);
            Some(PortProbe {
                addr: addr.to_string(),
                port: port.parse().ok()?,
                open: state == "open",
            })
        })
        .collect()
}

/// `REPOSITORY|TAG|DIGEST` lines.
fn parse_images(lines: &[String]) -> Vec<LocalImage> {
    lines
        .iter()
        .filter_map(|l| {
            let mut cols = l.splitn(3, '|');
            Some(LocalImage {
                repository: cols.next()?.to_string(),
                tag: cols.next()?.to_string(),
                digest: cols.next()?.to_string(),
            })
        })
        .collect()
}

/// `%file PATH` then the file's lines, each prefixed with `|` (so that no
/// line of a file can pass for a section header).
fn parse_flag_files(section: &str) -> Option<BTreeMap<String, String>> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut ok = false;
    for line in section.lines() {
        if let Some(path) = line.strip_prefix("%file ") {
            current = Some(path.trim().to_string());
            files.entry(path.trim().to_string()).or_default();
        } else if let Some(text) = line.strip_prefix('|') {
            if let Some(c) = &current {
                let f = files.get_mut(c).expect("file exists");
                f.push_str(text);
                f.push('\n');
            }
        } else if line.trim() == "#ok" {
            ok = true;
        }
    }
    ok.then_some(files)
}

fn parse_firewall(section: &str) -> Option<Firewall> {
    let lines: Vec<&str> = section.lines().map(str::trim).collect();
    if !lines.contains(&"#ok") {
        return None;
    }
    let version = lines
        .iter()
        .find_map(|l| l.strip_prefix("version "))
        .unwrap_or("");
    Some(Firewall {
        backend: if version.contains("nf_tables") {
            "nf_tables".into()
        } else if version.contains("legacy") {
            "legacy".into()
        } else {
            String::new()
        },
        legacy_has_docker: lines.contains(&"legacy-docker"),
        nft_has_docker: lines.contains(&"nft-docker"),
        raw_table: lines.contains(&"raw"),
    })
}

/// `LocalNodeState|NodeID`: the node ID of an engine in a swarm, empty for
/// one in none; `None` when the engine did not answer or cannot tell
/// (locked).
fn parse_swarm_node(text: &str) -> Option<String> {
    let (state, id) = text.lines().next()?.trim().split_once('|')?;
    match state {
        "inactive" => Some(String::new()),
        "active" | "pending" | "error" if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
}

/// A section listing names, ended by `#ok` when its command succeeded: the
/// names (possibly none), or `None` when they could not be read.
fn list_if_read(section: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = section
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (last, names) = lines.split_last()?;
    (*last == "#ok").then(|| names.iter().map(|s| s.to_string()).collect())
}

fn split_sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            current = Some(name.trim().to_string());
            map.entry(name.trim().to_string())
                .or_insert_with(String::new);
        } else if let Some(c) = &current {
            let s = map.get_mut(c).expect("section exists");
            s.push_str(line);
            s.push('\n');
        }
    }
    map
}

fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "ID" => os.id = v,
            "ID_LIKE" => os.id_like = v.split_whitespace().map(str::to_string).collect(),
            "VERSION_ID" => os.version_id = v,
            "VERSION_CODENAME" => os.codename = v,
            "PRETTY_NAME" => os.pretty_name = v,
            _ => {}
        }
    }
    os
}

/// `apt-cache madison` lines: `docker.io | 26.1.5+dfsg1-9+deb13u1 | file:/srv ./ Packages`.
fn parse_madison(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() >= 2 && !cols[0].is_empty() && !cols[1].is_empty() {
            let versions = map.entry(cols[0].to_string()).or_default();
            if !versions.iter().any(|v| v == cols[1]) {
                versions.push(cols[1].to_string());
            }
        }
    }
    map
}

/// `dnf list --showduplicates` lines: `docker-ce.x86_64  3:26.1.5-1.el9  docker-ce-stable`.
fn parse_dnf_list(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 3 && cols[0].contains('.') && !cols[0].ends_with(':') {
            let name = cols[0].rsplit_once('.').map_or(cols[0], |(n, _)| n);
            map.entry(name.to_string())
                .or_default()
                .push(cols[1].to_string());
        }
    }
    map
}

/// `df -Pk` → mount-point-independent map of each requested path's free bytes.
/// The header and the order follow the request: /var/lib/docker, state dir, /.
fn parse_df(text: &str) -> BTreeMap<String, u64> {
    let mut map = BTreeMap::new();
    let asked = ["/var/lib/docker", HOST_STATE_DIR, "/"];
    // df skips paths that do not exist, so match by mount point when possible,
    // else by order.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 6)
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let Ok(avail_kb) = row[3].parse::<u64>() else {
            continue;
        };
        let mount = row[5];
        let key = asked
            .iter()
            .find(|a| **a == mount)
            .copied()
            .or_else(|| asked.get(i).copied())
            .unwrap_or(mount);
        map.entry(key.to_string()).or_insert(avail_kb * 1024);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB_OUTPUT: &str = r#"### os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
### arch
x86_64
### init
sysvinit
### pkgmgr
apt-get
### dpkg
docker.io	20.10.24+dfsg1-1+deb12u1	ii 
containerd	1.6.20~ds1-1+b1	ii 
runc	1.1.5+ds1-1+deb12u1	ii 
docker-ce		un 
### rpm
### madison
 docker.io | 26.1.99+dfsg1-1 | file:/srv/lab-repo ./ Packages
 docker.io | 26.1.5+dfsg1-9+deb13u1 | file:/srv/lab-repo ./ Packages
 docker.io | 20.10.24+dfsg1-1+deb12u1 | file:/srv/lab-repo ./ Packages
docker-cli | 26.1.5+dfsg1-9+deb13u1 | file:/srv/lab-repo ./ Packages
### dnf-list
### held
### df
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         263174212 11373828  83982472      12% /var/lib/docker
tmpfs              2097152        0   2097152       0% /var/lib/swarm-upgrade
overlay          263174212 11373828  83982472      12% /
### daemon.json
### dockerd
path /usr/sbin/dockerd
version Docker version 20.10.24+dfsg1, build 297e128
owner docker.io
### apparmor
### standalone
### docker-info
overlay2|false|1
### swarm-node
active|m1labnodeid0000000000001
### ipvlan
#ok
### sizes
docker.io	159836
containerd	120000
### swarm-du
1532	/var/lib/docker/swarm
### kernel-modules
overlay
br_netfilter
#ok
### cert
7775000
### bundles
abc123 /srv/lab-static/docker-26.1.5.tgz
"#;

    #[test]
    fn parses_a_lab_node() {
        let f = parse("lab-m1", LAB_OUTPUT);
        assert_eq!(f.os.id, "debian");
        assert_eq!(f.os.codename, "bookworm");
        assert_eq!(f.init, InitSystem::Sysvinit);
        assert_eq!(f.package_manager, PackageManager::Apt);
        assert_eq!(f.installed.len(), 3, "{:?}", f.installed);
        assert_eq!(f.installed["docker.io"], "20.10.24+dfsg1-1+deb12u1");
        assert_eq!(f.available["docker.io"].len(), 3);
        assert_eq!(f.available["docker-cli"], ["26.1.5+dfsg1-9+deb13u1"]);
        assert_eq!(f.disk_free[HOST_STATE_DIR], 2097152 * 1024);
        assert_eq!(f.disk_free["/"], 83982472 * 1024);
        assert_eq!(f.daemon_json, None);
        assert_eq!(f.dockerd_package.as_deref(), Some("docker.io"));
        assert_eq!(f.bundles["/srv/lab-static/docker-26.1.5.tgz"], "abc123");
        assert!(!f.apparmor_enabled);
        assert_eq!(f.storage_driver.as_deref(), Some("overlay2"));
        assert_eq!(f.live_restore_enabled, Some(false));
        assert_eq!(f.ipvlan_networks, Some(vec![]));
        assert_eq!(f.installed_sizes["docker.io"], 159836 * 1024);
        assert_eq!(f.swarm_dir_bytes, Some(1532 * 1024));
        assert_eq!(f.node_cert_valid_secs, Some(7775000));
        assert_eq!(
            f.engine_node_id.as_deref(),
            Some("m1labnodeid0000000000001")
        );
        assert_eq!(
            f.kernel_modules,
            Some(vec!["overlay".to_string(), "br_netfilter".to_string()])
        );
    }

    #[test]
    fn the_engines_node_id_is_known_only_when_it_answered_in_or_out_of_a_swarm() {
        assert_eq!(parse_swarm_node("active|abc\n").as_deref(), Some("abc"));
        assert_eq!(parse_swarm_node("inactive|\n").as_deref(), Some(""));
        assert_eq!(parse_swarm_node("locked|\n"), None);
        assert_eq!(parse_swarm_node(""), None, "the engine is down");
        assert_eq!(parse_swarm_node("active|\n"), None);
    }

    #[test]
    fn parses_images_flag_files_firewall_and_ports() {
        let out = "### images\nlocalhost:1/probe|abc|<none>\nnginx|1.25|sha256:12\n#ok\n\
                   ### flag-files\n%file /etc/default/docker\n|# comment\n|### not a section\n\
                   |DOCKER_OPTS=\"--graph /x\"\n#ok\n\
                   ### firewall\nversion iptables v1.8.9 (nf_tables)\nlegacy-docker\nnft-docker\n#ok\n\
                   ### ports\n10.0.0.2 7946 closed\n10.0.0.1 2377 open\n#ok\n";
        let f = parse("h", out);
        let images = f.images.unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[1].digest, "sha256:12");
        assert_eq!(
            f.daemon_flag_files.unwrap()["/etc/default/docker"],
            "# comment\n### not a section\nDOCKER_OPTS=\"--graph /x\"\n"
        );
        let fw = f.firewall.unwrap();
        assert_eq!(fw.backend, "nf_tables");
        assert!(fw.legacy_has_docker && fw.nft_has_docker && !fw.raw_table);
        let ports = f.port_probes.unwrap();
        assert_eq!(ports.len(), 2);
        assert!(!ports[0].open && ports[1].open && ports[1].port == 2377);
        // Sections not read stay `None`, not "nothing there".
        let none = parse("h", "### images\n### ports\n");
        assert!(none.images.is_none() && none.port_probes.is_none() && none.firewall.is_none());
        assert!(none.daemon_flag_files.is_none());
    }

    #[test]
    fn script_probes_every_peer_port_quoted() {
        let s = script(&[], &[("10.0.0.1".into(), 2377), ("a b".into(), 7946)]);
        assert!(s.contains("probe 10.0.0.1 2377 &\n"), "{s}");
        assert!(s.contains("probe 'a b' 7946 &\n"), "{s}");
        assert!(s.contains("wait; echo '#ok'"), "{s}");
    }

    #[test]
    fn script_quotes_bundle_paths() {
        let path = "/srv/x y'; rm -rf /.tgz";
        let s = script(&[path.to_string()], &[]);
        let quoted = shlex::try_quote(path).unwrap();
        let line = s.lines().last().unwrap();
        // Every occurrence of the path is the quoted form.
        assert_eq!(
            line.matches(path).count(),
            line.matches(quoted.as_ref()).count(),
            "{line}"
        );
        assert_eq!(line.matches(quoted.as_ref()).count(), 3, "{line}");
    }

    #[test]
    fn script_finds_dockerd_outside_a_non_root_path() {
        // Without sudo the script runs with the login's PATH, which on Debian
        // lacks /usr/sbin, where dockerd is.
        let s = script(&[], &[]);
        let path = s.find("/usr/sbin:/sbin").expect("sbin added to PATH");
        let lookup = s.find("command -v dockerd").unwrap();
        assert!(path < lookup);
    }

    #[test]
    fn parses_dnf_listings() {
        let m = parse_dnf_list(
            "Available Packages\ndocker-ce.x86_64   3:26.1.5-1.el9   docker-ce-stable\ndocker-ce.x86_64   3:27.3.1-1.el9   docker-ce-stable\n",
        );
        assert_eq!(m["docker-ce"], ["3:26.1.5-1.el9", "3:27.3.1-1.el9"]);
    }
}
