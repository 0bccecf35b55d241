//! Operator-facing parsers return errors, never panic, on arbitrary input.

use proptest::prelude::*;
use tortie_crds::duration::parse_go_duration;
use tortie_crds::{AsNumber, from_calico_v3_yaml, parse_peer_ip};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn small_parsers_never_panic(text in "[ -~]{0,24}") {
        let _ = text.parse::<AsNumber>();
        let _ = parse_go_duration(&text);
        let _ = parse_peer_ip(&text);
    }

    #[test]
    fn asdot_and_plain_agree(hi in 0u32..=0xffff, lo in 0u32..=0xffff) {
        let dot: AsNumber = format!("{hi}.{lo}").parse().unwrap();
        let plain: AsNumber = (hi * 65536 + lo).to_string().parse().unwrap();
        prop_assert_eq!(dot, plain);
    }

    #[test]
    fn manifests_never_panic(
        kind in prop_oneof![Just("IPPool"), Just("BGPPeer"), Just("BGPConfiguration"), Just("IPAMBlock"), Just("WorkloadEndpoint")],
        api in prop_oneof![Just("projectcalico.org/v3"), Just("crd.tortie.dev/v1")],
        key in prop_oneof![Just("cidr"), Just("blockSize"), Just("asNumber"), Just("peerIP"), Just("allocations"), Just("nodeSelector"), Just("ipNetworks")],
        value in "[ -~]{0,16}",
    ) {
        let doc = format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\nspec:\n  {key}: {value}\n");
        let _ = from_calico_v3_yaml(&doc);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,64}") {
        let _ = from_calico_v3_yaml(&text);
    }
}
