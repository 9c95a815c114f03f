//! Host patterns: `name`, `name:port`, `[v6]:port`, `node[01:20]`, `node[a:c]`.
//!
//! Shared by the INI and YAML readers, which both accept Ansible's ranges.

/// Upper bound on the hosts one range pattern may expand to.
const MAX_RANGE: usize = 100_000;

/// Expands a host pattern to `(name, port)` pairs.
pub(super) fn expand_pattern(pattern: &str) -> Result<Vec<(String, Option<u16>)>, String> {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::ini;
    use super::*;

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
}
