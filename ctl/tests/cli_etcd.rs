//! The built `tortiectl` binary against a real etcd (one per test binary, loopback; one
//! key prefix per test): Calico v3 import, validation refusals that write nothing, pool
//! overlap, immutability, delete, and `ipam show/check/release` over state made through
//! the ipam crate.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use tortie_crds::{AllowedUse, IpPool, TortieNode, TortieNodeSpec};
use tortie_datastore::{Datastore, EtcdDatastore, Filter};
use tortie_ipam::{AssignArgs, Attrs, Ipam, Stores};

static ETCD: OnceLock<testlab::etcd::Etcd> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn endpoint() -> String {
    ETCD.get_or_init(|| testlab::etcd::Etcd::start_loopback().expect("start etcd"))
        .endpoint()
}

/// One test's view: its own key prefix.
struct Ctl {
    prefix: String,
}

impl Ctl {
    fn new(test: &str) -> Ctl {
        Ctl {
            prefix: format!(
                "/ctltest/{test}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortiectl"));
        cmd.args(args)
            .env("DATASTORE_TYPE", "etcdv3")
            .env("ETCD_ENDPOINTS", endpoint())
            .env("TORTIE_ETCD_PREFIX", &self.prefix)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawn tortiectl")?;
        if let Some(mut si) = child.stdin.take() {
            si.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let o = self.run(args, stdin)?;
        anyhow::ensure!(
            o.status.success(),
            "tortiectl {args:?} failed ({:?}): {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8(o.stdout)?)
    }

    /// Runs and requires failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], stdin: Option<&str>, code: i32) -> Result<String> {
        let o = self.run(args, stdin)?;
        let err = String::from_utf8(o.stderr)?;
        anyhow::ensure!(
            o.status.code() == Some(code),
            "tortiectl {args:?}: want exit {code}, got {:?}; stderr: {err}",
            o.status.code()
        );
        Ok(err)
    }

    fn apply(&self, yaml: &str) -> Result<String> {
        self.ok(&["apply", "-f", "-"], Some(yaml))
    }

    async fn datastore(&self) -> Result<Datastore> {
        Ok(Datastore::Etcd(Box::new(
            EtcdDatastore::connect(&[endpoint()], &self.prefix).await?,
        )))
    }

    async fn pools(&self) -> Result<Vec<IpPool>> {
        Ok(self
            .datastore()
            .await?
            .store::<IpPool>()
            .list(&Filter::all())
            .await?
            .items)
    }
}

const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.244.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  nodeSelector: all()
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  peerIP: 192.0.2.1
  asNumber: 64567
  nodeSelector: rack == 'rack-1'
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 63400
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calico_v3_apply_then_get_shows_converted_objects() -> Result<()> {
    let c = Ctl::new("import");
    let out = c.apply(CALICO)?;
    assert!(out.contains("Successfully applied 3 resource(s)"), "{out}");

    let table = c.ok(&["get", "ippools"], None)?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head, ["NAME", "CIDR", "SELECTOR"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, ["pool-a", "10.244.0.0/16", "all()"]);

    let wide = c.ok(&["get", "ippool", "-o", "wide"], None)?;
    assert!(
        wide.contains("CrossSubnet") && wide.contains("true"),
        "{wide}"
    );

    // Stored as tortie objects, with Calico's defaults filled in.
    let yaml = c.ok(&["get", "ippool", "pool-a", "-o", "yaml"], None)?;
    assert!(yaml.contains("apiVersion: crd.tortie.dev/v1"), "{yaml}");
    assert!(yaml.contains("blockSize: 26"), "{yaml}");
    let pools = c.pools().await?;
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].spec.block_size, Some(26));
    assert_eq!(
        pools[0].spec.allowed_uses,
        [AllowedUse::Workload, AllowedUse::Tunnel]
    );

    let peers = c.ok(&["get", "bgppeers"], None)?;
    assert!(
        peers.contains("rack1-tor") && peers.contains("192.0.2.1"),
        "{peers}"
    );
    assert!(
        peers.contains("64567") && peers.contains("(rack == 'rack-1')"),
        "{peers}"
    );

    let json = c.ok(&["get", "bgpconfig", "default", "-o", "json"], None)?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(v["kind"], "BGPConfiguration");
    assert_eq!(v["spec"]["nodeToNodeMeshEnabled"], false);
    assert_eq!(v["spec"]["asNumber"], 63400);
    assert_eq!(
        v["spec"]["listenPort"], 179,
        "defaults applied to `default`: {json}"
    );

    // Re-applying the same manifest is an update, not an error.
    let again = c.apply(CALICO)?;
    assert!(again.contains("applied (updated)"), "{again}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_document_is_refused_with_its_field_and_nothing_is_written() -> Result<()> {
    let c = Ctl::new("invalid");
    let yaml = r#"
apiVersion: crd.tortie.dev/v1
kind: IPPool
metadata: {name: good}
spec: {cidr: 10.10.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: 10.20.0.0/16, blockSize: 40}
"#;
    let err = c.fails(&["apply", "-f", "-"], Some(yaml), 1)?;
    assert!(err.contains("spec.blockSize"), "{err}");
    assert!(err.contains("document 2"), "{err}");
    assert!(
        c.pools().await?.is_empty(),
        "the valid first document was written"
    );

    let err = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNumber: 1, node: a, nodeSelector: all()}\n"),
        1,
    )?;
    assert!(err.contains("spec.node"), "{err}");

    // Usage errors exit 64.
    c.fails(&["get", "frobnicators"], None, 64)?;
    c.fails(&["apply"], None, 64)?;
    let err = c.fails(
        &["--datastore-type", "zookeeper", "get", "ippools"],
        None,
        64,
    )?;
    assert!(err.contains("--datastore-type"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_and_immutability_are_enforced() -> Result<()> {
    let c = Ctl::new("overlap");
    c.apply("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16}\n")?;

    // Overlaps the stored pool.
    let err = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 10.1.128.0/17}\n"),
        1,
    )?;
    assert!(
        err.contains("spec.cidr") && err.contains("overlaps IPPool a"),
        "{err}"
    );
    // Two new pools overlapping each other in one file.
    let err = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: c}\nspec: {cidr: 10.2.0.0/16}\n---\napiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: d}\nspec: {cidr: 10.2.0.0/24}\n"),
        1,
    )?;
    assert!(err.contains("overlaps IPPool c"), "{err}");
    assert_eq!(c.pools().await?.len(), 1);

    // cidr and blockSize are immutable; other fields may change.
    let err = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.3.0.0/16}\n"),
        1,
    )?;
    assert!(
        err.contains("spec.cidr") && err.contains("immutable"),
        "{err}"
    );
    let err = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16, blockSize: 28}\n"),
        1,
    )?;
    assert!(
        err.contains("spec.blockSize") && err.contains("immutable"),
        "{err}"
    );
    c.apply("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16, disabled: true}\n")?;
    let pools = c.pools().await?;
    assert_eq!(pools.len(), 1);
    assert!(pools[0].spec.disabled);
    assert_eq!(pools[0].spec.cidr.to_string(), "10.1.0.0/16");

    // create refuses an existing name; replace refuses a missing one.
    let err = c.fails(
        &["create", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.1.0.0/16}\n"),
        1,
    )?;
    assert!(err.contains("already exists"), "{err}");
    let err = c.fails(
        &["replace", "-f", "-"],
        Some("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: zz}\nspec: {cidr: 10.9.0.0/16}\n"),
        1,
    )?;
    assert!(err.contains("does not exist"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_name_and_by_file() -> Result<()> {
    let c = Ctl::new("delete");
    c.apply(CALICO)?;
    let out = c.ok(&["delete", "ippool", "pool-a"], None)?;
    assert!(out.contains("Successfully deleted 1 'IPPool'"), "{out}");
    assert!(c.pools().await?.is_empty());
    let err = c.fails(&["delete", "ippool", "pool-a"], None, 1)?;
    assert!(err.contains("not found"), "{err}");
    let err = c.fails(&["get", "ippool", "pool-a"], None, 1)?;
    assert!(err.contains("pool-a"), "{err}");

    let dir = tempfile::tempdir()?;
    let f = dir.path().join("peers.yaml");
    std::fs::write(&f, CALICO.split("---").nth(1).context("peer doc")?)?;
    c.ok(&["delete", "-f", f.to_str().context("path")?], None)?;
    let peers = c.ok(&["get", "bgppeers"], None)?;
    assert_eq!(peers.lines().count(), 1, "only the header remains: {peers}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_show_check_release_over_ipam_crate_state() -> Result<()> {
    let c = Ctl::new("ipam");
    c.apply("apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: pods}\nspec: {cidr: 10.50.0.0/24, blockSize: 28}\n")?;
    let ds = c.datastore().await?;
    ds.store::<TortieNode>()
        .create(&TortieNode::new("node-1", TortieNodeSpec::default()))
        .await?;
    let ipam = Ipam::new(Stores::from_datastore(&ds));
    let got = ipam
        .auto_assign(&AssignArgs {
            handle: tortie_ipam::pod_handle("c1"),
            num_v4: 3,
            num_v6: 0,
            node: "node-1".into(),
            attrs: Attrs {
                namespace: Some("default".into()),
                pod: Some("p1".into()),
                kind: None,
            },
            use_: AllowedUse::Workload,
        })
        .await?;
    assert_eq!(got.v4.len(), 3);

    let show = c.ok(&["ipam", "show"], None)?;
    assert!(show.contains("10.50.0.0/24"), "{show}");
    assert!(show.contains("256") && show.contains("3 ("), "{show}");
    let blocks = c.ok(&["ipam", "show", "--show-blocks"], None)?;
    let block = got.v4[0].block.to_string();
    assert!(
        blocks.contains(&block) && blocks.contains("node-1"),
        "{blocks}"
    );

    let check = c.ok(&["ipam", "check"], None)?;
    assert!(check.contains("Found 3 allocated"), "{check}");

    let ip = got.v4[0].ip.to_string();
    let out = c.ok(&["ipam", "release", "--ip", &ip], None)?;
    assert!(out.contains(&format!("released {ip}")), "{out}");
    c.fails(&["ipam", "release", "--ip", &ip], None, 1)?;
    c.fails(&["ipam", "release", "--ip", "not-an-ip"], None, 64)?;
    let show = c.ok(&["ipam", "show"], None)?;
    assert!(show.contains("2 ("), "{show}");

    // A block whose affinity is gone is reported, and the exit code says so.
    let aff = ds
        .store::<tortie_crds::BlockAffinity>()
        .list(&Filter::all())
        .await?
        .items;
    assert_eq!(aff.len(), 1);
    ds.store::<tortie_crds::BlockAffinity>()
        .delete(&tortie_datastore::ObjectKey::of(&aff[0]), None)
        .await?;
    let o = c.run(&["ipam", "check"], None)?;
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout)?;
    assert!(text.contains(&block), "check names the block: {text}");
    Ok(())
}
