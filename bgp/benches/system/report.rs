//! The benchmark's results and their Markdown table. Pure: samples in, text out.

use std::fmt::Write as _;

/// One run of one receiver.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds from the injector's first UPDATE byte to the end of the first poll that
    /// saw every prefix.
    pub polled_s: f64,
    /// Uncertainty: from the start of the last poll that was not yet full to
    /// `polled_s` (the true time lies in that window).
    pub window_s: f64,
    /// Seconds to the receiver's own timestamp of the last prefix (tortie only).
    pub exact_s: Option<f64>,
    /// Seconds the injector needed to hand the whole table to its socket.
    pub sent_s: f64,
    /// Peak RSS (VmHWM) summed over the receiver's processes, KiB.
    pub peak_rss_kib: u64,
    /// RSS right after start, before the session, KiB.
    pub start_rss_kib: u64,
    /// User + system CPU seconds of the receiver's processes when the count was full.
    pub cpu_s: f64,
    /// Duration of one count poll once the receiver is idle, seconds.
    pub idle_poll_s: f64,
    /// Mean duration of one count poll, seconds.
    pub poll_s: f64,
}

/// Median of `v` (mean of the middle two for an even count); None when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s.get(m).copied()
    } else {
        Some((s.get(m - 1)? + s.get(m)?) / 2.0)
    }
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().reduce(f64::min)?;
    let max = v.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// Summary of one receiver over its runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub time_s: Option<f64>,
    pub spread_s: Option<(f64, f64)>,
    pub exact_s: Option<f64>,
    pub rss_mib: Option<f64>,
    pub start_rss_mib: Option<f64>,
    pub cpu_s: Option<f64>,
    pub poll_ms: Option<f64>,
    pub window_s: Option<f64>,
    pub runs: usize,
    pub failures: Vec<String>,
}

impl Row {
    pub fn new(name: &str, samples: &[Sample], failures: Vec<String>) -> Row {
        let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
        let times = col(|s| s.polled_s);
        let exact: Vec<f64> = samples.iter().filter_map(|s| s.exact_s).collect();
        Row {
            name: name.to_string(),
            time_s: median(&times),
            spread_s: min_max(&times),
            exact_s: median(&exact),
            rss_mib: median(&col(|s| s.peak_rss_kib as f64 / 1024.0)),
            start_rss_mib: median(&col(|s| s.start_rss_kib as f64 / 1024.0)),
            cpu_s: median(&col(|s| s.cpu_s)),
            poll_ms: median(&col(|s| s.poll_s * 1000.0)),
            window_s: median(&col(|s| s.window_s)),
            runs: samples.len(),
            failures,
        }
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "–".to_string(),
    }
}

/// The Markdown table; ratios are to the row named `base` (BIRD).
pub fn markdown(rows: &[Row], base: &str) -> String {
    let b = rows.iter().find(|r| r.name == base);
    let (bt, br) = (b.and_then(|r| r.time_s), b.and_then(|r| r.rss_mib));
    let mut s = String::new();
    s.push_str(
        "| receiver | time to full RIB (median) | spread (min–max) | vs BIRD time \
         | peak RSS | vs BIRD RSS | RSS at start | CPU (user+sys) | runs |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
            r.name,
            opt(r.time_s, |t| format!("{t:.3} s")),
            r.spread_s
                .map_or("–".into(), |(a, z)| format!("{a:.3}–{z:.3} s")),
            ratio(r.time_s, bt),
            opt(r.rss_mib, |m| format!("{m:.1} MiB")),
            ratio(r.rss_mib, br),
            opt(r.start_rss_mib, |m| format!("{m:.1} MiB")),
            opt(r.cpu_s, |c| format!("{c:.2} s")),
            r.runs,
            if r.failures.is_empty() {
                String::new()
            } else {
                format!(" ({} failed)", r.failures.len())
            },
        );
    }
    s
}
