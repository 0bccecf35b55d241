//! The built `tortie-rr` binary exits 64 on every configuration error (bad flag value,
//! unreadable clients file, no peers, unknown flag) and names the culprit on stderr.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tortie-rr"))
        .args(args)
        .env_remove("TORTIE_RR_ROUTER_ID")
        .output()
        .expect("run tortie-rr");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_exit_64_naming_the_field() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--router-id", "nope", "--client", "10.0.0.1"],
            "--router-id",
        ),
        (
            &["--router-id", "10.0.0.9", "--client", "10.0.0.1:x"],
            "--client",
        ),
        (&["--router-id", "10.0.0.9"], "no clients"),
        (
            &[
                "--router-id",
                "10.0.0.9",
                "--clients-from",
                "/nonexistent/tortie-rr-clients",
            ],
            "--clients-from",
        ),
        (&["--router-id", "10.0.0.9", "--bogus"], "--bogus"),
    ];
    for (args, needle) in cases {
        let (code, err) = run(args);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
    }
    let (code, out) = run(&["--help"]);
    assert_eq!(code, Some(0), "{out}");
}
