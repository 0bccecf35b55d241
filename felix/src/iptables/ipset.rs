//! ipset planning: parse `ipset save` (our sets of one family only: `cali4` prefix for
//! IPv4, `cali6` for IPv6, so the two programmers never touch each other's sets) and render two
//! `ipset restore` scripts: before the iptables write (create new sets; refill changed
//! ones through a temporary set and `swap`), and after it (destroy sets no rule uses).
//!
//! Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::policy::model::{Family, IpSetKind, IpSetSpec};
use crate::policy::names::{ipset_family, ipset_prefix, ipset_temp};

/// Sets as read back; sets of a type we do not use appear with no kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedSets {
    pub sets: BTreeMap<String, (Option<IpSetKind>, BTreeSet<String>)>,
}

/// Parse `ipset save` output, keeping our IPv4 sets only.
pub fn parse(text: &str) -> SavedSets {
    parse_family(text, Family::V4)
}

/// Parse `ipset save` output, keeping our sets of `family` only.
pub fn parse_family(text: &str, family: Family) -> SavedSets {
    let ours = ipset_prefix(family);
    let mut out = SavedSets::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("create"), Some(name), Some(kind)) if name.starts_with(ours) => {
                out.sets
                    .insert(name.to_string(), (IpSetKind::parse(kind), BTreeSet::new()));
            }
            (Some("add"), Some(name), Some(member)) if name.starts_with(ours) => {
                if let Some((_, m)) = out.sets.get_mut(name) {
                    m.insert(normalize(member));
                }
            }
            _ => {}
        }
    }
    out
}

/// `ipset save` prints /32 (IPv4) and /128 (IPv6) networks of `hash:net` sets as bare
/// addresses.
pub fn normalize(member: &str) -> String {
    let bare = match member.strip_suffix("/128") {
        Some(b) if b.contains(':') => b,
        _ => member.strip_suffix("/32").unwrap_or(member),
    };
    bare.to_string()
}

/// The two scripts of one update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetPlan {
    /// Run with `ipset -exist restore` before the iptables write.
    pub before: String,
    /// Run with `ipset -exist restore` after the iptables write.
    pub after: String,
    pub created: usize,
    pub swapped: usize,
    pub destroyed: usize,
}

fn create_line(out: &mut String, name: &str, kind: IpSetKind) {
    let family = ipset_family(name).unwrap_or_default().ipset_family();
    let _ = writeln!(
        out,
        "create {name} {} family {family} hashsize 1024 maxelem 1048576",
        kind.name()
    );
}

/// Plan the ipset changes from `actual` to `desired`.
pub fn plan(desired: &BTreeMap<String, IpSetSpec>, actual: &SavedSets) -> SetPlan {
    let mut p = SetPlan::default();
    for (name, spec) in desired {
        let want: BTreeSet<String> = spec.members.iter().map(|m| normalize(m)).collect();
        match actual.sets.get(name) {
            Some((Some(kind), have)) if *kind == spec.kind => {
                if *have == want {
                    continue;
                }
                let tmp = ipset_temp(name);
                create_line(&mut p.before, &tmp, spec.kind);
                let _ = writeln!(p.before, "flush {tmp}");
                for m in &want {
                    let _ = writeln!(p.before, "add {tmp} {m}");
                }
                let _ = writeln!(p.before, "swap {tmp} {name}");
                let _ = writeln!(p.before, "destroy {tmp}");
                p.swapped += 1;
            }
            Some(_) => {
                // Wrong type: only a set no rule references can be replaced; the rules
                // naming it use the same name, so recreate in place.
                let _ = writeln!(p.before, "destroy {name}");
                create_line(&mut p.before, name, spec.kind);
                for m in &want {
                    let _ = writeln!(p.before, "add {name} {m}");
                }
                p.created += 1;
            }
            None => {
                create_line(&mut p.before, name, spec.kind);
                for m in &want {
                    let _ = writeln!(p.before, "add {name} {m}");
                }
                p.created += 1;
            }
        }
    }
    for name in actual.sets.keys() {
        if !desired.contains_key(name) {
            let _ = writeln!(p.after, "destroy {name}");
            p.destroyed += 1;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: IpSetKind, m: &[&str]) -> IpSetSpec {
        IpSetSpec {
            kind,
            members: m.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parse_keeps_ours_and_normalizes() {
        let s = parse(
            "create other hash:ip family inet\nadd other 1.1.1.1\n\
             create cali40e hash:net family inet hashsize 1024 maxelem 65536\n\
             add cali40e 10.0.0.5\nadd cali40e 10.1.0.0/16\n",
        );
        assert_eq!(s.sets.len(), 1);
        let (k, m) = &s.sets["cali40e"];
        assert_eq!(*k, Some(IpSetKind::HashNet));
        assert!(m.contains("10.0.0.5") && m.contains("10.1.0.0/16"));
    }

    #[test]
    fn create_swap_destroy() {
        let mut desired = BTreeMap::new();
        desired.insert(
            "cali40new".to_string(),
            spec(IpSetKind::HashIp, &["10.0.0.1"]),
        );
        desired.insert(
            "cali40chg".to_string(),
            spec(IpSetKind::HashNet, &["10.0.0.9/32"]),
        );
        desired.insert(
            "cali40same".to_string(),
            spec(IpSetKind::HashIp, &["10.0.0.2"]),
        );
        let actual = parse(
            "create cali40chg hash:net family inet\nadd cali40chg 10.0.0.8\n\
             create cali40same hash:ip family inet\nadd cali40same 10.0.0.2\n\
             create cali40old hash:ip family inet\n",
        );
        let p = plan(&desired, &actual);
        assert_eq!((p.created, p.swapped, p.destroyed), (1, 1, 1));
        assert!(p.before.contains("create cali40new hash:ip"));
        assert!(
            p.before
                .contains("add cali4tchg 10.0.0.9\nswap cali4tchg cali40chg\ndestroy cali4tchg\n")
        );
        assert!(!p.before.contains("cali40same"));
        assert_eq!(p.after, "destroy cali40old\n");
    }

    #[test]
    fn v6_sets_are_inet6_and_families_stay_apart() {
        let text = "create cali40a hash:ip family inet\nadd cali40a 10.0.0.1\n\
                    create cali60a hash:net family inet6\nadd cali60a fd00::5\n\
                    add cali60a fd00:1::/64\n";
        let v4 = parse(text);
        let v6 = parse_family(text, Family::V6);
        assert_eq!(v4.sets.keys().collect::<Vec<_>>(), vec!["cali40a"]);
        assert_eq!(v6.sets.keys().collect::<Vec<_>>(), vec!["cali60a"]);
        assert!(v6.sets["cali60a"].1.contains("fd00::5"));
        let mut desired = BTreeMap::new();
        desired.insert(
            "cali60a".to_string(),
            spec(IpSetKind::HashNet, &["fd00::5/128", "fd00:1::/64"]),
        );
        assert_eq!(
            plan(&desired, &v6),
            SetPlan::default(),
            "/128 reads back bare"
        );
        desired.insert(
            "cali60new".to_string(),
            spec(IpSetKind::HashIp, &["fd00::7"]),
        );
        let p = plan(&desired, &v6);
        assert!(
            p.before
                .starts_with("create cali60new hash:ip family inet6 "),
            "{}",
            p.before
        );
        // The v6 plan never destroys the v4 set it did not read.
        assert_eq!(p.destroyed, 0);
        assert_eq!(normalize("10.0.0.0/32"), "10.0.0.0");
        assert_eq!(normalize("fd00::/128"), "fd00::");
    }
}
