//! Property tests of the pure block allocator: whatever the interleaving of assign,
//! assign-specific, release (fresh or stale sequence number) and release-by-handle, an
//! ordinal is never handed out while held, free + used = size, and the block stays sound.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use tortie_crds::{AllocationAttribute, IpamBlockSpec};
use tortie_ipam::block;

#[derive(Clone, Debug)]
enum Op {
    Assign { n: usize, handle: u8 },
    Specific { ordinal: usize, handle: u8 },
    Release { pick: usize, stale: bool },
    ReleaseHandle { handle: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..6, 0u8..4).prop_map(|(n, handle)| Op::Assign { n, handle }),
        (0usize..16, 0u8..4).prop_map(|(ordinal, handle)| Op::Specific { ordinal, handle }),
        (0usize..64, any::<bool>()).prop_map(|(pick, stale)| Op::Release { pick, stale }),
        (0u8..4).prop_map(|handle| Op::ReleaseHandle { handle }),
    ]
}

fn attr(h: u8) -> AllocationAttribute {
    AllocationAttribute {
        handle_id: Some(format!("h{h}")),
        secondary: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn never_twice_and_sizes_add_up(ops in proptest::collection::vec(op(), 1..80)) {
        let mut b = IpamBlockSpec::empty("10.1.0.0/28".parse().unwrap(), Some("n"));
        // Model: address -> (handle, seq).
        let mut held: BTreeMap<IpAddr, (String, u64)> = BTreeMap::new();
        let mut stale_seqs: Vec<(IpAddr, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Assign { n, handle } => {
                    let want = n.min(block::free(&b));
                    let got = block::assign(&mut b, n, &attr(handle)).unwrap();
                    prop_assert_eq!(got.len(), want);
                    for a in got {
                        prop_assert!(!held.contains_key(&a.ip), "{} handed out twice", a.ip);
                        held.insert(a.ip, (format!("h{handle}"), a.seq));
                    }
                }
                Op::Specific { ordinal, handle } => {
                    let ip = block::ip_of(&b, ordinal).unwrap();
                    match block::assign_specific(&mut b, ip, &attr(handle)) {
                        Ok(a) => {
                            prop_assert!(!held.contains_key(&ip), "{} handed out twice", ip);
                            held.insert(a.ip, (format!("h{handle}"), a.seq));
                        }
                        Err(_) => prop_assert!(held.contains_key(&ip)),
                    }
                }
                Op::Release { pick, stale } => {
                    if stale && !stale_seqs.is_empty() {
                        let (ip, seq) = stale_seqs[pick % stale_seqs.len()];
                        let live = held.get(&ip).map(|h| h.1);
                        let r = block::release(&mut b, ip, Some(seq));
                        // A stale number frees nothing; only the live number frees.
                        if live == Some(seq) {
                            prop_assert!(r.is_ok());
                            held.remove(&ip);
                        } else {
                            prop_assert!(r.is_err());
                        }
                    } else if !held.is_empty() {
                        let ip = *held.keys().nth(pick % held.len()).unwrap();
                        let (h, seq) = held.remove(&ip).unwrap();
                        let f = block::release(&mut b, ip, Some(seq)).unwrap();
                        prop_assert_eq!(f.handle, Some(h));
                        stale_seqs.push((ip, seq));
                    }
                }
                Op::ReleaseHandle { handle } => {
                    let name = format!("h{handle}");
                    let freed = block::release_handle(&mut b, &name);
                    let before = held.len();
                    held.retain(|_, (h, _)| *h != name);
                    prop_assert_eq!(freed.len(), before - held.len());
                }
            }
            prop_assert_eq!(block::used(&b) + block::free(&b), block::size(&b));
            prop_assert_eq!(block::used(&b), held.len());
            prop_assert!(block::problems(&b).is_empty(), "{:?}", block::problems(&b));
            for (ip, (h, seq)) in &held {
                let o = block::ordinal_of(&b, *ip).unwrap();
                let a = block::holder(&b, o).unwrap();
                prop_assert_eq!(a.handle_id.as_deref(), Some(h.as_str()));
                prop_assert_eq!(b.sequence_number_for_allocation.get(&o.to_string()), Some(seq));
            }
        }
    }
}
