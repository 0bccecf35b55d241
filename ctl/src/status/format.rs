//! The `tortiectl node status` text, exactly in Calico's layout (`calicoctl node status`).
//!
//! Pure: rows in, text out; the current time is an argument (SINCE shows `HH:MM:SS` for
//! changes of the same UTC day, the date otherwise). Owns the STATE/SINCE/INFO mapping
//! from a speaker [`PeerStatus`](tortie_bgp::speaker::PeerStatus).

use std::fmt::Write as _;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use tortie_bgp::speaker::State;

use super::StatusPeer;

/// Calico's STATE column: BIRD's protocol state (`up` once Established, `start` while
/// trying).
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Established => "up",
        _ => "start",
    }
}

/// Calico's SINCE column: the time of day when `since` is on `now`'s (UTC) day, else the
/// date.
pub fn since_text(since: SystemTime, now: SystemTime) -> String {
    let since: DateTime<Utc> = since.into();
    let now: DateTime<Utc> = now.into();
    if since.date_naive() == now.date_naive() {
        since.format("%H:%M:%S").to_string()
    } else {
        since.format("%Y-%m-%d").to_string()
    }
}

/// Calico's INFO column: `Established`, or the session state followed by the last error.
pub fn info_text(p: &StatusPeer) -> String {
    let s = &p.status;
    if !s.info.is_empty() {
        return s.info.clone();
    }
    match (&s.last_error, s.state) {
        (_, State::Established) | (None, _) => s.state.to_string(),
        (Some(e), st) => format!("{st} {e}"),
    }
}

/// A table with `+---+` rules and centred headers, cells left-aligned with one space of
/// padding, as Calico prints it.
pub fn boxed_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule = {
        let mut r = String::from("+");
        for w in &width {
            r.push_str(&"-".repeat(w + 2));
            r.push('+');
        }
        r
    };
    let mut out = String::new();
    let _ = writeln!(out, "{rule}");
    let mut line = String::from("|");
    for (h, w) in header.iter().zip(&width) {
        let len = h.chars().count();
        let left = (w - len) / 2;
        let right = w - len - left;
        let _ = write!(line, " {}{}{} |", " ".repeat(left), h, " ".repeat(right));
    }
    let _ = writeln!(out, "{line}");
    let _ = writeln!(out, "{rule}");
    for row in rows {
        let mut line = String::from("|");
        for (cell, w) in row.iter().zip(&width) {
            let _ = write!(line, " {cell:<w$} |");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{rule}");
    out
}

fn family_section(title: &str, peers: &[&StatusPeer], now: SystemTime) -> String {
    let mut out = format!("{title}\n");
    if peers.is_empty() {
        let family = if title.starts_with("IPv4") {
            "IPv4"
        } else {
            "IPv6"
        };
        out.push_str(&format!("No {family} peers found.\n"));
        return out;
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.status.address.to_string(),
                p.peer_type.as_str().to_string(),
                state_word(p.status.state).to_string(),
                since_text(p.status.since, now),
                info_text(p),
            ]
        })
        .collect();
    out.push_str(&boxed_table(
        &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
        &rows,
    ));
    out
}

/// The whole `node status` BGP part: the IPv4 then the IPv6 table, rows sorted by
/// address as the agent reported them.
pub fn format_node_status(peers: &[StatusPeer], now: SystemTime) -> String {
    let mut v4: Vec<&StatusPeer> = peers
        .iter()
        .filter(|p| p.status.address.is_ipv4())
        .collect();
    let mut v6: Vec<&StatusPeer> = peers
        .iter()
        .filter(|p| p.status.address.is_ipv6())
        .collect();
    v4.sort_by_key(|p| p.status.address);
    v6.sort_by_key(|p| p.status.address);
    let mut out = family_section("IPv4 BGP status", &v4, now);
    out.push('\n');
    out.push_str(&family_section("IPv6 BGP status", &v6, now));
    out
}
