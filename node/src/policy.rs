//! The policy half of felix in the agent: one blocking thread owns felix's
//! [`PolicyState`] and iptables [`Programmer`] for this namespace, fed the same inputs as
//! the route reconciler. After a batch of inputs that changed policy-relevant state it
//! compiles the ruleset and writes only the changed chains; deletions of stale chains
//! wait for [`Input::InSync`]. It stops when the sending side is dropped.

use tokio::sync::mpsc;
use tortie_felix::input::Input;
use tortie_felix::iptables::exec::Runner;
use tortie_felix::iptables::program::Programmer;
use tortie_felix::policy::PolicyState;

/// Starts the policy thread for `node` in the current namespace; send inputs to the
/// returned channel.
pub fn spawn(node: &str) -> Result<mpsc::Sender<Input>, String> {
    let mut programmer = Programmer::detect(Runner::host()).map_err(|e| e.to_string())?;
    let mut state = PolicyState::new(node);
    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut changed = false;
                for i in &batch {
                    if matches!(i, Input::InSync) {
                        programmer.set_deletes(true);
                        changed = true;
                    }
                    changed |= state.apply(i);
                }
                if changed {
                    let rules = tortie_felix::policy::build(&state.policy_input());
                    if let Err(e) = programmer.apply(&rules) {
                        tracing::warn!("iptables: {e}");
                        programmer.invalidate();
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(tx)
}
