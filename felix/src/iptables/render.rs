//! Rendering desired tables to `iptables-restore --noflush` text, rewriting only chains
//! whose rule hashes differ from what is in the kernel.
//!
//! Pure: `plan_table(table, desired, actual) -> TablePlan`. Every rule carries
//! `-m comment --comment "cali:<hash>"`, the hash chained over the chain name and the
//! previous rules, so a chain is compared by its hash list alone. Our hooks in kernel
//! chains are kept at the top (`insert`) or after them (`append`); when they are missing
//! or out of place they are deleted by their exact saved spec and re-added. Rules of other
//! programs are never named in the output.

use std::fmt::Write as _;

use crate::policy::model::{Rule, TableRules};
use crate::policy::names::{chain_seed, rule_hash};

use super::save::SavedTable;

/// One rule with its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedRule {
    pub hash: String,
    pub line: String,
}

/// Hash a chain's rules; `seed_name` is the chain name (or a hook list's name).
pub fn hash_rules(seed_name: &str, rules: &[Rule]) -> Vec<HashedRule> {
    let mut prev = chain_seed(seed_name);
    rules
        .iter()
        .map(|r| {
            let h = rule_hash(&prev, &r.0);
            prev = h.clone();
            HashedRule {
                line: format!("-m comment --comment \"cali:{h}\" {}", r.0),
                hash: h,
            }
        })
        .collect()
}

/// What one restore of one table does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// Full input for `iptables-restore --noflush`; empty when nothing differs.
    pub text: String,
    pub chains_written: usize,
    pub rules_written: usize,
    pub chains_deleted: usize,
    /// Kernel chains whose hooks were re-placed.
    pub hooks_fixed: usize,
}

