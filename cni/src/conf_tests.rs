//! Unit tests of the network configuration parser: Calico-style configurations, every
//! rejected field named in the error, and the deploy/ ConfigMap's template.

use super::*;

fn parse(s: &str) -> Result<NetConf, InvocationError> {
    NetConf::parse(s.as_bytes())
}

const ETCD: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"tortie-cni",
  "datastore_type":"etcdv3","etcd_endpoints":"http://10.0.0.1:2379, http://10.0.0.2:2379",
  "nodename":"node-1","mtu":1440,"ipam":{"type":"tortie-cni","assign_ipv6":"true"}}"#;

#[test]
fn etcd_config() {
    let c = parse(ETCD).expect("valid");
    assert_eq!(c.cni_version, "1.0.0");
    assert_eq!(c.handle("abc"), "k8s-pod-network.abc");
    assert_eq!(
        c.datastore,
        DatastoreConf::Etcd {
            endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
            prefix: "/tortie".into(),
        }
    );
    assert_eq!(c.node, NodeSource::Name("node-1".into()));
    assert_eq!(c.mtu, MtuSource::Value(1440));
    assert!(c.assign_ipv4 && c.assign_ipv6);
    assert_eq!(c.prev_result, None);
}

#[test]
fn defaults_nodename_file_and_mtu_file() {
    let c = parse(
        r#"{"cniVersion":"0.3.1","name":"n","type":"tortie-cni","datastore_type":"kubernetes",
            "kubernetes":{"kubeconfig":"/etc/cni/net.d/tortie-kubeconfig"},"ipam":{"type":"tortie-cni"}}"#,
    )
    .expect("valid");
    assert_eq!(c.node, NodeSource::File(DEFAULT_NODENAME_FILE.into()));
    assert_eq!(c.mtu, MtuSource::File(DEFAULT_MTU_FILE.into()));
    assert!(c.assign_ipv4 && !c.assign_ipv6);
    assert_eq!(
        c.datastore,
        DatastoreConf::Kubernetes {
            kubeconfig: Some("/etc/cni/net.d/tortie-kubeconfig".into())
        }
    );
    assert_eq!(
        resolve_node(&c.node, Some("node-7\n"), "host"),
        Ok("node-7".into())
    );
    assert_eq!(resolve_node(&c.node, None, "host"), Ok("host".into()));
    assert!(resolve_node(&c.node, None, "").is_err());
    assert_eq!(resolve_mtu(&c.mtu, Some("1430\n")), 1430);
    assert_eq!(resolve_mtu(&c.mtu, Some("garbage")), FALLBACK_MTU);
    assert_eq!(resolve_mtu(&c.mtu, None), FALLBACK_MTU);
    assert_eq!(resolve_mtu(&MtuSource::Value(1400), Some("1430")), 1400);
}

#[test]
fn every_bad_field_is_named() {
    let cases: &[(&str, ErrorCode, &str)] = &[
        (
            r#"{"cniVersion":"1.0.0","#,
            ErrorCode::Decode,
            "network configuration",
        ),
        (
            r#"{"name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "cniVersion",
        ),
        (
            r#"{"cniVersion":"1.0.0","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "name",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "type",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","mtu":9,"ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "mtu",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","mtu":"big","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "mtu",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "ipam",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"host-local"},"datastore_type":"kubernetes"}"#,
            ErrorCode::UnsupportedField,
            "ipam.type",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni","assign_ipv6":"yes"},"datastore_type":"kubernetes"}"#,
            ErrorCode::InvalidConfig,
            "ipam.assign_ipv6",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"}}"#,
            ErrorCode::InvalidConfig,
            "etcd_endpoints",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"etcd_endpoints":"10.0.0.1:2379"}"#,
            ErrorCode::InvalidConfig,
            "etcd_endpoints",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"etcd_endpoints":"http://a:1","etcd_prefix":"x"}"#,
            ErrorCode::InvalidConfig,
            "etcd_prefix",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"consul"}"#,
            ErrorCode::InvalidConfig,
            "datastore_type",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes","kubernetes":{"kubeconfig":7}}"#,
            ErrorCode::InvalidConfig,
            "kubernetes.kubeconfig",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes","prevResult":{"ips":"x"}}"#,
            ErrorCode::InvalidConfig,
            "prevResult",
        ),
    ];
    for (conf, code, field) in cases {
        let e = parse(conf).expect_err(conf);
        assert_eq!(e.code, *code, "{conf}: {}", e.msg);
        assert!(e.msg.starts_with(field), "{conf}: {}", e.msg);
    }
}

#[test]
fn prev_result_is_read() {
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"tortie-cni","ipam":{"type":"tortie-cni"},"datastore_type":"kubernetes",
      "prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"cali1"},{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.0.0.1/32","interface":1}],"routes":[],"dns":{}}}"#;
    let c = parse(conf).expect("valid");
    let prev = c.prev_result.expect("prevResult");
    assert_eq!(prev.interfaces[0].name, "cali1");
    assert_eq!(prev.ips[0].address, "10.0.0.1/32");
    assert_eq!(
        NetConf::version_of(conf.as_bytes()).as_deref(),
        Some("1.0.0")
    );
}

/// The ConfigMap template in deploy/ must render (as install-cni fills it) into a
/// configuration list whose tortie-cni entry this parser accepts, with a real MTU and
/// with the "0 = computed by the agent" default.
#[test]
fn deploy_configmap_template_is_accepted() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tortie-config.yaml");
    let text = std::fs::read_to_string(path).expect("deploy/tortie-config.yaml");
    let cm: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let tpl = cm["data"]["cni_network_config"]
        .as_str()
        .expect("data.cni_network_config");
    let default_mtu = cm["data"]["veth_mtu"].as_str().expect("data.veth_mtu");
    for mtu in [default_mtu, "1440"] {
        let filled = tpl
            .replace("__KUBERNETES_NODE_NAME__", "node-1")
            .replace("__CNI_MTU__", mtu);
        let c = check_conflist(filled.as_bytes()).expect("the deployed config parses");
        assert_eq!(c.node, NodeSource::Name("node-1".into()));
        assert_eq!(c.handle("abc"), "k8s-pod-network.abc");
        match mtu {
            "0" => assert_eq!(c.mtu, MtuSource::File(DEFAULT_MTU_FILE.into())),
            m => assert_eq!(c.mtu, MtuSource::Value(m.parse().expect("mtu"))),
        }
        assert!(matches!(
            c.datastore,
            DatastoreConf::Kubernetes {
                kubeconfig: Some(_)
            }
        ));
    }
}

#[test]
fn conflist_errors_name_the_field() {
    let e = check_conflist(b"{").expect_err("not JSON");
    assert_eq!(e.code, ErrorCode::Decode);
    let e = check_conflist(br#"{"cniVersion":"1.0.0","name":"n"}"#).expect_err("no plugins");
    assert!(e.msg.starts_with("plugins"), "{}", e.msg);
    let e = check_conflist(br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#)
        .expect_err("not ours");
    assert!(e.msg.contains("no entry of type"), "{}", e.msg);
    let e = check_conflist(
        br#"{"cniVersion":"9.9.9","name":"n","plugins":[{"type":"tortie-cni","datastore_type":"kubernetes","ipam":{"type":"tortie-cni"}}]}"#,
    )
    .expect_err("version");
    assert_eq!(e.code, ErrorCode::IncompatibleVersion);
}
