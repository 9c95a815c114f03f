//! The injection guard for what an inventory passes to `ssh` as arguments.
//!
//! Host names, addresses and jump hosts end up on `ssh`'s command line, where
//! a value such as `-oProxyCommand=...` would be read as an option and run a
//! command. Every inventory format checks them here, so one rule guards all
//! of them and a reader cannot drift from it.

use crate::error::usage;

/// Refuses a host name or address that `ssh` could read as an option or that
/// is not a plain host word. `at` is `file:line` (or the like), `field` the
/// field that holds `value`, and `host` the inventory host it belongs to when
/// the message should name it.
pub(crate) fn check_host_word(
    at: &str,
    field: &str,
    host: Option<&str>,
    value: &str,
) -> anyhow::Result<()> {
    if is_host_word(value) {
        return Ok(());
    }
    let of_host = host.map(|h| format!(" of host `{h}`")).unwrap_or_default();
    Err(usage(format!(
        "{at}: field `{field}`{of_host} is `{value}`, which is not a host name or address (letters, digits, `.-_:` only, not starting with `-`)"
    )))
}

/// A DNS name, an IPv4 or IPv6 address (with `[]` and a `%zone`), or an
/// ssh_config alias, not starting with `-`.
pub(crate) fn is_host_word(value: &str) -> bool {
    !value.starts_with('-') && !value.is_empty() && value.chars().all(host_char)
}

/// One hop of a ProxyJump: a host word that may also carry `user@` and the
/// `ssh://` form, so `@` and `/` are allowed too.
pub(crate) fn is_jump_word(value: &str) -> bool {
    !value.starts_with('-')
        && !value.is_empty()
        && value
            .chars()
            .all(|c| host_char(c) || matches!(c, '@' | '/'))
}

fn host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_words() {
        for ok in ["mgr-1", "10.0.0.11", "fe80::1", "[fe80::1%eth0]", "a_b.lan"] {
            assert!(is_host_word(ok), "{ok}");
        }
        for bad in ["", "-oProxyCommand=x", "a b", "a;b", "u@h", "a/b", "$(x)"] {
            assert!(!is_host_word(bad), "{bad}");
        }
        assert!(is_jump_word("ops@bastion:22"));
        assert!(is_jump_word("ssh://ops@bastion:22"));
        assert!(!is_jump_word("-oProxyCommand=x"));
        assert!(!is_jump_word("a b"));
    }

    #[test]
    fn the_message_names_place_field_host_and_fix() {
        let err = check_host_word("inv:3", "address", Some("m1"), "-x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "inv:3: field `address` of host `m1` is `-x`, which is not a host name or address (letters, digits, `.-_:` only, not starting with `-`)"
        );
        let err = check_host_word("inv:2", "name", None, "-x")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("inv:2: field `name` is `-x`"), "{err}");
    }
}
