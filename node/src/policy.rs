//! The policy half of felix in the agent: one blocking thread owns felix's
//! [`PolicyState`] and iptables [`Programmer`] for this namespace, fed the same inputs as
//! the route reconciler. After a batch of inputs that changed policy-relevant state it
//! compiles the ruleset and writes only the changed chains; deletions of stale chains
//! wait for [`Input::InSync`]. A failed pass is retried (backoff 0.5 s doubling to 10 s)
//! from a full re-read, without waiting for the next input. The thread publishes a
//! [`PolicyStatus`] after every pass (health and metrics read it) and stops when the
//! sending side is dropped; its status channel closing tells the agent it is gone.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tortie_felix::input::Input;
use tortie_felix::iptables::ApplyStats;
use tortie_felix::iptables::DualStack;
use tortie_felix::iptables::exec::Runner;
use tortie_felix::policy::PolicyState;

/// What the policy thread reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    /// [`Input::InSync`] has arrived (the datastore was listed; stale chains may go).
    pub in_sync: bool,
    /// Passes that compiled and programmed the ruleset successfully.
    pub programs: u64,
    /// Passes that failed (each is retried).
    pub errors: u64,
    /// Chains and rules written by `iptables-restore`, summed over all passes.
    pub chains_written: u64,
    pub rules_written: u64,
    /// The error of the last pass, `None` once a pass succeeded again.
    pub last_error: Option<String>,
}

impl PolicyStatus {
    /// True when the datastore's policy is in the kernel: in sync and the last pass
    /// after it succeeded.
    pub fn programmed(&self) -> bool {
        self.in_sync && self.programs > 0 && self.last_error.is_none()
    }

    /// Records the outcome of one pass.
    pub fn record(&mut self, result: Result<&ApplyStats, String>) {
        match result {
            Ok(stats) => {
                self.programs += 1;
                self.chains_written += stats.chains_written as u64;
                self.rules_written += stats.rules_written as u64;
                self.last_error = None;
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e);
            }
        }
    }
}

/// A running policy thread: send it inputs, watch its status.
pub struct PolicyTask {
    pub input_tx: mpsc::Sender<Input>,
    pub status: watch::Receiver<PolicyStatus>,
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Starts the policy thread for `node` in the current namespace; with `ipv6`
/// (`FELIX_IPV6SUPPORT`) it programs ip6tables too, so IPv6 pod traffic is guarded as
/// IPv4 is.
pub fn spawn(node: &str, ipv6: bool) -> Result<PolicyTask, String> {
    let mut programmer = DualStack::detect(Runner::host(), ipv6).map_err(|e| e.to_string())?;
    let mut state = PolicyState::new(node);
    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    let (status_tx, status) = watch::channel(PolicyStatus::default());
    // Only for the retry timeout on the receive; all work stays on this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("policy thread runtime: {e}"))?;
    std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || {
            let mut report = PolicyStatus::default();
            let mut retry: Option<Duration> = None;
            loop {
                let first = match retry {
                    None => match rx.blocking_recv() {
                        Some(i) => Some(i),
                        None => return,
                    },
                    Some(wait) => match rt.block_on(tokio::time::timeout(wait, rx.recv())) {
                        Ok(Some(i)) => Some(i),
                        Ok(None) => return,
                        Err(_) => None,
                    },
                };
                let mut batch: Vec<Input> = first.into_iter().collect();
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                // A pending retry re-applies even when nothing new arrived.
                let mut changed = retry.is_some();
                for i in &batch {
                    if matches!(i, Input::InSync) {
                        programmer.set_deletes(true);
                        report.in_sync = true;
                        changed = true;
                    }
                    changed |= state.apply(i);
                }
                if !changed {
                    continue;
                }
                match programmer.apply(&state.policy_input()) {
                    Ok(stats) => {
                        report.record(Ok(&stats));
                        retry = None;
                    }
                    Err(e) => {
                        tracing::warn!("iptables: {e}");
                        programmer.invalidate();
                        report.record(Err(e.to_string()));
                        retry = Some(match retry {
                            None => FIRST_RETRY,
                            Some(d) => (d * 2).min(MAX_RETRY),
                        });
                    }
                }
                status_tx.send_replace(report.clone());
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(PolicyTask {
        input_tx: tx,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programmed_needs_in_sync_and_a_good_last_pass() {
        let mut s = PolicyStatus::default();
        let stats = ApplyStats {
            chains_written: 3,
            rules_written: 10,
            ..ApplyStats::default()
        };
        s.record(Ok(&stats));
        assert!(!s.programmed(), "not in sync yet");
        s.in_sync = true;
        assert!(s.programmed());
        s.record(Err("iptables-restore: exit 1".into()));
        assert!(!s.programmed());
        assert_eq!((s.programs, s.errors), (1, 1));
        s.record(Ok(&stats));
        assert!(s.programmed());
        assert_eq!((s.chains_written, s.rules_written), (6, 20));
        assert_eq!(s.last_error, None);
    }
}
