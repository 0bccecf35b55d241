//! Kinds `tortiectl` reads and writes, and the thin datastore calls per kind.
//!
//! Owns [`ResourceKind`] (names and aliases accepted on the command line, as calicoctl's)
//! and the mapping from a kind to its typed `Store<K>`: get, list, create, update (CAS on
//! the object's `resourceVersion`), delete. Everything above works on
//! [`TortieObject`] values.

use tortie_crds::{
    BgpConfiguration, BgpPeer, BlockAffinity, IpPool, IpamBlock, IpamConfig, IpamHandle,
    TortieNode, TortieObject,
};
use tortie_datastore::{Datastore, Filter, ObjectKey};

use crate::CtlError;

/// A cluster-scoped kind `tortiectl` manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// IPPool.
    IpPool,
    /// BGPConfiguration.
    BgpConfiguration,
    /// BGPPeer.
    BgpPeer,
    /// TortieNode.
    TortieNode,
    /// IPAMBlock.
    IpamBlock,
    /// BlockAffinity.
    BlockAffinity,
    /// IPAMHandle.
    IpamHandle,
    /// IPAMConfig.
    IpamConfig,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::IpPool,
        ResourceKind::BgpConfiguration,
        ResourceKind::BgpPeer,
        ResourceKind::TortieNode,
        ResourceKind::IpamBlock,
        ResourceKind::BlockAffinity,
        ResourceKind::IpamHandle,
        ResourceKind::IpamConfig,
    ];

    /// The kind's name (`IPPool`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::IpPool => "IPPool",
            ResourceKind::BgpConfiguration => "BGPConfiguration",
            ResourceKind::BgpPeer => "BGPPeer",
            ResourceKind::TortieNode => "TortieNode",
            ResourceKind::IpamBlock => "IPAMBlock",
            ResourceKind::BlockAffinity => "BlockAffinity",
            ResourceKind::IpamHandle => "IPAMHandle",
            ResourceKind::IpamConfig => "IPAMConfig",
        }
    }

    /// Parses a kind as typed on the command line: case-insensitive, singular or plural,
    /// with calicoctl's short forms (`ippool`, `ippools`, `bgpconfig`, `bgppeer`, `node`).
    pub fn parse(text: &str) -> Result<ResourceKind, CtlError> {
        let t = text.to_ascii_lowercase();
        let t = t.as_str();
        let k = match t {
            "ippool" | "ippools" | "pool" | "pools" => ResourceKind::IpPool,
            "bgpconfiguration" | "bgpconfigurations" | "bgpconfig" | "bgpconfigs" => {
                ResourceKind::BgpConfiguration
            }
            "bgppeer" | "bgppeers" | "peer" | "peers" => ResourceKind::BgpPeer,
            "tortienode" | "tortienodes" | "node" | "nodes" => ResourceKind::TortieNode,
            "ipamblock" | "ipamblocks" | "block" | "blocks" => ResourceKind::IpamBlock,
            "blockaffinity" | "blockaffinities" | "affinity" | "affinities" => {
                ResourceKind::BlockAffinity
            }
            "ipamhandle" | "ipamhandles" | "handle" | "handles" => ResourceKind::IpamHandle,
            "ipamconfig" | "ipamconfigs" | "ipamconfiguration" => ResourceKind::IpamConfig,
            _ => {
                return Err(CtlError::Usage(format!(
                    "KIND: unknown resource kind {text:?} (one of {})",
                    ResourceKind::ALL.map(|k| k.name()).join(", ")
                )));
            }
        };
        Ok(k)
    }

    /// The kind of an object read from a manifest; `None` for kinds `tortiectl` does not
    /// write (namespaced WorkloadEndpoints belong to the CNI plugin).
    pub fn of(obj: &TortieObject) -> Option<ResourceKind> {
        Some(match obj {
            TortieObject::IpPool(_) => ResourceKind::IpPool,
            TortieObject::BgpConfiguration(_) => ResourceKind::BgpConfiguration,
            TortieObject::BgpPeer(_) => ResourceKind::BgpPeer,
            TortieObject::TortieNode(_) => ResourceKind::TortieNode,
            TortieObject::IpamBlock(_) => ResourceKind::IpamBlock,
            TortieObject::BlockAffinity(_) => ResourceKind::BlockAffinity,
            TortieObject::IpamHandle(_) => ResourceKind::IpamHandle,
            TortieObject::IpamConfig(_) => ResourceKind::IpamConfig,
            TortieObject::WorkloadEndpoint(_) => return None,
        })
    }
}

