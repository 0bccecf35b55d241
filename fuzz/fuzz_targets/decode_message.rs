//! Fuzz target: one BGP message decoded under every codec context. Must never panic;
//! errors must map to a NOTIFICATION; a successful decode must re-encode (or fail
//! cleanly), and encode∘decode must then be a fixpoint.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run decode_message corpus/decode_message`
//! (seed the corpus with `./seed.sh`, which splits the captured sessions).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tortie_bgp::wire::{Ctx, decode_message, encode_message};

fuzz_target!(|data: &[u8]| {
    for bits in 0u8..8 {
        let ctx = Ctx {
            four_octet_as: bits & 1 != 0,
            extended_message: bits & 2 != 0,
            ipv4_in_mp: bits & 4 != 0,
        };
        match decode_message(data, &ctx) {
            Err(e) => {
                let n = e.notification();
                assert!((1..=7).contains(&n.code), "{e:?} -> {n:?}");
            }
            Ok(d) => {
                for i in &d.issues {
                    let _ = i.notification();
                }
                if let Ok(b1) = encode_message(&d.message, &ctx) {
                    let m2 = decode_message(&b1, &ctx)
                        .expect("our own encoding decodes")
                        .message;
                    let b2 = encode_message(&m2, &ctx).expect("re-encodes");
                    assert_eq!(b1, b2, "encode∘decode is not a fixpoint");
                    assert_eq!(decode_message(&b2, &ctx).expect("decodes").message, m2);
                }
            }
        }
    }
});