impl TablePlan {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Compare `desired` with `actual` and render the difference for `table`. With
/// `allow_deletes == false` (after a restart, before the datastore is in sync) our chains and
/// hooks that are no longer wanted are left in place; everything else is still added
/// and repaired.
pub fn plan_table(
    table: &str,
    desired: &TableRules,
    actual: &SavedTable,
    allow_deletes: bool,
) -> TablePlan {
    let mut plan = TablePlan::default();
    let mut decls = String::new();
    let mut deletes = String::new();
    let mut adds = String::new();
    let mut hooks = String::new();
    let mut drops = String::new();

    for (chain, rules) in &desired.chains {
        let hashed = hash_rules(chain, rules);
        let want: Vec<Option<&str>> = hashed.iter().map(|h| Some(h.hash.as_str())).collect();
        if actual.hashes(chain).as_ref() == Some(&want) {
            continue;
        }
        plan.chains_written += 1;
        plan.rules_written += hashed.len();
        let _ = writeln!(decls, ":{chain} - [0:0]");
        for h in &hashed {
            let _ = writeln!(adds, "-A {chain} {}", h.line);
        }
    }
    for chain in actual.our_chains() {
        if allow_deletes && !desired.chains.contains_key(chain) {
            plan.chains_deleted += 1;
            let _ = writeln!(decls, ":{chain} - [0:0]");
            let _ = writeln!(drops, "-X {chain}");
        }
    }

    // Kernel chains holding our hooks, plus kernel chains holding stale hooks of ours.
    let mut kernel: Vec<&str> = desired.hooks.keys().map(String::as_str).collect();
    for (chain, rules) in &actual.chains {
        if allow_deletes
            && !chain.starts_with("cali-")
            && !desired.hooks.contains_key(chain)
            && rules.iter().any(|r| r.hash.is_some())
        {
            kernel.push(chain);
        }
    }
    for kchain in kernel {
        let (ins, app) = match desired.hooks.get(kchain) {
            Some(h) => (
                hash_rules(kchain, &h.insert),
                hash_rules(&format!("{kchain}/append"), &h.append),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let have = actual.chains.get(kchain).map(Vec::as_slice).unwrap_or(&[]);
        let ours: Vec<(usize, &str)> = have
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.hash.as_deref().map(|h| (i, h)))
            .collect();
        let want: Vec<&str> = ins
            .iter()
            .chain(app.iter())
            .map(|h| h.hash.as_str())
            .collect();
        let got: Vec<&str> = ours.iter().map(|(_, h)| *h).collect();
        let tops_ok = ours
            .iter()
            .take(ins.len())
            .enumerate()
            .all(|(i, (pos, _))| i == *pos);
        if got == want && tops_ok {
            continue;
        }
        plan.hooks_fixed += 1;
        for (pos, _) in &ours {
            let _ = writeln!(deletes, "-D {kchain} {}", have[*pos].spec);
        }
        for (i, h) in ins.iter().enumerate() {
            let _ = writeln!(hooks, "-I {kchain} {} {}", i + 1, h.line);
        }
        for h in &app {
            let _ = writeln!(hooks, "-A {kchain} {}", h.line);
        }
        plan.rules_written += ins.len() + app.len();
    }

    if decls.is_empty() && deletes.is_empty() && hooks.is_empty() {
        return plan;
    }
    plan.text = format!("*{table}\n{decls}{deletes}{adds}{hooks}{drops}COMMIT\n");
    plan
}

#[cfg(test)]
mod tests {
    use super::super::save::parse;
    use super::*;
    use crate::policy::model::Hooks;

    fn desired() -> TableRules {
        let mut t = TableRules::default();
        t.chains.insert(
            "cali-FORWARD".into(),
            vec![Rule::new("-i cali+ -j cali-x"), Rule::new("-j ACCEPT")],
        );
        t.chains.insert("cali-x".into(), vec![Rule::new("-j DROP")]);
        t.hooks.insert(
            "FORWARD".into(),
            Hooks {
                insert: vec![Rule::new("-j cali-FORWARD")],
                append: vec![],
            },
        );
        t
    }

    /// What iptables-save would print after `plan` was applied to an empty table with
    /// `foreign` rules in FORWARD.
    fn saved_after(d: &TableRules, foreign_before: &[&str]) -> String {
        let mut s = String::from("*filter\n:FORWARD ACCEPT [0:0]\n");
        for c in d.chains.keys() {
            s.push_str(&format!(":{c} - [0:0]\n"));
        }
        for h in hash_rules("FORWARD", &d.hooks["FORWARD"].insert) {
            s.push_str(&format!("-A FORWARD {}\n", h.line));
        }
        for f in foreign_before {
            s.push_str(&format!("-A FORWARD {f}\n"));
        }
        for (c, rules) in &d.chains {
            for h in hash_rules(c, rules) {
                s.push_str(&format!("-A {c} {}\n", h.line));
            }
        }
        s.push_str("COMMIT\n");
        s
    }

    #[test]
    fn empty_kernel_gets_everything() {
        let p = plan_table("filter", &desired(), &SavedTable::default(), true);
        assert_eq!(p.chains_written, 2);
        assert_eq!(p.rules_written, 4);
        assert_eq!(p.hooks_fixed, 1);
        assert!(
            p.text
                .starts_with("*filter\n:cali-FORWARD - [0:0]\n:cali-x - [0:0]\n")
        );
        assert!(p.text.contains("-I FORWARD 1 -m comment --comment \"cali:"));
        assert!(p.text.ends_with("COMMIT\n"));
    }

    #[test]
    fn in_sync_means_nothing_to_do() {
        let d = desired();
        let saved = parse(
            &saved_after(&d, &["-j LOG", "-s 1.1.1.1/32 -j ACCEPT"]),
            "filter",
        );
        let p = plan_table("filter", &d, &saved, true);
        assert!(p.is_empty(), "{}", p.text);
    }

    #[test]
    fn only_changed_chain_is_rewritten_and_stale_chain_deleted() {
        let mut old = desired();
        old.chains
            .insert("cali-gone".into(), vec![Rule::new("-j DROP")]);
        let saved = parse(&saved_after(&old, &[]), "filter");
        let mut d = desired();
        d.chains
            .insert("cali-x".into(), vec![Rule::new("-j RETURN")]);
        let p = plan_table("filter", &d, &saved, true);
        assert_eq!(
            (p.chains_written, p.chains_deleted, p.hooks_fixed),
            (1, 1, 0)
        );
        assert!(p.text.contains(":cali-x - [0:0]\n"));
        assert!(!p.text.contains(":cali-FORWARD"));
        assert!(p.text.contains("-X cali-gone\n"));
        assert!(!p.text.contains("-D FORWARD"));
        // Before in-sync: the stale chain stays, the changed one is still rewritten.
        let held = plan_table("filter", &d, &saved, false);
        assert_eq!((held.chains_written, held.chains_deleted), (1, 0));
        assert!(!held.text.contains("cali-gone"));
    }

    #[test]
    fn hook_pushed_down_by_foreign_rule_is_moved_back_to_top() {
        let d = desired();
        let text = saved_after(&d, &[]);
        // A foreign rule inserted above ours.
        let text = text.replacen(
            "-A FORWARD -m comment",
            "-A FORWARD -s 9.9.9.9/32 -j DROP\n-A FORWARD -m comment",
            1,
        );
        let p = plan_table("filter", &d, &parse(&text, "filter"), true);
        assert_eq!(p.hooks_fixed, 1);
        assert_eq!(p.chains_written, 0);
        assert!(p.text.contains("-D FORWARD -m comment --comment \"cali:"));
        assert!(p.text.contains("-I FORWARD 1 "));
        assert!(!p.text.contains("9.9.9.9"), "never names foreign rules");
    }

    #[test]
    fn tampered_chain_is_rewritten() {
        let d = desired();
        let text = saved_after(&d, &[]).replace(
            "-A cali-x -m comment",
            "-A cali-x -j LOG\n-A cali-x -m comment",
        );
        let p = plan_table("filter", &d, &parse(&text, "filter"), true);
        assert_eq!(p.chains_written, 1);
        assert!(p.text.contains(":cali-x - [0:0]"));
    }
}
