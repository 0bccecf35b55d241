//! The driver: applies a desired [`Ruleset`] of one family to the kernel with one
//! `iptables-restore --noflush --wait` (`ip6tables-restore` for IPv6) per changed table
//! and one `ipset restore` on each
//! side of it, keeps a cache of what it last read or wrote so that a change costs no
//! read-back, and re-reads everything on [`Programmer::resync`] (timer, after errors) to
//! repair drift.
//!
//! Thin: every decision is in `render`, `ipset` and `save`.

use std::collections::BTreeMap;

use crate::policy::model::{Family, Ruleset, Table};

use super::IptablesError;
use super::exec::{Backend, Runner};
use super::ipset::{self, SavedSets};
use super::render::{hash_rules, plan_table};
use super::save::{self, SavedRule, SavedTable};

/// What one apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub restore_calls: usize,
    pub chains_written: usize,
    pub rules_written: usize,
    pub chains_deleted: usize,
    pub hooks_fixed: usize,
    pub sets_created: usize,
    pub sets_swapped: usize,
    pub sets_destroyed: usize,
    /// Tables read back with iptables-save during this apply.
    pub tables_read: usize,
}

impl ApplyStats {
    /// Adds `other`'s counts to these (one apply per family).
    pub fn add(&mut self, other: &ApplyStats) {
        self.restore_calls += other.restore_calls;
        self.chains_written += other.chains_written;
        self.rules_written += other.rules_written;
        self.chains_deleted += other.chains_deleted;
        self.hooks_fixed += other.hooks_fixed;
        self.sets_created += other.sets_created;
        self.sets_swapped += other.sets_swapped;
        self.sets_destroyed += other.sets_destroyed;
        self.tables_read += other.tables_read;
    }

    /// Nothing was written.
    pub fn is_noop(&self) -> bool {
        self.restore_calls == 0
            && self.sets_created == 0
            && self.sets_swapped == 0
            && self.sets_destroyed == 0
    }
}

/// Hashed rules as they read back after being written.
fn saved(chain: &str, rules: &[crate::policy::model::Rule]) -> Vec<SavedRule> {
    hash_rules(chain, rules)
        .into_iter()
        .map(|h| SavedRule {
            hash: Some(h.hash),
            spec: h.line,
        })
        .collect()
}

/// Programs one network namespace's iptables (or ip6tables) and that family's ipsets.
#[derive(Debug)]
pub struct Programmer {
    runner: Runner,
    backend: Backend,
    family: Family,
    tables: BTreeMap<Table, SavedTable>,
    sets: Option<SavedSets>,
    deletes: bool,
}

impl Programmer {
    /// An IPv4 programmer.
    pub fn new(runner: Runner, backend: Backend) -> Self {
        Self::new_family(runner, backend, Family::V4)
    }

    /// A programmer of `family`: its tables through `ip6tables-*` for V6, its ipsets
    /// (`cali60…`, inet6) only; the other family's sets and tables are never read or touched.
    pub fn new_family(runner: Runner, backend: Backend, family: Family) -> Self {
        Programmer {
            runner,
            backend,
            family,
            tables: BTreeMap::new(),
            sets: None,
            deletes: true,
        }
    }

    /// A programmer using the backend already in use where `runner` runs.
    pub fn detect(runner: Runner) -> Result<Self, IptablesError> {
        let backend = Backend::detect(&runner)?;
        Ok(Self::new(runner, backend))
    }