/// Runs `$body` with `$ty` bound to the Rust type and `$var` to the `TortieObject`
/// variant of `$kind`.
macro_rules! with_kind {
    ($kind:expr, |$ty:ident, $var:ident| $body:expr) => {
        match $kind {
            ResourceKind::IpPool => {
                type $ty = IpPool;
                let $var = TortieObject::IpPool;
                $body
            }
            ResourceKind::BgpConfiguration => {
                type $ty = BgpConfiguration;
                let $var = TortieObject::BgpConfiguration;
                $body
            }
            ResourceKind::BgpPeer => {
                type $ty = BgpPeer;
                let $var = TortieObject::BgpPeer;
                $body
            }
            ResourceKind::TortieNode => {
                type $ty = TortieNode;
                let $var = TortieObject::TortieNode;
                $body
            }
            ResourceKind::IpamBlock => {
                type $ty = IpamBlock;
                let $var = TortieObject::IpamBlock;
                $body
            }
            ResourceKind::BlockAffinity => {
                type $ty = BlockAffinity;
                let $var = TortieObject::BlockAffinity;
                $body
            }
            ResourceKind::IpamHandle => {
                type $ty = IpamHandle;
                let $var = TortieObject::IpamHandle;
                $body
            }
            ResourceKind::IpamConfig => {
                type $ty = IpamConfig;
                let $var = TortieObject::IpamConfig;
                $body
            }
        }
    };
}

/// Runs `$body` with `$o` bound to the typed object inside `$obj` and `$var` to its
/// variant constructor.
macro_rules! with_object {
    ($obj:expr, |$o:ident, $var:ident| $body:expr, $other:expr) => {
        match $obj {
            TortieObject::IpPool($o) => {
                let $var = TortieObject::IpPool;
                $body
            }
            TortieObject::BgpConfiguration($o) => {
                let $var = TortieObject::BgpConfiguration;
                $body
            }
            TortieObject::BgpPeer($o) => {
                let $var = TortieObject::BgpPeer;
                $body
            }
            TortieObject::TortieNode($o) => {
                let $var = TortieObject::TortieNode;
                $body
            }
            TortieObject::IpamBlock($o) => {
                let $var = TortieObject::IpamBlock;
                $body
            }
            TortieObject::BlockAffinity($o) => {
                let $var = TortieObject::BlockAffinity;
                $body
            }
            TortieObject::IpamHandle($o) => {
                let $var = TortieObject::IpamHandle;
                $body
            }
            TortieObject::IpamConfig($o) => {
                let $var = TortieObject::IpamConfig;
                $body
            }
            TortieObject::WorkloadEndpoint(_) => $other,
        }
    };
}

fn unsupported(obj: &TortieObject) -> CtlError {
    CtlError::Usage(format!(
        "kind: {} {} is namespaced and written by the CNI plugin, not by tortiectl",
        obj.kind(),
        obj.name()
    ))
}

/// The object `kind`/`name`, or `None`.
pub async fn get(
    ds: &Datastore,
    kind: ResourceKind,
    name: &str,
) -> Result<Option<TortieObject>, CtlError> {
    with_kind!(kind, |T, var| {
        let got = ds.store::<T>().get(&ObjectKey::cluster(name)).await?;
        Ok(got.map(var))
    })
}

/// Every object of `kind`, in name order.
pub async fn list(ds: &Datastore, kind: ResourceKind) -> Result<Vec<TortieObject>, CtlError> {
    with_kind!(kind, |T, var| {
        let l = ds.store::<T>().list(&Filter::all()).await?;
        let mut items: Vec<TortieObject> = l.items.into_iter().map(var).collect();
        items.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(items)
    })
}

/// Creates `obj`; `AlreadyExists` when taken.
pub async fn create(ds: &Datastore, obj: &TortieObject) -> Result<TortieObject, CtlError> {
    with_object!(
        obj,
        |o, var| Ok(var(ds.store().create(o).await?)),
        Err(unsupported(obj))
    )
}

/// Replaces `obj` if its stored version still equals `metadata.resourceVersion`.
pub async fn update(ds: &Datastore, obj: &TortieObject) -> Result<TortieObject, CtlError> {
    with_object!(
        obj,
        |o, var| Ok(var(ds.store().update(o).await?)),
        Err(unsupported(obj))
    )
}

/// Deletes `kind`/`name`.
pub async fn delete(ds: &Datastore, kind: ResourceKind, name: &str) -> Result<(), CtlError> {
    with_kind!(kind, |T, _var| {
        ds.store::<T>()
            .delete(&ObjectKey::cluster(name), None)
            .await?;
        Ok(())
    })
}

/// `metadata.resourceVersion` of `obj`.
pub fn version_of(obj: &TortieObject) -> Option<String> {
    with_object!(obj, |o, _var| o.metadata.resource_version.clone(), None)
}

/// `obj` carrying `version` as its `metadata.resourceVersion` (for a CAS update).
pub fn with_version(obj: TortieObject, version: Option<String>) -> TortieObject {
    let mut obj = obj;
    with_object!(
        &mut obj,
        |o, _var| o.metadata.resource_version = version,
        ()
    );
    obj
}

/// `obj` with the server-owned metadata cleared (for output of `get -o yaml|json` as a
/// manifest that can be applied again keeps name and labels only).
pub fn strip_server_fields(obj: TortieObject) -> TortieObject {
    let mut obj = obj;
    with_object!(
        &mut obj,
        |o, _var| {
            o.metadata.managed_fields = None;
        },
        ()
    );
    obj
}
