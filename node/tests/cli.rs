//! The binary's start-up errors for the datastore choice: a bad `DATASTORE_TYPE` exits 64
//! naming the variable and its values; the Kubernetes datastore without `KUBECONFIG`
//! outside a pod, or with a missing kubeconfig file, fails naming what it tried. No root,
//! no network: every case stops before anything is connected.

mod common;

use std::process::{Command, Output};

fn run(env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::BIN);
    c.env_clear().env("NODENAME", "n1").env("IP", "10.0.0.1/24");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tortie-node")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_datastore_type_exits_64_naming_the_variable() {
    let o = run(&[("DATASTORE_TYPE", "foo")]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(r#"DATASTORE_TYPE: unknown value "foo" (kubernetes, etcdv3)"#),
        "{}",
        stderr(&o)
    );
    let o = run(&[("DATASTORE_TYPE", "etcdv3")]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("ETCD_ENDPOINTS"), "{}", stderr(&o));
}

#[test]
fn kubernetes_without_kubeconfig_outside_a_pod_names_the_in_cluster_attempt() {
    // Default datastore (kubernetes), no KUBECONFIG, no service-account environment.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in-cluster service account (KUBECONFIG unset)"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        ("DATASTORE_TYPE", "kubernetes"),
        ("KUBECONFIG", "/nonexistent/tortie-kubeconfig"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KUBECONFIG /nonexistent/tortie-kubeconfig"),
        "{}",
        stderr(&o)
    );
}
