//! Policy programming at scale, inside a network namespace (needs root):
//! 1,000 local endpoints × 200 NetworkPolicies programmed from scratch, then one
//! endpoint added, one endpoint relabelled and one policy changed (counting chains and
//! rules written), a full read-back resync, the dispatch depth (rules a packet traverses
//! to reach its pod's chain, tree vs linear), and the naive baseline of one `iptables`
//! process per rule measured on a subset and extrapolated.
//!
//! Run: `cargo bench -p tortie-felix --bench policy_scale`
//! (env `POLICY_BENCH_ENDPOINTS`, `POLICY_BENCH_POLICIES`, `POLICY_BENCH_NAIVE` override
//! the sizes).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use testlab::Lab;
use tortie_felix::iptables::render::hash_rules;
use tortie_felix::iptables::{Backend, Programmer, Runner};
use tortie_felix::policy::ruleset::{FROM_DISPATCH, TO_DISPATCH};
use tortie_felix::policy::{self, Endpoint, NamedPort, PolicyInput, Pool, Ruleset, Table};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const NAMESPACES: usize = 20;

fn endpoint(i: usize) -> Endpoint {
    let ns = format!("ns{}", i % NAMESPACES);
    let pod = format!("pod{i}");
    let tier = ["web", "api", "db", "cache"][i % 4];
    Endpoint {
        iface: Some(tortie_cni::host_iface_name(&ns, &pod)),
        labels: [
            ("app".to_string(), format!("a{}", (i / NAMESPACES) % 10)),
            ("tier".to_string(), tier.to_string()),
        ]
        .into(),
        ips: vec![
            format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)
                .parse()
                .expect("ip"),
        ],
        named_ports: vec![NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8080,
        }],
        namespace: ns,
        pod,
    }
}

