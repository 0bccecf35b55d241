//! Both families' programmers behind one handle, for the node agent's policy thread:
//! one compile per family from the same [`PolicyInput`], IPv4 into iptables with
//! `cali40*` sets, IPv6 (when enabled, as Calico's `FELIX_IPV6SUPPORT`) into ip6tables
//! with `cali60*` sets, both on the same legacy/nft backend.
//!
//! Thin: the decisions stay in `policy::build_family` and [`Programmer`].

use crate::policy::model::{Family, PolicyInput, Ruleset};
use crate::policy::ruleset::build_family;

use super::IptablesError;
use super::exec::{Backend, Runner};
use super::program::{ApplyStats, Programmer};

/// The IPv4 programmer and, when IPv6 is enabled, the IPv6 one.
#[derive(Debug)]
pub struct DualStack {
    v4: Programmer,
    v6: Option<Programmer>,
}

impl DualStack {
    /// Programmers for `runner`'s namespace on `backend`; IPv6 only when `ipv6`.
    pub fn new(runner: Runner, backend: Backend, ipv6: bool) -> Self {
        DualStack {
            v4: Programmer::new_family(runner.clone(), backend, Family::V4),
            v6: ipv6.then(|| Programmer::new_family(runner, backend, Family::V6)),
        }
    }

    /// As [`DualStack::new`] on the backend the IPv4 tables already use (so both
    /// families always share one backend).
    pub fn detect(runner: Runner, ipv6: bool) -> Result<Self, IptablesError> {
        let backend = Backend::detect(&runner)?;
        Ok(Self::new(runner, backend, ipv6))
    }

    pub fn v4(&self) -> &Programmer {
        &self.v4
    }

    pub fn v6(&self) -> Option<&Programmer> {
        self.v6.as_ref()
    }

    /// The families programmed.
    pub fn families(&self) -> Vec<Family> {
        let mut f = vec![Family::V4];
        if self.v6.is_some() {
            f.push(Family::V6);
        }
        f
    }

    /// See [`Programmer::set_deletes`]; applies to both families.
    pub fn set_deletes(&mut self, allow: bool) {
        self.each(|p| p.set_deletes(allow));
    }

    /// See [`Programmer::invalidate`]; applies to both families.
    pub fn invalidate(&mut self) {
        self.each(Programmer::invalidate);
    }

    /// Compile `input` once per family and apply each; the stats are summed. The IPv4
    /// family is applied first; an error in either is returned (the failing programmer
    /// has dropped its cache, so the next apply re-reads it).
    pub fn apply(&mut self, input: &PolicyInput) -> Result<ApplyStats, IptablesError> {
        self.run(input, Programmer::apply)
    }

    /// See [`Programmer::resync`]; both families.
    pub fn resync(&mut self, input: &PolicyInput) -> Result<ApplyStats, IptablesError> {
        self.run(input, Programmer::resync)
    }

    /// The rule sets [`DualStack::apply`] programs.
    pub fn rulesets(&self, input: &PolicyInput) -> Vec<Ruleset> {
        self.families()
            .into_iter()
            .map(|f| build_family(input, f))
            .collect()
    }

    fn each(&mut self, mut f: impl FnMut(&mut Programmer)) {
        f(&mut self.v4);
        if let Some(v6) = self.v6.as_mut() {
            f(v6);
        }
    }

    fn run(
        &mut self,
        input: &PolicyInput,
        op: fn(&mut Programmer, &Ruleset) -> Result<ApplyStats, IptablesError>,
    ) -> Result<ApplyStats, IptablesError> {
        let mut total = op(&mut self.v4, &build_family(input, Family::V4))?;
        if let Some(v6) = self.v6.as_mut() {
            total.add(&op(v6, &build_family(input, Family::V6))?);
        }
        Ok(total)
    }
}
