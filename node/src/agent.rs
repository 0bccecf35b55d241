//! The agent's driver: connects the datastore, registers the node, starts felix's route
//! reconciler, the BGP speaker, the status server and the health listener, and runs one
//! owner loop fed by one channel (datastore watch events of every kind, BGP route events,
//! a tick) that also answers the health listener's queries. Decisions live in
//! [`crate::plan`] and [`crate::health`]; this module only moves data and calls the
//! components.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnetwork::IpNetwork;
use kube::Resource;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tortie_bgp::speaker::{PeerConfig, RouteEvent, Speaker, SpeakerConfig, State};
use tortie_cni::Netns;
use tortie_crds::{
    BgpConfiguration, BgpPeer, BlockAffinity, IpPool, NodeBgpSpec, TortieNode, TortieNodeSpec,
    WorkloadEndpoint,
};
use tortie_datastore::{
    Datastore, EtcdDatastore, Event, Filter, Kind, KubeDatastore, ObjectKey, Store, WatchStream,
};
use tortie_felix::input::Input;

use crate::config::{Backend, Config, DatastoreConfig};
use crate::error::AgentError;
use crate::plan::{self, Cache};

/// One message for the owner loop.
#[derive(Debug)]
enum Msg {
    Node(Event<TortieNode>),
    Pool(Event<IpPool>),
    Affinity(Event<BlockAffinity>),
    BgpConfig(Event<BgpConfiguration>),
    Peer(Event<BgpPeer>),
    Endpoint(Event<WorkloadEndpoint>),
    Namespace(Event<tortie_crds::Namespace>),
    Policy(Event<tortie_crds::NetworkPolicy>),
    /// Kubernetes Nodes (Kubernetes datastore only): their labels for BGP selectors.
    KubeNode(Box<Event<tortie_crds::Node>>),
    Route(RouteEvent),
}

/// Number of datastore kinds watched on etcd (InSync waits for each one's first
/// listing); Kubernetes adds its Nodes.
const KINDS: usize = 8;

