//! iptables and ipset programming: rendering the compiler's [`Ruleset`] to
//! `iptables-restore` text (pure), reading back with `iptables-save` (pure parser),
//! and a thin driver that runs the binaries (optionally inside a named network
//! namespace), detects the legacy/nft backend and repairs drift; one programmer per IP
//! family (iptables / ip6tables), [`DualStack`] holding both.
//!
//! [`Ruleset`]: crate::policy::Ruleset

pub mod dual;
pub mod exec;
pub mod ipset;
pub mod program;
pub mod render;
pub mod save;

pub use dual::DualStack;
pub use exec::{Backend, Runner};
pub use program::{ApplyStats, Programmer};

/// Errors of the iptables/ipset driver.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{program} printed output that is not UTF-8")]
    NotUtf8 { program: String },
    #[error("a {ruleset:?} ruleset given to the {programmer:?} programmer")]
    WrongFamily {
        programmer: crate::policy::model::Family,
        ruleset: crate::policy::model::Family,
    },
}