fn policy(j: usize, port: u16) -> NetworkPolicy {
    let ns = j % NAMESPACES;
    let app = (j / NAMESPACES) % 10;
    let yaml = format!(
        r#"
metadata: {{name: pol{j}, namespace: ns{ns}}}
spec:
  podSelector: {{matchLabels: {{app: a{app}}}}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {{matchLabels: {{tier: web}}}}
    - namespaceSelector: {{matchLabels: {{team: t{}}}}}
    ports: [{{port: {port}}}, {{port: http}}]
  - from: [{{ipBlock: {{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}}}]
  egress:
  - to: [{{podSelector: {{matchLabels: {{tier: db}}}}}}]
    ports: [{{port: 5432}}]
  - ports: [{{port: 53, protocol: UDP}}]
"#,
        ns % 5
    );
    serde_yaml::from_str(&yaml).expect("policy yaml")
}

fn input(n_ep: usize, n_pol: usize) -> PolicyInput {
    PolicyInput {
        endpoints: (0..n_ep).map(endpoint).collect(),
        namespaces: (0..NAMESPACES)
            .map(|n| {
                (
                    format!("ns{n}"),
                    [("team".to_string(), format!("t{}", n % 5))].into(),
                )
            })
            .collect(),
        policies: (0..n_pol).map(|j| policy(j, 80)).collect(),
        pools: vec![Pool {
            cidr: "10.64.0.0/10".parse().expect("pool"),
            nat_outgoing: true,
        }],
        node_ips: vec!["192.0.2.1".parse().expect("ip")],
        config: Default::default(),
    }
}

/// Rules traversed in the dispatch chains before the packet reaches its endpoint chain.
fn depth(rs: &Ruleset, start: &str, iface: &str) -> Option<usize> {
    let chains = &rs.tables.get(&Table::Filter)?.chains;
    let (mut cur, mut n) = (start.to_string(), 0);
    'next: for _ in 0..16 {
        for r in chains.get(&cur)? {
            n += 1;
            let w: Vec<&str> = r.0.split_whitespace().collect();
            if w.len() < 4 {
                return None;
            }
            let hit = match w[1].strip_suffix('+') {
                Some(p) => iface.starts_with(p),
                None => iface == w[1],
            };
            if hit {
                if w[3].starts_with("cali-fw-") || w[3].starts_with("cali-tw-") {
                    return Some(n);
                }
                cur = w[3].to_string();
                continue 'next;
            }
        }
        return None;
    }
    None
}

fn depth_stats(rs: &Ruleset, ifaces: &[String]) -> (f64, usize) {
    let ds: Vec<usize> = ifaces
        .iter()
        .flat_map(|i| [depth(rs, FROM_DISPATCH, i), depth(rs, TO_DISPATCH, i)])
        .map(|d| d.expect("every endpoint reachable"))
        .collect();
    (
        ds.iter().sum::<usize>() as f64 / ds.len() as f64,
        ds.iter().copied().max().unwrap_or(0),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn scale(lab: &Lab, backend: Backend, n_ep: usize, n_pol: usize) -> Result<()> {
    let host = lab.add_bare_host(&format!("node-{backend:?}").to_lowercase())?;
    let mut felix = Programmer::new(Runner::in_netns(host.netns()), backend);
    let mut inp = input(n_ep, n_pol);
    let t = Instant::now();
    let rs = policy::build(&inp);
    let compile = t.elapsed();
    anyhow::ensure!(rs.warnings.is_empty(), "{:?}", rs.warnings);
    let t = Instant::now();
    let full = felix.apply(&rs)?;
    let from_scratch = t.elapsed();
    println!("\n### {backend:?} backend, {n_ep} endpoints × {n_pol} policies\n");
    println!(
        "| step | time | restores | chains written | rules written | ipsets created/swapped |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| compile (pure) | {} | - | {} chains total | {} rules total | {} sets |",
        ms(compile),
        rs.tables.values().map(|t| t.chains.len()).sum::<usize>(),
        rs.rule_count(),
        rs.ipsets.len()
    );
    let row = |name: &str, d: Duration, s: &tortie_felix::iptables::ApplyStats| {
        println!(
            "| {name} | {} | {} | {} | {} | {}/{} |",
            ms(d),
            s.restore_calls,
            s.chains_written,
            s.rules_written,
            s.sets_created,
            s.sets_swapped
        );
    };
    row("program from scratch", from_scratch, &full);

    let step = |name: &str, inp: &PolicyInput, felix: &mut Programmer| -> Result<()> {
        let t = Instant::now();
        let rs = policy::build(inp);
        let s = felix.apply(&rs)?;
        row(name, t.elapsed(), &s);
        Ok(())
    };
    inp.endpoints.push(endpoint(n_ep));
    step("add one endpoint (compile + apply)", &inp, &mut felix)?;
    let last = inp.endpoints.len() - 1;
    inp.endpoints[last].labels.insert("app".into(), "a3".into());
    step("relabel one endpoint", &inp, &mut felix)?;
    inp.policies[7] = policy(7, 81);
    step("change one policy's port", &inp, &mut felix)?;
    let rs = policy::build(&inp);
    let t = Instant::now();
    let s = felix.resync(&rs)?;
    row("resync: read back all, nothing to fix", t.elapsed(), &s);

    let total_rules = rs.rule_count();
    let ifaces: Vec<String> = inp
        .endpoints
        .iter()
        .filter_map(|e| e.iface.clone())
        .collect();
    let (avg, max) = depth_stats(&rs, &ifaces);
    let mut linear_inp = inp.clone();
    linear_inp.config.dispatch_fanout = usize::MAX;
    let (lavg, lmax) = depth_stats(&policy::build(&linear_inp), &ifaces);
    println!(
        "\nDispatch depth (rules traversed to reach the pod's chain): tree avg {avg:.1} max {max}; linear avg {lavg:.1} max {lmax}."
    );

    // Naive baseline: one process per rule, on a subset, in a fresh namespace.
    let naive_n = env("POLICY_BENCH_NAIVE", 300);
    let nhost = lab.add_bare_host(&format!("naive-{backend:?}").to_lowercase())?;
    let runner = Runner::in_netns(nhost.netns());
    let filter = rs.tables.get(&Table::Filter).context("filter")?;
    for chain in filter.chains.keys() {
        runner.run(backend.iptables(), &["-N", chain], None)?;
    }
    // Rules without set matches (the baseline namespace has no ipsets).
    let lines: Vec<String> = filter
        .chains
        .iter()
        .flat_map(|(chain, rules)| {
            hash_rules(chain, rules)
                .into_iter()
                .map(move |h| format!("-A {chain} {}", h.line.replace('"', "")))
        })
        .filter(|l| !l.contains("--match-set"))
        .take(naive_n)
        .collect();
    let done = lines.len();
    let t = Instant::now();
    for line in &lines {
        let args: Vec<&str> = line.split_whitespace().collect();
        runner.run(backend.iptables(), &args, None)?;
    }
    let per_rule = t.elapsed() / done.max(1) as u32;
    println!(
        "\nNaive baseline: {done} rules one `{}` process each: {} per rule (all chains created, no other rules) ⇒ {total_rules} rules ≈ {:.1} s (a lower bound: per-rule cost grows with table size), vs {} with one restore per table ({:.0}× faster).",
        backend.iptables(),
        ms(per_rule),
        per_rule.as_secs_f64() * total_rules as f64,
        ms(from_scratch),
        per_rule.as_secs_f64() * total_rules as f64 / from_scratch.as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<()> {
    testlab::require_root();
    let n_ep = env("POLICY_BENCH_ENDPOINTS", 1000);
    let n_pol = env("POLICY_BENCH_POLICIES", 200);
    let lab = Lab::new("polbench")?;
    for backend in [Backend::Nft, Backend::Legacy] {
        scale(&lab, backend, n_ep, n_pol)?;
    }
    Ok(())
}