    /// A programmer of `family` using the backend already in use where `runner` runs
    /// (detected from that family's tables).
    pub fn detect_family(runner: Runner, family: Family) -> Result<Self, IptablesError> {
        let backend = Backend::detect_for(&runner, family)?;
        Ok(Self::new_family(runner, backend, family))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The save binary this programmer reads with (`iptables-nft-save`, ...).
    pub fn save_cmd(&self) -> &'static str {
        self.backend.save_of(self.family)
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Hold back (`false`) or allow (`true`, the default) deleting our chains, hooks and
    /// ipsets that are no longer desired. Felix holds them after a restart until its
    /// input is in sync, so a half-listed datastore never removes working state.
    pub fn set_deletes(&mut self, allow: bool) {
        self.deletes = allow;
    }

    /// Forget the cached kernel view; the next apply reads everything back.
    pub fn invalidate(&mut self) {
        self.tables.clear();
        self.sets = None;
    }

    /// Read the kernel again and repair any difference from `desired`.
    pub fn resync(&mut self, desired: &Ruleset) -> Result<ApplyStats, IptablesError> {
        self.invalidate();
        self.apply(desired)
    }

    /// Bring the kernel to `desired`, touching only what differs from the cached view.
    /// On error the cache is dropped so the next call starts from a fresh read.
    pub fn apply(&mut self, desired: &Ruleset) -> Result<ApplyStats, IptablesError> {
        let r = self.apply_inner(desired);
        if r.is_err() {
            self.invalidate();
        }
        r
    }

    fn apply_inner(&mut self, desired: &Ruleset) -> Result<ApplyStats, IptablesError> {
        if desired.family != self.family {
            return Err(IptablesError::WrongFamily {
                programmer: self.family,
                ruleset: desired.family,
            });
        }
        let mut stats = ApplyStats::default();
        let actual_sets = match self.sets.take() {
            Some(s) => s,
            None => ipset::parse_family(&self.runner.run("ipset", &["save"], None)?, self.family),
        };
        let mut set_plan = ipset::plan(&desired.ipsets, &actual_sets);
        if !self.deletes {
            set_plan.after.clear();
            set_plan.destroyed = 0;
        }
        if !set_plan.before.is_empty() {
            self.runner
                .run("ipset", &["-exist", "restore"], Some(&set_plan.before))?;
        }
        stats.sets_created = set_plan.created;
        stats.sets_swapped = set_plan.swapped;

        for table in Table::ALL {
            let empty = Default::default();
            let want = desired.tables.get(&table).unwrap_or(&empty);
            let actual = match self.tables.remove(&table) {
                Some(t) => t,
                None => {
                    stats.tables_read += 1;
                    let text = self
                        .runner
                        .run(self.save_cmd(), &["-t", table.name()], None)?;
                    save::parse(&text, table.name())
                }
            };
            let plan = plan_table(table.name(), want, &actual, self.deletes);
            if plan.is_empty() {
                self.tables.insert(table, actual);
                continue;
            }
            self.runner.run(
                self.backend.restore_of(self.family),
                &["--noflush", "--wait"],
                Some(&plan.text),
            )?;
            stats.restore_calls += 1;
            stats.chains_written += plan.chains_written;
            stats.rules_written += plan.rules_written;
            stats.chains_deleted += plan.chains_deleted;
            stats.hooks_fixed += plan.hooks_fixed;
            // The kernel now holds exactly what the plan wrote: keep that as the cached
            // view so the next change needs no read-back.
            let keep_stale = !self.deletes;
            let mut next = actual;
            next.chains.retain(|c, _| {
                !c.starts_with("cali-") || (keep_stale && !want.chains.contains_key(c))
            });
            for (chain, rules) in &want.chains {
                next.chains.insert(chain.clone(), saved(chain, rules));
            }
            if plan.hooks_fixed > 0 {
                for (kchain, rules) in next.chains.iter_mut() {
                    if kchain.starts_with("cali-") {
                        continue;
                    }
                    let hooks = want.hooks.get(kchain);
                    if hooks.is_none() && (keep_stale || rules.iter().all(|r| r.hash.is_none())) {
                        continue;
                    }
                    // Re-placed hooks: ours inserted on top, others' rules in their order,
                    // our appended ones after them.
                    let mut placed = hooks.map(|h| saved(kchain, &h.insert)).unwrap_or_default();
                    placed.extend(rules.drain(..).filter(|r| r.hash.is_none()));
                    if let Some(h) = hooks {
                        placed.extend(saved(&format!("{kchain}/append"), &h.append));
                    }
                    *rules = placed;
                }
            }
            self.tables.insert(table, next);
        }

        if !set_plan.after.is_empty() {
            self.runner
                .run("ipset", &["-exist", "restore"], Some(&set_plan.after))?;
        }
        stats.sets_destroyed = set_plan.destroyed;
        let mut now = SavedSets::default();
        if !self.deletes {
            now.sets = actual_sets.sets.clone();
        }
        for (name, spec) in &desired.ipsets {
            let members = spec.members.iter().map(|m| ipset::normalize(m)).collect();
            now.sets.insert(name.clone(), (Some(spec.kind), members));
        }
        self.sets = Some(now);
        Ok(stats)
    }
}
