//! The thin driver of [`crate::tunnel`]: reads what the node's IPAM handles hold, carries
//! out the decision for IPIP and VXLAN (release, claim, assign through
//! [`tortie_ipam::Ipam`]) and writes `spec.bgp.ipv4IPIPTunnelAddr`,
//! `spec.ipv4VXLANTunnelAddr` and `spec.vxlanTunnelMACAddr` into the node's TortieNode
//! with compare-and-swap. Run by the agent's owner loop whenever the pools or its own
//! node change (and again after a failure).
//!
//! Order of writes, so a crash at any point leaks nothing and a re-run repairs: a stale
//! address is released before a new one is assigned; a new address is assigned before
//! the node records it (the next run adopts a held, unrecorded address); when the tunnel
//! goes away the node's field is cleared first and the address released after, so no
//! other node receives an address this node still advertises.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use tortie_crds::{IpPool, NodeBgpSpec, TortieNode};
use tortie_datastore::ObjectKey;
use tortie_ipam::{Attrs, Ipam, IpamError, TunnelKind};

use crate::error::AgentError;
use crate::tunnel::{self, Current, Plan, Want};

/// When the agent's owner loop runs [`reconcile`]: at start, after the pools or its own
/// node changed ([`Trigger::touch`]), and two seconds after a failure.
#[derive(Debug)]
pub struct Trigger {
    dirty: bool,
    retry_at: Option<Instant>,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger {
            dirty: true,
            retry_at: None,
        }
    }
}

impl Trigger {
    /// Something the decision reads changed.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Runs [`reconcile`] when due (and `node` is known); logs a failure and schedules
    /// the retry.
    pub async fn run<'a>(
        &mut self,
        ipam: &Ipam,
        me: &str,
        node: Option<&TortieNode>,
        pools: impl Iterator<Item = &'a IpPool>,
    ) {
        let due = self.retry_at.is_some_and(|t| Instant::now() >= t);
        let Some(node) = node.filter(|_| self.dirty || due) else {
            return;
        };
        self.dirty = false;
        self.retry_at = None;
        let pools: Vec<IpPool> = pools.cloned().collect();
        if let Err(e) = reconcile(ipam, me, node, &pools).await {
            tracing::warn!("tunnel addresses: {e} (retrying in 2 s)");
            self.retry_at = Some(Instant::now() + Duration::from_secs(2));
        }
    }
}

/// The tunnel facts recorded in a TortieNode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub ipip: Option<IpAddr>,
    pub vxlan: Option<IpAddr>,
    pub vxlan_mac: Option<String>,
}

impl Recorded {
    /// What `n` records.
    pub fn of(n: &TortieNode) -> Recorded {
        Recorded {
            ipip: n.spec.bgp.as_ref().and_then(|b| b.ipv4_ipip_tunnel_addr),
            vxlan: n.spec.ipv4_vxlan_tunnel_addr,
            vxlan_mac: n.spec.vxlan_tunnel_mac_addr.clone(),
        }
    }

    fn get(&self, kind: TunnelKind) -> Option<IpAddr> {
        match kind {
            TunnelKind::Ipip => self.ipip,
            TunnelKind::Vxlan => self.vxlan,
        }
    }

    fn set(&mut self, kind: TunnelKind, v: Option<IpAddr>) {
        match kind {
            TunnelKind::Ipip => self.ipip = v,
            TunnelKind::Vxlan => self.vxlan = v,
        }
    }

    fn write_into(&self, n: &mut TortieNode) {
        if self.ipip.is_some() || n.spec.bgp.is_some() {
            n.spec
                .bgp
                .get_or_insert_with(NodeBgpSpec::default)
                .ipv4_ipip_tunnel_addr = self.ipip;
        }
        n.spec.ipv4_vxlan_tunnel_addr = self.vxlan;
        n.spec.vxlan_tunnel_mac_addr = self.vxlan_mac.clone();
    }
}

fn tunnel_err(node: &str, kind: TunnelKind) -> impl FnOnce(IpamError) -> AgentError {
    let node = node.to_string();
    move |source| AgentError::TunnelAddr { node, kind, source }
}

