//! The built `tortiectl` against a real kube-apiserver (testlab harness, CRDs from
//! `deploy/crds/`): `--datastore-type kubernetes --kubeconfig` selects the Kubernetes
//! backend; Calico v3 apply, get, overlap refusal and delete behave as on etcd.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};
use testlab::kube_apiserver::KubeApiServer;

fn run(server: &KubeApiServer, args: &[&str], stdin: &str) -> Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .arg("--datastore-type")
        .arg("kubernetes")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .env_remove("ETCD_ENDPOINTS")
        .env_remove("DATASTORE_TYPE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn tortiectl")?;
    if let Some(mut si) = child.stdin.take() {
        si.write_all(stdin.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_refuse_delete_on_kube_apiserver() -> Result<()> {
    let server = KubeApiServer::start().await?;
    let calico = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: kpool}\nspec: {cidr: 10.60.0.0/16, vxlanMode: Always}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 192.0.2.9, asNumber: 65001}\n";
    let o = run(&server, &["apply", "-f", "-"], calico)?;
    assert!(o.status.success(), "{}", text(&o));

    let o = run(&server, &["get", "ippools", "-o", "wide"], "")?;
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("kpool") && t.contains("10.60.0.0/16") && t.contains("Always"),
        "{t}"
    );
    let o = run(&server, &["get", "bgppeer", "tor", "-o", "json"], "")?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).context(text(&o))?;
    assert_eq!(v["apiVersion"], "crd.tortie.dev/v1");
    assert_eq!(v["spec"]["asNumber"], 65001);

    // Overlap with the stored pool: refused, nothing written.
    let o = run(
        &server,
        &["apply", "-f", "-"],
        "apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: other}\nspec: {cidr: 10.60.5.0/24}\n",
    )?;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("overlaps IPPool kpool"), "{t}");
    let o = run(&server, &["get", "ippool", "other"], "")?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Immutability on the Kubernetes backend too.
    let o = run(
        &server,
        &["apply", "-f", "-"],
        "apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: kpool}\nspec: {cidr: 10.60.0.0/16, blockSize: 24}\n",
    )?;
    assert!(text(&o).contains("spec.blockSize"), "{}", text(&o));

    let o = run(&server, &["delete", "ippool", "kpool"], "")?;
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&server, &["get", "ippools"], "")?;
    assert_eq!(
        String::from_utf8(o.stdout)?.lines().count(),
        1,
        "header only"
    );
    Ok(())
}
