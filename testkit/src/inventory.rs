//! The swarm-upgrade inventory of a lab (YAML, read by swarm-upgrade unchanged).
//!
//! Rendered by hand rather than through a YAML library: the format is tiny, the values are
//! names and IPv4 addresses testkit generated itself, and the output should read like the
//! example in swarm-upgrade's documentation, comments included.

use crate::lab::NodeInfo;

/// File names inside the lab directory; the inventory refers to them relative to itself.
pub const IDENTITY_FILE: &str = "id_ed25519";
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
pub const INVENTORY_FILE: &str = "inventory.yaml";

/// Render the inventory for `nodes` (managers first, as `Lab::nodes` returns them).
pub fn render(lab: &str, nodes: &[NodeInfo]) -> String {
    let mut out = format!(
        "# swarm-upgrade inventory for the testkit lab \"{lab}\"\n\
         defaults:\n\
         \x20 user: upgrader\n\
         \x20 port: 22\n\
         \x20 identity_file: {IDENTITY_FILE}\n\
         \x20 known_hosts_file: {KNOWN_HOSTS_FILE}\n\
         \x20 sudo: true\n\
         hosts:\n"
    );
    for node in nodes {
        out.push_str(&format!(
            "  - name: {}\n    address: {}\n",
            node.name, node.address
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::Role;

    #[test]
    fn renders_the_documented_format() {
        let nodes = vec![
            NodeInfo {
                name: "lab-m1".into(),
                address: "172.30.0.11".parse().unwrap(),
                role: Role::Manager,
            },
            NodeInfo {
                name: "lab-w1".into(),
                address: "172.30.0.21".parse().unwrap(),
                role: Role::Worker,
            },
        ];
        let expected = "\
# swarm-upgrade inventory for the testkit lab \"lab\"
defaults:
  user: upgrader
  port: 22
  identity_file: id_ed25519
  known_hosts_file: known_hosts
  sudo: true
hosts:
  - name: lab-m1
    address: 172.30.0.11
  - name: lab-w1
    address: 172.30.0.21
";
        assert_eq!(render("lab", &nodes), expected);
    }

    #[test]
    fn an_empty_lab_still_renders_valid_yaml_keys() {
        let text = render("x", &[]);
        assert!(text.ends_with("hosts:\n"));
    }
}
