//! Unit tests of the CNI protocol core: byte-exact JSON of every document the plugin
//! prints, and the validation of the runtime's environment.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn attachment(ips: &[&str]) -> Attachment {
    Attachment {
        host_iface: "calic440f455693".into(),
        host_mac: "ee:ee:ee:ee:ee:ee".into(),
        pod_iface: "eth0".into(),
        pod_mac: "02:42:ac:11:00:02".into(),
        netns: "/var/run/netns/pod1".into(),
        ips: ips
            .iter()
            .map(|s| s.parse().expect("test address"))
            .collect(),
    }
}

#[test]
fn add_result_1_0_bytes() {
    let r = add_result("1.0.0", &attachment(&["10.65.0.1"]));
    let got = serde_json::to_string(&r).expect("serialize");
    assert_eq!(
        got,
        r#"{"cniVersion":"1.0.0","interfaces":[{"name":"calic440f455693","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"02:42:ac:11:00:02","sandbox":"/var/run/netns/pod1"}],"ips":[{"address":"10.65.0.1/32","interface":1}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
    );
    // A runtime hands it back as prevResult: it must read back the same.
    let back: AddResult = serde_json::from_str(&got).expect("deserialize");
    assert_eq!(back, r);
}

#[test]
fn add_result_dual_stack_0_4_carries_versions() {
    let r = add_result("0.4.0", &attachment(&["10.65.0.1", "fd00:65::1"]));
    let got = serde_json::to_string(&r).expect("serialize");
    assert_eq!(
        got,
        r#"{"cniVersion":"0.4.0","interfaces":[{"name":"calic440f455693","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"02:42:ac:11:00:02","sandbox":"/var/run/netns/pod1"}],"ips":[{"version":"4","address":"10.65.0.1/32","interface":1},{"version":"6","address":"fd00:65::1/128","interface":1}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0","gw":"fe80::ecee:eeff:feee:eeee"}],"dns":{}}"#
    );
}

#[test]
fn version_and_error_bytes() {
    let v = serde_json::to_string(&VersionResult::ours()).expect("serialize");
    assert_eq!(
        v,
        r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
    );
    let e = ErrorResult {
        cni_version: "1.0.0".into(),
        code: ErrorCode::InvalidConfig.code(),
        msg: "mtu: 9 is outside 68..=65535 (0 = auto)".into(),
        details: String::new(),
    };
    assert_eq!(
        serde_json::to_string(&e).expect("serialize"),
        r#"{"cniVersion":"1.0.0","code":7,"msg":"mtu: 9 is outside 68..=65535 (0 = auto)"}"#
    );
    let e = ErrorResult {
        details: "etcd: connection refused".into(),
        code: ErrorCode::TryAgainLater.code(),
        ..e
    };
    assert_eq!(
        serde_json::to_string(&e).expect("serialize"),
        r#"{"cniVersion":"1.0.0","code":11,"msg":"mtu: 9 is outside 68..=65535 (0 = auto)","details":"etcd: connection refused"}"#
    );
}

#[test]
fn error_codes_are_the_specs() {
    let codes: Vec<u32> = [
        ErrorCode::IncompatibleVersion,
        ErrorCode::UnsupportedField,
        ErrorCode::UnknownContainer,
        ErrorCode::InvalidEnv,
        ErrorCode::Io,
        ErrorCode::Decode,
        ErrorCode::InvalidConfig,
        ErrorCode::TryAgainLater,
        ErrorCode::PluginNotAvailable,
    ]
    .iter()
    .map(|c| c.code())
    .collect();
    assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 7, 11, 50]);
}

#[test]
fn add_env_is_parsed() {
    let inv = Invocation::from_env(env(&[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123",
        ),
    ]))
    .expect("valid env");
    assert_eq!(inv.command, Command::Add);
    assert_eq!(inv.container_id, "abc123");
    assert_eq!(inv.netns.as_deref(), Some("/var/run/netns/x"));
    assert_eq!(inv.pod(), Some(("default", "web-0")));
}

#[test]
fn bad_env_names_the_variable() {
    let base = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/n"),
        ("CNI_IFNAME", "eth0"),
    ];
    let with = |k: &str, v: &str| {
        let mut e: Vec<(&str, &str)> = base.iter().filter(|(bk, _)| *bk != k).copied().collect();
        e.push((k, v));
        Invocation::from_env(env(&e)).expect_err("must fail")
    };
    for (k, v) in [
        ("CNI_COMMAND", "FROB"),
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a b"),
        ("CNI_IFNAME", "a-name-longer-than-15"),
        ("CNI_IFNAME", "eth:0"),
        ("CNI_IFNAME", ".."),
        ("CNI_ARGS", "K8S_POD_NAME"),
    ] {
        let err = with(k, v);
        assert_eq!(err.code, ErrorCode::InvalidEnv, "{k}={v}");
        assert!(err.msg.starts_with(k), "{k}={v}: {}", err.msg);
    }
    let err = Invocation::from_env(env(&base[..3])).expect_err("no ifname");
    assert_eq!(err.msg, "CNI_IFNAME: not set");
    // DEL needs no netns; ADD does.
    let del = Invocation::from_env(env(&[
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_IFNAME", "eth0"),
    ]))
    .expect("DEL without netns");
    assert_eq!(del.netns, None);
    let err = Invocation::from_env(env(&[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_IFNAME", "eth0"),
    ]))
    .expect_err("ADD without netns");
    assert_eq!(err.msg, "CNI_NETNS: not set");
    // VERSION needs nothing else.
    let v = Invocation::from_env(env(&[("CNI_COMMAND", "VERSION")])).expect("VERSION");
    assert_eq!(v.command, Command::Version);
}

#[test]
fn versions_and_commands() {
    assert!(check_version("1.0.0", Command::Add).is_ok());
    assert!(check_version("0.3.1", Command::Del).is_ok());
    let e = check_version("0.3.1", Command::Check).expect_err("CHECK is 0.4.0+");
    assert_eq!(e.code, ErrorCode::IncompatibleVersion);
    assert!(check_version("1.0.0", Command::Status).is_err());
    assert!(check_version("1.1.0", Command::Status).is_ok());
    let e = check_version("2.0.0", Command::Add).expect_err("unknown version");
    assert!(e.msg.starts_with("cniVersion: \"2.0.0\""), "{}", e.msg);
    assert!(version_before("0.4.0", "1.0.0"));
    assert!(!version_before("1.1.0", "1.0.0"));
    assert!(version_before("junk", "1.0.0"));
}