/// Six random bytes from the standard library's OS-seeded hasher keys.
fn random_bytes(salt: &str) -> [u8; 6] {
    let v = std::collections::hash_map::RandomState::new().hash_one(salt);
    let b = v.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// Brings `node`'s tunnel addresses (and VXLAN MAC) to what `pools` call for; returns
/// what the node records afterwards. `node_obj` is the agent's cached copy of its
/// TortieNode (its labels select pools; its fields are the recorded addresses).
pub async fn reconcile(
    ipam: &Ipam,
    node: &str,
    node_obj: &TortieNode,
    pools: &[IpPool],
) -> Result<Recorded, AgentError> {
    let labels = node_obj.labels_map();
    let before = Recorded::of(node_obj);
    let mut after = before.clone();
    // Field clears are written before their addresses are released.
    let mut release_later: Vec<(TunnelKind, Plan)> = Vec::new();
    for kind in [TunnelKind::Ipip, TunnelKind::Vxlan] {
        let handle = kind.handle(node);
        let held = ipam
            .addresses_of(&handle)
            .await
            .map_err(tunnel_err(node, kind))?;
        let cur = Current {
            recorded: before.get(kind),
            held,
        };
        let plan = tunnel::decide(kind, pools, &labels, &cur).map_err(tunnel_err(node, kind))?;
        if plan.is_noop(cur.recorded) {
            continue;
        }
        tracing::info!(?kind, ?cur, ?plan, "tunnel address");
        match plan.want {
            Want::None => {
                after.set(kind, None);
                release_later.push((kind, plan));
            }
            Want::Keep(a) => {
                release_extra(ipam, node, kind, &plan.release).await?;
                after.set(kind, Some(a));
            }
            Want::Reclaim(a) => {
                release_all(ipam, node, kind, &plan.release).await?;
                let attrs = Attrs {
                    kind: Some(kind.attr().into()),
                    ..Attrs::default()
                };
                let got = match ipam.assign_ip(a, &handle, &attrs, node).await {
                    Ok(_) => a,
                    Err(e) => {
                        tracing::info!(?kind, %a, "recorded tunnel address not reclaimable ({e}); assigning a new one");
                        ipam.assign_tunnel_addr(node, kind)
                            .await
                            .map_err(tunnel_err(node, kind))?
                    }
                };
                after.set(kind, Some(got));
            }
            Want::New => {
                release_all(ipam, node, kind, &plan.release).await?;
                let got = ipam
                    .assign_tunnel_addr(node, kind)
                    .await
                    .map_err(tunnel_err(node, kind))?;
                after.set(kind, Some(got));
            }
        }
    }
    after.vxlan_mac = tunnel::vxlan_mac(
        before.vxlan_mac.as_deref(),
        after.vxlan.is_some(),
        random_bytes(node),
    );
    if after != before {
        write_node(ipam, node, &before, &after).await?;
        tracing::info!(?after, "TortieNode {node}: tunnel addresses recorded");
    }
    for (kind, plan) in release_later {
        release_all(ipam, node, kind, &plan.release).await?;
    }
    Ok(after)
}

/// Releases the whole handle (every address it holds, and the handle object).
async fn release_all(
    ipam: &Ipam,
    node: &str,
    kind: TunnelKind,
    held: &[IpAddr],
) -> Result<(), AgentError> {
    if held.is_empty() {
        return Ok(());
    }
    let freed = ipam
        .release_by_handle(&kind.handle(node))
        .await
        .map_err(tunnel_err(node, kind))?;
    tracing::info!(?kind, ?freed, "released tunnel address(es)");
    Ok(())
}

/// Releases single addresses of the handle, keeping the rest.
async fn release_extra(
    ipam: &Ipam,
    node: &str,
    kind: TunnelKind,
    extra: &[IpAddr],
) -> Result<(), AgentError> {
    if extra.is_empty() {
        return Ok(());
    }
    let ips: Vec<(IpAddr, Option<u64>)> = extra.iter().map(|ip| (*ip, None)).collect();
    ipam.release_ips(&ips)
        .await
        .map_err(tunnel_err(node, kind))?;
    tracing::info!(?kind, ?extra, "released extra tunnel address(es)");
    Ok(())
}

/// Writes the tunnel fields with compare-and-swap, re-reading on a conflict (other
/// fields of the node are kept as stored).
async fn write_node(
    ipam: &Ipam,
    node: &str,
    before: &Recorded,
    after: &Recorded,
) -> Result<(), AgentError> {
    let store = &ipam.stores().nodes;
    let key = ObjectKey::cluster(node);
    for _ in 0..20 {
        let Some(mut n) = store
            .get(&key)
            .await
            .map_err(AgentError::ds(format!("get TortieNode {node}")))?
        else {
            return Err(AgentError::NodeWrite {
                node: node.into(),
                reason: "gone while recording tunnel addresses".into(),
            });
        };
        let stored = Recorded::of(&n);
        if stored == *after {
            return Ok(());
        }
        if stored != *before {
            tracing::debug!(?stored, ?before, "TortieNode {node} changed under us");
        }
        after.write_into(&mut n);
        match store.update(&n).await {
            Ok(_) => return Ok(()),
            Err(tortie_datastore::Error::Conflict { .. }) => continue,
            Err(e) => {
                return Err(AgentError::ds(format!(
                    "write tunnel addresses into TortieNode {node}"
                ))(e));
            }
        }
    }
    Err(AgentError::NodeWrite {
        node: node.into(),
        reason: "too many write conflicts recording tunnel addresses".into(),
    })
}
