//! Table tests of the pure decisions: the apply plan (defaults, existence per verb,
//! overlap within the batch and with stored pools, immutability, CAS version carried) and
//! datastore selection; plus the status server's refusals over loopback TCP.

use tortie_crds::{IpPool, IpPoolSpec, TortieObject};
use tortie_ctl::CtlError;
use tortie_ctl::apply::{Action, Mode, plan};
use tortie_ctl::connect::DatastoreConfig;
use tortie_ctl::status::{self, StatusAddr, StatusError, StatusListener};

fn pool(name: &str, cidr: &str, version: Option<&str>) -> IpPool {
    let mut p = IpPool::new(name, IpPoolSpec::new(cidr.parse().expect("cidr")));
    p.metadata.resource_version = version.map(str::to_string);
    p
}

fn obj(p: &IpPool) -> TortieObject {
    TortieObject::IpPool(p.clone())
}

#[test]
fn plan_creates_with_defaults_and_updates_carry_the_stored_version() {
    let new = pool("a", "10.1.0.0/16", None);
    let stored = pool("a", "10.1.0.0/16", Some("42"));
    let acts = plan(&[obj(&new)], &[None], &[], Mode::Apply).expect("create");
    match &acts[..] {
        [Action::Create(TortieObject::IpPool(p))] => assert_eq!(p.spec.block_size, Some(26)),
        other => panic!("want one create, got {other:?}"),
    }
    let acts = plan(
        &[obj(&new)],
        &[Some(obj(&stored))],
        std::slice::from_ref(&stored),
        Mode::Apply,
    )
    .expect("update");
    match &acts[..] {
        [Action::Update(TortieObject::IpPool(p))] => {
            assert_eq!(p.metadata.resource_version.as_deref(), Some("42"))
        }
        other => panic!("want one update, got {other:?}"),
    }
}

#[test]
fn plan_refusals_name_document_and_field() {
    let a = pool("a", "10.1.0.0/16", Some("1"));
    type Case = (
        Vec<IpPool>,
        Vec<Option<IpPool>>,
        Vec<IpPool>,
        Mode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        // overlap with a stored pool
        (
            vec![pool("b", "10.1.2.0/24", None)],
            vec![None],
            vec![a.clone()],
            Mode::Apply,
            "overlaps IPPool a",
        ),
        // overlap inside the batch
        (
            vec![
                pool("c", "10.2.0.0/16", None),
                pool("d", "10.2.1.0/24", None),
            ],
            vec![None, None],
            vec![],
            Mode::Apply,
            "document 2 (IPPool d): spec.cidr",
        ),
        // immutable cidr
        (
            vec![pool("a", "10.9.0.0/16", None)],
            vec![Some(a.clone())],
            vec![a.clone()],
            Mode::Apply,
            "spec.cidr: is immutable",
        ),
        // verbs
        (
            vec![pool("a", "10.1.0.0/16", None)],
            vec![Some(a.clone())],
            vec![a.clone()],
            Mode::Create,
            "already exists",
        ),
        (
            vec![pool("z", "10.7.0.0/16", None)],
            vec![None],
            vec![],
            Mode::Replace,
            "does not exist",
        ),
        // duplicates
        (
            vec![
                pool("e", "10.3.0.0/16", None),
                pool("e", "10.3.0.0/16", None),
            ],
            vec![None, None],
            vec![],
            Mode::Apply,
            "appears twice",
        ),
    ];
    for (docs, existing, stored, mode, want) in cases {
        let docs: Vec<TortieObject> = docs.iter().map(obj).collect();
        let existing: Vec<Option<TortieObject>> =
            existing.iter().map(|o| o.as_ref().map(obj)).collect();
        let errs = plan(&docs, &existing, &stored, mode).expect_err(want);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:?}"
        );
    }
    // Renaming a pool onto its own cidr is no overlap with itself.
    let same = pool("a", "10.1.0.0/16", None);
    plan(
        &[obj(&same)],
        &[Some(obj(&a))],
        std::slice::from_ref(&a),
        Mode::Apply,
    )
    .expect("self is no overlap");
}

#[test]
fn datastore_selection() {
    let r = |t: Option<&str>, e: Option<&str>| DatastoreConfig::resolve(t, e, None, None);
    assert_eq!(
        r(None, Some("http://127.0.0.1:2379, http://127.0.0.2:2379")).expect("etcd"),
        DatastoreConfig::Etcd {
            endpoints: vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.2:2379".into()
            ],
            prefix: "/tortie".into(),
        }
    );
    assert_eq!(
        r(None, None).expect("kube"),
        DatastoreConfig::Kubernetes { kubeconfig: None }
    );
    for (t, e, field) in [
        (Some("etcdv3"), None, "--etcd-endpoints"),
        (Some("etcdv3"), Some("127.0.0.1:2379"), "--etcd-endpoints"),
        (Some("consul"), None, "--datastore-type"),
    ] {
        let err = r(t, e).expect_err(field);
        assert!(
            matches!(err, CtlError::Usage(_)) && err.to_string().contains(field),
            "{err}"
        );
        assert_eq!(err.exit_code(), 64);
    }
    let err = DatastoreConfig::resolve(Some("etcdv3"), Some("http://x:1"), None, Some("rel"))
        .expect_err("prefix");
    assert!(err.to_string().contains("--etcd-prefix"), "{err}");
}

#[tokio::test]
async fn status_server_reports_source_failure_and_unknown_paths() {
    let listener = StatusListener::bind(&StatusAddr::Tcp("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("bind");
    let addr = listener.local_tcp_addr().expect("tcp addr");
    let server = tokio::spawn(status::serve(listener, || async {
        Err::<Vec<status::StatusPeer>, String>("speaker stopped".into())
    }));
    let err = status::fetch(&StatusAddr::Tcp(addr))
        .await
        .expect_err("503");
    match &err {
        StatusError::Protocol { reason, .. } => {
            assert!(
                reason.contains("503") && reason.contains("speaker stopped"),
                "{reason}"
            )
        }
        other => panic!("want a protocol error, got {other:?}"),
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /nope HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.0 404"), "{out}");
    server.abort();
}
