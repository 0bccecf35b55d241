//! Must-show: a crash between the pending-affinity write and the block creation. The test
//! binary re-executes itself as a CHILD PROCESS (the ignored `crash_child` entry, selected
//! by env vars) that claims a block with a failpoint hook which announces `READY` on stdout
//! and then blocks; the parent kills it with SIGKILL and checks that the left state (a
//! pending affinity, no block) is reported by `check`, that the node's next claim cleans it
//! up, and that `check` is clean afterwards. Two variants: the crashed node finishes its own
//! claim; another node takes the block first and the crashed node drops its affinity.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tortie_crds::{AffinityState, AllowedUse};
use tortie_datastore::{Datastore, EtcdDatastore, Filter};
use tortie_ipam::{AssignArgs, Attrs, FP_CLAIM_AFTER_PENDING, Ipam, Stores, check, format_report};

const ENV_PREFIX: &str = "TORTIE_IPAM_CRASH_PREFIX";
const ENV_ETCD: &str = "TORTIE_IPAM_CRASH_ETCD";

fn args(node: &str, handle: &str) -> AssignArgs {
    AssignArgs {
        handle: handle.into(),
        num_v4: 1,
        num_v6: 0,
        node: node.into(),
        attrs: Attrs::default(),
        use_: AllowedUse::Workload,
    }
}

/// The child: claims for node `crashy` and stops at the failpoint until killed.
#[tokio::test]
#[ignore = "child process of the crash tests; runs only with its env vars"]
async fn crash_child() -> Result<()> {
    let (Ok(prefix), Ok(etcd)) = (std::env::var(ENV_PREFIX), std::env::var(ENV_ETCD)) else {
        bail!("crash_child runs only as the child of the crash tests ({ENV_PREFIX} unset)");
    };
    let ds = Datastore::Etcd(Box::new(EtcdDatastore::connect(&[etcd], &prefix).await?));
    let ipam = Ipam::new(Stores::from_datastore(&ds)).with_failpoint(Arc::new(|name| {
        if name == FP_CLAIM_AFTER_PENDING {
            println!("READY");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        false
    }));
    ipam.auto_assign(&args("crashy", "child-handle")).await?;
    bail!("the failpoint was not reached")
}

/// Runs the child until it reports READY at the failpoint, then SIGKILLs it.
fn crash_child_at_failpoint(prefix: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_PREFIX, prefix)
        .env(ENV_ETCD, common::endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn the crash child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            // libtest prints `test crash_child ... ` without a newline before the body runs.
            if line.ends_with("READY") {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    // std's Child::kill is SIGKILL on Unix.
    child.kill().context("SIGKILL the child")?;
    let status = child.wait()?;
    if ready.is_err() {
        bail!("child never reached the failpoint (exit {status})");
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "child was not killed by SIGKILL: {status}"
    );
    Ok(())
}

async fn setup(test: &str, pool_cidr: &str) -> Result<(String, Ipam)> {
    let p = common::prefix(test);
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "p", pool_cidr, |s| s.block_size = Some(28)).await?;
    common::node(&ds, "crashy", &[]).await?;
    common::node(&ds, "other", &[]).await?;
    Ok((p.clone(), common::ipam(&p).await?))
}

async fn assert_crash_left_pending(ipam: &Ipam) -> Result<()> {
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert_eq!(affs.len(), 1, "{affs:?}");
    assert_eq!(affs[0].spec.state, AffinityState::Pending);
    assert!(
        ipam.stores()
            .blocks
            .list(&Filter::all())
            .await?
            .items
            .is_empty()
    );
    let r = check(ipam.stores(), None).await?;
    assert_eq!(
        r.affinities_without_blocks.len(),
        1,
        "{}",
        format_report(&r)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_pending_affinity_is_finished_by_next_claim() -> Result<()> {
    let (p, ipam) = setup("crash-own", "10.70.0.0/24").await?;
    crash_child_at_failpoint(&p)?;
    assert_crash_left_pending(&ipam).await?;
    let crashed_cidr = ipam.stores().affinities.list(&Filter::all()).await?.items[0]
        .spec
        .cidr;
    let a = ipam.auto_assign(&args("crashy", "h1")).await?;
    assert_eq!(
        a.v4[0].block, crashed_cidr,
        "the pending claim was not finished"
    );
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert_eq!(affs.len(), 1);
    assert_eq!(affs[0].spec.state, AffinityState::Confirmed);
    let r = check(ipam.stores(), None).await?;
    assert!(r.is_clean(), "{}", format_report(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_pending_affinity_loses_block_to_another_node() -> Result<()> {
    // One block in the pool: the other node takes it while the crashed claim is pending.
    let (p, ipam) = setup("crash-lost", "10.71.0.0/28").await?;
    crash_child_at_failpoint(&p)?;
    assert_crash_left_pending(&ipam).await?;
    let o = ipam.auto_assign(&args("other", "ho")).await?;
    // Crashy's next assignment drops its stale pending affinity and borrows.
    let c = ipam.auto_assign(&args("crashy", "hc")).await?;
    assert_eq!(c.v4[0].block, o.v4[0].block);
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert_eq!(affs.len(), 1, "{affs:?}");
    assert_eq!(affs[0].spec.node, "other");
    let r = check(ipam.stores(), None).await?;
    assert!(r.is_clean(), "{}", format_report(&r));
    Ok(())
}