/// A spawned task aborted when dropped (tasks are owned, never detached).
struct Owned(JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the configured datastore: etcd, or the Kubernetes API through the
/// `KUBECONFIG` file or else the in-cluster service account.
pub async fn connect(cfg: &Config) -> Result<Datastore, AgentError> {
    match &cfg.datastore {
        DatastoreConfig::Etcd { endpoints, prefix } => {
            let ds = EtcdDatastore::connect(endpoints, prefix)
                .await
                .map_err(AgentError::ds(format!("connect etcd {endpoints:?}")))?;
            Ok(Datastore::Etcd(Box::new(ds)))
        }
        DatastoreConfig::Kubernetes { kubeconfig } => {
            let (what, ds) = match kubeconfig {
                Some(path) => (
                    format!("KUBECONFIG {}", path.display()),
                    KubeDatastore::from_kubeconfig(path).await,
                ),
                None => (
                    "in-cluster service account (KUBECONFIG unset)".to_string(),
                    KubeDatastore::in_cluster(),
                ),
            };
            let ds = ds.map_err(|e| AgentError::Kube(format!("{what}: {e}")))?;
            Ok(Datastore::Kube(ds))
        }
    }
}

/// Creates the default pool; one that exists already is left alone.
pub async fn ensure_default_pool(ds: &Datastore, cfg: &Config) -> Result<(), AgentError> {
    let Some(pool) = &cfg.default_pool else {
        return Ok(());
    };
    let store = ds.store::<IpPool>();
    if !store
        .list(&Filter::all())
        .await
        .map_err(AgentError::ds("list IPPools"))?
        .items
        .is_empty()
    {
        return Ok(());
    }
    match store.create(pool).await {
        Ok(_) | Err(tortie_datastore::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(AgentError::ds("create default IPPool")(e)),
    }
}

/// Creates or updates this node's TortieNode (address with mask, AS).
pub async fn register(ds: &Datastore, cfg: &Config, addr: IpNetwork) -> Result<(), AgentError> {
    let store = ds.store::<TortieNode>();
    let key = ObjectKey::cluster(&cfg.node_name);
    for _ in 0..10 {
        let existing = store
            .get(&key)
            .await
            .map_err(AgentError::ds("get TortieNode"))?;
        let res = match existing {
            Some(mut n) => {
                let bgp = n.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
                let want_as = cfg.as_number.map(tortie_crds::AsNumber);
                if bgp.ipv4_address == Some(addr) && bgp.as_number == want_as {
                    return Ok(());
                }
                bgp.ipv4_address = Some(addr);
                bgp.as_number = want_as;
                store.update(&n).await
            }
            None => {
                let spec = TortieNodeSpec {
                    bgp: Some(NodeBgpSpec {
                        ipv4_address: Some(addr),
                        as_number: cfg.as_number.map(tortie_crds::AsNumber),
                        ..NodeBgpSpec::default()
                    }),
                    ..TortieNodeSpec::default()
                };
                store.create(&TortieNode::new(&cfg.node_name, spec)).await
            }
        };
        match res {
            Ok(_) => return Ok(()),
            Err(tortie_datastore::Error::Conflict { .. })
            | Err(tortie_datastore::Error::AlreadyExists { .. }) => continue,
            Err(e) => {
                return Err(AgentError::ds(format!(
                    "write TortieNode {}",
                    cfg.node_name
                ))(e));
            }
        }
    }
    Err(AgentError::NodeWrite {
        node: cfg.node_name.clone(),
        reason: "too many write conflicts registering the node address".into(),
    })
}

/// Lists kind `K`, then watches it from the listing's revision; the listing comes first,
/// as a `Resync`.
async fn list_then_watch<K: Kind + Send + Sync + 'static>(
    store: Arc<dyn Store<K>>,
) -> tortie_datastore::Result<WatchStream<K>> {
    let l = store.list(&Filter::all()).await?;
    let rest = store.watch(&Filter::all(), &l.revision).await?;
    let first = Event::Resync {
        items: l.items,
        revision: l.revision,
    };
    Ok(futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .boxed())
}

/// Relays the events of the stream `open` gives to the owner loop forever, opening it
/// again a second after it fails or ends. `what` names the kind in the log.
fn relay<K, F, Fut>(
    what: String,
    open: F,
    tx: mpsc::Sender<Msg>,
    wrap: fn(Event<K>) -> Msg,
) -> Owned
where
    K: std::fmt::Debug + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = tortie_datastore::Result<WatchStream<K>>> + Send,
{
    Owned(tokio::spawn(async move {
        loop {
            match open().await {
                Ok(mut s) => {
                    while let Some(ev) = s.next().await {
                        match ev {
                            Ok(ev) => {
                                if let Event::Resync { items, .. } = &ev {
                                    tracing::info!("listed {} {what}", items.len());
                                } else {
                                    tracing::debug!("{what} event: {ev:?}");
                                }
                                if tx.send(wrap(ev)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!("watch {what}: {e}"),
                        }
                    }
                }
                Err(e) => tracing::warn!("list/watch {what}: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

/// Lists and then watches kind `K` forever, sending the listing as a `Resync`.
fn watch_kind<K: Kind + Send + Sync + 'static>(
    store: Arc<dyn Store<K>>,
    tx: mpsc::Sender<Msg>,
    wrap: fn(Event<K>) -> Msg,
) -> Owned {
    relay(
        K::kind(&()).into_owned(),
        move || list_then_watch(store.clone()),
        tx,
        wrap,
    )
}

/// Watches every node's WorkloadEndpoints with labels and ports from their Pods on
/// Kubernetes ([`crate::endpoints::watch_all_endpoints`]); starts over after a failure.
fn watch_endpoints(ds: Datastore, tx: mpsc::Sender<Msg>) -> Owned {
    relay(
        "WorkloadEndpoints".into(),
        move || {
            let ds = ds.clone();
            async move { crate::endpoints::watch_all_endpoints(&ds).await }
        },
        tx,
        Msg::Endpoint,
    )
}

fn key_of<K: Resource>(o: &K) -> String {
    let m = o.meta();
    match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name.clone().unwrap_or_default()),
        None => m.name.clone().unwrap_or_default(),
    }
}

/// One changed key: the object before (if any) and after (`None` = removed).
type Change<K> = (Option<K>, Option<K>);

/// Applies a watch event to one cache map; returns whether it was a full listing, and
/// the changes.
fn apply<K: Resource + Clone + PartialEq>(
    map: &mut BTreeMap<String, K>,
    ev: Event<K>,
) -> (bool, Vec<Change<K>>) {
    let mut out = Vec::new();
    match ev {
        Event::Added(o) | Event::Modified(o) => {
            let old = map.insert(key_of(&o), o.clone());
            if old.as_ref() != Some(&o) {
                out.push((old, Some(o)));
            }
            (false, out)
        }
        Event::Deleted(o) => {
            if let Some(old) = map.remove(&key_of(&o)) {
                out.push((Some(old), None));
            }
            (false, out)
        }
        Event::Resync { items, .. } => {
            let new: BTreeMap<String, K> = items.into_iter().map(|o| (key_of(&o), o)).collect();
            for (k, old) in std::mem::take(map) {
                if !new.contains_key(&k) {
                    out.push((Some(old), None));
                } else {
                    map.insert(k, old);
                }
            }
            for (k, o) in new {
                let old = map.insert(k, o.clone());
                if old.as_ref() != Some(&o) {
                    out.push((old, Some(o)));
                }
            }
            (true, out)
        }
    }
}

/// Writes `dir/name` atomically (temporary file + rename): the CNI plugin may read it at
/// any moment and must never see a half-written value.
fn write_state_file(dir: &std::path::Path, name: &str, value: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, value)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Runs the agent until `stop` resolves.
pub async fn run(
    cfg: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let ds = connect(&cfg).await?;
    let addr = crate::address::node_address(&cfg, Some(&ds)).await?;
    let router_id = match addr.ip() {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    ensure_default_pool(&ds, &cfg).await?;
    register(&ds, &cfg, addr).await?;
    tracing::info!(node = %cfg.node_name, %addr, "registered");

    write_state_file(&cfg.state_dir, "nodename", &cfg.node_name).map_err(|source| {
        AgentError::StateFile {
            path: cfg.state_dir.join("nodename").display().to_string(),
            source,
        }
    })?;
    let mut route_cfg =
        tortie_felix::route::ReconcilerConfig::new(&cfg.node_name, Netns::current());
    // The pod MTU for the CNI plugin, rewritten whenever felix's calculation changes it.
    route_cfg.mtu_file = Some(cfg.state_dir.join("mtu"));
    let felix = tortie_felix::route::spawn(route_cfg)
        .await
        .map_err(|source| AgentError::Felix { source })?;
    let felix_tx = felix.input_tx.clone();
    let policy =
        crate::policy::spawn(&cfg.node_name, cfg.ipv6_support).map_err(AgentError::Policy)?;
    let policy_tx = policy.input_tx.clone();

    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let _watches = [
        watch_kind(ds.store::<TortieNode>(), tx.clone(), Msg::Node),
        watch_kind(ds.store::<IpPool>(), tx.clone(), Msg::Pool),
        watch_kind(ds.store::<BlockAffinity>(), tx.clone(), Msg::Affinity),
        watch_kind(ds.store::<BgpConfiguration>(), tx.clone(), Msg::BgpConfig),
        watch_kind(ds.store::<BgpPeer>(), tx.clone(), Msg::Peer),
        watch_endpoints(ds.clone(), tx.clone()),
        watch_kind(
            ds.store::<tortie_crds::Namespace>(),
            tx.clone(),
            Msg::Namespace,
        ),
        watch_kind(
            ds.store::<tortie_crds::NetworkPolicy>(),
            tx.clone(),
            Msg::Policy,
        ),
    ];
    let kinds = match &ds {
        Datastore::Kube(_) => KINDS + 1,
        Datastore::Etcd(_) => KINDS,
    };
    let _node_watch = matches!(ds, Datastore::Kube(_)).then(|| {
        watch_kind(ds.store::<tortie_crds::Node>(), tx.clone(), |ev| {
            Msg::KubeNode(Box::new(ev))
        })
    });

    // The speaker's AS and port come from the stored BGP configuration at start.
    let speaker = if cfg.backend == Backend::Bird {
        let mut boot = Cache::default();
        let cfgs = ds
            .store::<BgpConfiguration>()
            .list(&Filter::all())
            .await
            .map_err(AgentError::ds("list BGPConfigurations"))?;
        for c in cfgs.items {
            boot.bgp_configs.insert(key_of(&c), c);
        }
        let bc = plan::bgp_config(&boot, &cfg.node_name);
        let asn = cfg
            .as_number
            .unwrap_or_else(|| bc.as_number.map(|a| a.get()).unwrap_or(64512));
        let mut sc = SpeakerConfig::new(asn, router_id);
        sc.listen = Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            bc.listen_port.unwrap_or(179),
        ));
        let s = Speaker::start(sc).await.map_err(AgentError::bgp("start"))?;
        let mut sub = s
            .subscribe_routes()
            .await
            .map_err(AgentError::bgp("subscribe"))?;
        let rtx = tx.clone();
        let relay = Owned(tokio::spawn(async move {
            while let Some(ev) = sub.recv().await {
                if rtx.send(Msg::Route(ev)).await.is_err() {
                    return;
                }
            }
        }));
        Some((s, relay))
    } else {
        None
    };
    drop(tx);

    let _status = {
        let addr = tortie_ctl::status::StatusAddr::parse(&cfg.status_addr).map_err(|source| {
            AgentError::Status {
                addr: cfg.status_addr.clone(),
                source,
            }
        })?;
        let listener = tortie_ctl::status::StatusListener::bind(&addr)
            .await
            .map_err(|source| AgentError::Status {
                addr: cfg.status_addr.clone(),
                source,
            })?;
        let sp = speaker.as_ref().map(|(s, _)| s.clone());
        Owned(tokio::spawn(async move {
            let r = tortie_ctl::status::serve(listener, move || {
                let sp = sp.clone();
                async move {
                    match sp {
                        Some(s) => s
                            .peer_states()
                            .await
                            .map(|v| {
                                v.into_iter()
                                    .map(tortie_ctl::status::StatusPeer::from_status)
                                    .collect()
                            })
                            .map_err(|e| e.to_string()),
                        None => Ok(Vec::new()),
                    }
                }
            })
            .await;
            if let Err(e) = r {
                tracing::error!("status server: {e}");
            }
        }))
    };

    let (health_tx, mut health_rx) = mpsc::channel::<crate::health_server::AgentQuery>(16);
    let _health = match cfg.health_addr {
        None => None,
        Some(addr) => {
            let listener =
                crate::health_server::bind(addr)
                    .await
                    .map_err(|source| AgentError::Health {
                        addr: addr.to_string(),
                        source,
                    })?;
            tracing::info!(%addr, "health: /liveness /readiness /metrics");
            let sources = crate::health_server::Sources {
                agent_tx: health_tx,
                speaker: speaker.as_ref().map(|(s, _)| s.clone()),
            };
            Some(Owned(tokio::spawn(crate::health_server::serve(
                listener,
                move || {
                    let s = sources.clone();
                    async move { s.snapshot().await }
                },
            ))))
        }
    };

    let mut st = LoopState {
        me: cfg.node_name.clone(),
        cache: Cache::default(),
        namespaces: BTreeMap::new(),
        policies: BTreeMap::new(),
        kube_nodes: BTreeMap::new(),
        kinds,
        listed: BTreeSet::new(),
        peers: BTreeMap::new(),
        exports: BTreeSet::new(),
        base_peer: plan::base_peer(Duration::from_secs(2)),
        in_sync_sent: false,
        all_up_since: None,
        deadline: Instant::now() + Duration::from_secs(cfg.in_sync_bound_secs),
        tunnels: crate::tunnel_driver::Trigger::default(),
    };
    let ipam = tortie_ipam::Ipam::new(tortie_ipam::Stores::from_datastore(&ds));
    let speaker_handle = speaker.as_ref().map(|(s, _)| s.clone());
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let mut inputs = st.handle(msg);
                while let Ok(more) = rx.try_recv() {
                    inputs.extend(st.handle(more));
                }
                for i in inputs {
                    if policy_tx.send(i.clone()).await.is_err() {
                        tracing::error!("felix policy stopped");
                    }
                    if felix_tx.send(i).await.is_err() {
                        tracing::error!("felix stopped");
                    }
                }
                if let Some(s) = &speaker_handle {
                    st.reconcile_bgp(s).await;
                }
                st.reconcile_tunnels(&ipam).await;
            }
            Some(reply) = health_rx.recv() => {
                let _ = reply.send(crate::health::AgentView {
                    felix: alive(&felix.status),
                    policy: alive(&policy.status),
                });
            }
            _ = tick.tick() => {
                st.reconcile_tunnels(&ipam).await;
                if st.check_in_sync(speaker_handle.as_ref()).await {
                    let _ = policy_tx.send(Input::InSync).await;
                    if felix_tx.send(Input::InSync).await.is_err() {
                        tracing::error!("felix stopped");
                    }
                }
            }
        }
    }
    // A clean stop: peers keep our routes for the GR time, felix keeps the kernel as is.
    drop(felix);
    Ok(())
}

/// The last published status of a component, or `None` when it has stopped (its
/// sending side is gone).
fn alive<T: Clone>(rx: &watch::Receiver<T>) -> Option<T> {
    rx.has_changed().ok()?;
    Some(rx.borrow().clone())
}

struct LoopState {
    me: String,
    cache: Cache,
    namespaces: BTreeMap<String, tortie_crds::Namespace>,
    policies: BTreeMap<String, tortie_crds::NetworkPolicy>,
    kube_nodes: BTreeMap<String, tortie_crds::Node>,
    /// Kinds to be listed before the plan is trusted.
    kinds: usize,
    listed: BTreeSet<&'static str>,
    peers: BTreeMap<IpAddr, PeerConfig>,
    exports: BTreeSet<IpNetwork>,
    base_peer: PeerConfig,
    in_sync_sent: bool,
    all_up_since: Option<Instant>,
    deadline: Instant,
    /// When this node's tunnel addresses are reconciled next.
    tunnels: crate::tunnel_driver::Trigger,
}

impl LoopState {
    /// Updates the cache and returns felix's inputs for the change.
    fn handle(&mut self, msg: Msg) -> Vec<Input> {
        let mut out = Vec::new();
        match msg {
            Msg::Node(ev) => {
                let (listed, ch) = apply(&mut self.cache.nodes, ev);
                if listed {
                    self.listed.insert("nodes");
                }
                for (old, new) in ch {
                    let mine =
                        |n: &Option<TortieNode>| n.as_ref().is_some_and(|n| key_of(n) == self.me);
                    if mine(&old) || mine(&new) {
                        self.tunnels.touch();
                    }
                    match (old, new) {
                        (_, Some(n)) => out.push(plan::node_input(&key_of(&n), &n)),
                        (Some(o), None) => out.push(Input::NodeRemove { name: key_of(&o) }),
                        (None, None) => {}
                    }
                }
            }
            Msg::Pool(ev) => {
                let (listed, ch) = apply(&mut self.cache.pools, ev);
                if listed {
                    self.listed.insert("pools");
                }
                if !ch.is_empty() {
                    self.tunnels.touch();
                }
                for (old, new) in ch {
                    if let Some(o) = &old
                        && new.as_ref().is_none_or(|n| n.spec.cidr != o.spec.cidr)
                    {
                        out.push(Input::PoolRemove { cidr: o.spec.cidr });
                    }
                    if let Some(n) = new {
                        out.push(plan::pool_input(&n));
                    }
                }
            }
            Msg::Affinity(ev) => {
                let (listed, ch) = apply(&mut self.cache.affinities, ev);
                if listed {
                    self.listed.insert("affinities");
                }
                for (old, new) in ch {
                    match (old, new) {
                        (_, Some(n)) => out.push(plan::affinity_input(&n)),
                        (Some(o), None) => out.push(Input::AffinityRemove {
                            cidr: o.spec.cidr,
                            node: o.spec.node,
                        }),
                        (None, None) => {}
                    }
                }
            }
            Msg::BgpConfig(ev) => {
                if apply(&mut self.cache.bgp_configs, ev).0 {
                    self.listed.insert("bgpconfigs");
                }
            }
            Msg::Peer(ev) => {
                if apply(&mut self.cache.peers, ev).0 {
                    self.listed.insert("peers");
                }
            }
            Msg::Endpoint(ev) => {
                let (listed, ch) = apply(&mut self.cache.endpoints, ev);
                if listed {
                    self.listed.insert("endpoints");
                }
                for (old, new) in ch {
                    if let Some(o) = &old
                        && new
                            .as_ref()
                            .is_none_or(|n| plan::endpoint_id(n) != plan::endpoint_id(o))
                    {
                        out.push(Input::EndpointRemove(plan::endpoint_id(o)));
                    }
                    if let Some(n) = new {
                        out.push(plan::endpoint_input(&n));
                    }
                }
            }
            Msg::Namespace(ev) => {
                let (listed, ch) = apply(&mut self.namespaces, ev);
                if listed {
                    self.listed.insert("namespaces");
                }
                for (old, new) in ch {
                    match (old, new) {
                        (_, Some(n)) => {
                            out.push(Input::NamespaceUpsert(tortie_felix::input::Namespace {
                                name: key_of(&n),
                                labels: n.metadata.labels.clone().unwrap_or_default(),
                            }))
                        }
                        (Some(o), None) => out.push(Input::NamespaceRemove { name: key_of(&o) }),
                        (None, None) => {}
                    }
                }
            }
            Msg::Policy(ev) => {
                let (listed, ch) = apply(&mut self.policies, ev);
                if listed {
                    self.listed.insert("policies");
                }
                for (old, new) in ch {
                    match (old, new) {
                        (_, Some(p)) => out.push(Input::PolicyUpsert(Box::new(p))),
                        (Some(o), None) => out.push(Input::PolicyRemove {
                            namespace: o.metadata.namespace.clone().unwrap_or_default(),
                            name: o.metadata.name.clone().unwrap_or_default(),
                        }),
                        (None, None) => {}
                    }
                }
            }
            Msg::KubeNode(ev) => {
                let (listed, ch) = apply(&mut self.kube_nodes, *ev);
                if listed {
                    self.listed.insert("kubenodes");
                }
                for (old, new) in ch {
                    match (old, new) {
                        (_, Some(n)) => {
                            self.cache
                                .kube_node_labels
                                .insert(key_of(&n), n.metadata.labels.unwrap_or_default());
                        }
                        (Some(o), None) => {
                            self.cache.kube_node_labels.remove(&key_of(&o));
                        }
                        (None, None) => {}
                    }
                }
            }
            Msg::Route(RouteEvent::Changed(c)) => {
                let by_ip = plan::nodes_by_ip(&self.cache);
                out.extend(plan::route_input(&c, &by_ip));
            }
            Msg::Route(RouteEvent::Synced) => {}
        }
        out
    }

    /// Brings the speaker's peers and originated prefixes to the plan.
    async fn reconcile_bgp(&mut self, s: &Speaker) {
        if self.listed.len() < self.kinds {
            return;
        }
        let (want, problems) = plan::desired_peers(&self.cache, &self.me, &self.base_peer);
        for p in problems {
            tracing::warn!("{p}");
        }
        let gone: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        for ip in gone {
            if let Err(e) = s.remove_peer(ip).await {
                tracing::warn!("remove peer {ip}: {e}");
            }
            self.peers.remove(&ip);
        }
        for (ip, p) in want {
            let r = match self.peers.get(&ip) {
                None => s.add_peer(p.clone()).await,
                Some(old) if *old != p => s.update_peer(p.clone()).await,
                Some(_) => continue,
            };
            match r {
                Ok(()) => {
                    self.peers.insert(ip, p);
                }
                Err(e) => tracing::warn!("peer {ip}: {e}"),
            }
        }
        let want = plan::desired_exports(&self.cache, &self.me);
        for prefix in self.exports.difference(&want).copied().collect::<Vec<_>>() {
            if let Err(e) = s.withdraw(prefix).await {
                tracing::warn!("withdraw {prefix}: {e}");
            }
            self.exports.remove(&prefix);
        }
        for prefix in want.difference(&self.exports).copied().collect::<Vec<_>>() {
            match s.originate(prefix, None).await {
                Ok(()) => {
                    self.exports.insert(prefix);
                }
                Err(e) => tracing::warn!("originate {prefix}: {e}"),
            }
        }
    }

    /// Brings this node's IPIP/VXLAN tunnel addresses to the pools once pools and nodes
    /// are listed and a [`crate::tunnel_driver::Trigger`] says so.
    async fn reconcile_tunnels(&mut self, ipam: &tortie_ipam::Ipam) {
        if self.listed.contains("pools") && self.listed.contains("nodes") {
            let me = self.cache.nodes.get(&self.me);
            self.tunnels
                .run(ipam, &self.me, me, self.cache.pools.values())
                .await;
        }
    }

    /// True exactly once: when every kind was listed and every peer is Established
    /// (plus a second for their tables to arrive), or the bound ran out.
    async fn check_in_sync(&mut self, s: Option<&Speaker>) -> bool {
        if self.in_sync_sent || self.listed.len() < self.kinds {
            return false;
        }
        let all_up = match s {
            None => true,
            Some(s) => match s.peer_states().await {
                Ok(v) => v.iter().all(|p| p.state == State::Established),
                Err(_) => false,
            },
        };
        let now = Instant::now();
        if all_up {
            let since = *self.all_up_since.get_or_insert(now);
            if now.duration_since(since) < Duration::from_secs(1) && now < self.deadline {
                return false;
            }
        } else {
            self.all_up_since = None;
            if now < self.deadline {
                return false;
            }
        }
        self.in_sync_sent = true;
        tracing::info!("in sync");
        true
    }
}
