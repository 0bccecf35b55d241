//! `tortiectl get` output: calicoctl-style tables (default and `-o wide`) and YAML/JSON
//! manifests. Pure: objects in, text out.

use tortie_crds::{EncapMode, TortieObject};

use crate::CtlError;
use crate::objects::ResourceKind;

/// `-o` formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Columns (default).
    Table,
    /// Columns with more fields.
    Wide,
    /// A YAML stream (one document per object).
    Yaml,
    /// JSON (one object, or a `List` for several).
    Json,
}

impl Format {
    /// Parses `-o`.
    pub fn parse(text: &str) -> Result<Format, CtlError> {
        match text {
            "" | "ps" | "table" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "yaml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            other => Err(CtlError::Usage(format!(
                "--output: unknown format {other:?} (yaml, json, wide)"
            ))),
        }
    }
}

/// Columns separated by three spaces, as calicoctl's tabwriter prints them.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(&width).enumerate() {
            if i + 1 == n {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}   "));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn mode(m: EncapMode) -> String {
    format!("{m:?}")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn header(kind: ResourceKind, wide: bool) -> Vec<&'static str> {
    match (kind, wide) {
        (ResourceKind::IpPool, false) => vec!["NAME", "CIDR", "SELECTOR"],
        (ResourceKind::IpPool, true) => vec![
            "NAME",
            "CIDR",
            "NAT",
            "IPIPMODE",
            "VXLANMODE",
            "DISABLED",
            "DISABLEBGPEXPORT",
            "SELECTOR",
        ],
        (ResourceKind::BgpPeer, false) => vec!["NAME", "PEERIP", "NODE", "ASN"],
        (ResourceKind::BgpPeer, true) => {
            vec!["NAME", "PEERIP", "NODE", "ASN", "PEERSELECTOR", "KEEPALIVE"]
        }
        (ResourceKind::BgpConfiguration, _) => {
            vec!["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"]
        }
        (ResourceKind::TortieNode, _) => vec!["NAME", "IPV4ADDRESS", "ASN"],
        (ResourceKind::IpamBlock, _) => vec!["NAME", "CIDR", "AFFINITY"],
        (ResourceKind::BlockAffinity, _) => vec!["NAME", "NODE", "CIDR", "STATE"],
        _ => vec!["NAME"],
    }
}

fn row(obj: &TortieObject, wide: bool) -> Vec<String> {
    let name = obj.name().to_string();
    match obj {
        TortieObject::IpPool(p) if wide => vec![
            name,
            p.spec.cidr.to_string(),
            p.spec.nat_outgoing.to_string(),
            mode(p.spec.ipip_mode),
            mode(p.spec.vxlan_mode),
            p.spec.disabled.to_string(),
            p.spec.disable_bgp_export.to_string(),
            p.spec.node_selector.clone(),
        ],
        TortieObject::IpPool(p) => {
            vec![name, p.spec.cidr.to_string(), p.spec.node_selector.clone()]
        }
        TortieObject::BgpPeer(p) => {
            let node = match (&p.spec.node, &p.spec.node_selector) {
                (Some(n), _) => n.clone(),
                (None, Some(s)) => format!("({s})"),
                (None, None) => "(global)".to_string(),
            };
            let mut r = vec![name, opt(&p.spec.peer_ip), node, opt(&p.spec.as_number)];
            if wide {
                r.push(opt(&p.spec.peer_selector));
                r.push(opt(&p.spec.keepalive_time));
            }
            r
        }
        TortieObject::BgpConfiguration(c) => vec![
            name,
            opt(&c.spec.log_severity_screen),
            opt(&c.spec.node_to_node_mesh_enabled),
            opt(&c.spec.as_number),
        ],
        TortieObject::TortieNode(n) => {
            let bgp = n.spec.bgp.as_ref();
            vec![
                name,
                bgp.map(|b| opt(&b.ipv4_address)).unwrap_or_default(),
                bgp.map(|b| opt(&b.as_number)).unwrap_or_default(),
            ]
        }
        TortieObject::IpamBlock(b) => vec![name, b.spec.cidr.to_string(), opt(&b.spec.affinity)],
        TortieObject::BlockAffinity(a) => vec![
            name,
            a.spec.node.clone(),
            a.spec.cidr.to_string(),
            format!("{:?}", a.spec.state),
        ],
        _ => vec![name],
    }
}

/// Renders `objs` (all of `kind`) in `format`.
pub fn render(
    kind: ResourceKind,
    objs: &[TortieObject],
    format: Format,
) -> Result<String, CtlError> {
    let enc = |e: &dyn std::fmt::Display| CtlError::Usage(format!("output: {e}"));
    match format {
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let rows: Vec<Vec<String>> = objs.iter().map(|o| row(o, wide)).collect();
            Ok(columns(&header(kind, wide), &rows))
        }
        Format::Yaml => {
            let mut out = String::new();
            for (i, o) in objs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml::to_string(o).map_err(|e| enc(&e))?);
            }
            Ok(out)
        }
        Format::Json => {
            let text = match objs {
                [one] => serde_json::to_string_pretty(one),
                many => serde_json::to_string_pretty(&serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": many,
                })),
            }
            .map_err(|e| enc(&e))?;
            Ok(text + "\n")
        }
    }
}
