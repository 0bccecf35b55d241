//! The route reconciler: the one owner of the route dataplane in a namespace. It feeds
//! inputs to the pure [`RouteCalc`], keeps desired vs kernel routes in a
//! [`DeltaTracker`], and writes only the difference with rtnetlink (replace semantics,
//! tortie's route protocol), pipelined through [`batch`]: a pass sends its requests many
//! per `sendmsg` and marks a route programmed only when its own ack says so, so one
//! refused route is reported alone while the rest land. The kernel is read before
//! anything is written; additions
//! and repairs happen at once, deletions only after [`Input::InSync`] and never for a
//! route of a `cali*` interface younger than the grace period. A full dump-and-diff runs
//! on a timer and after any error; route, link and address events keep the view fresh
//! in between. Routes of other protocols are never touched.

use super::batch::{self, RouteOp, RouteRequest, RouteSocket};
use super::calc::RouteCalc;
use super::delta::DeltaTracker;
use super::devices;
use super::error::RouteError;
use super::kernel::{self, LinkInfo};
use super::model::{Devices, IPIP_IFACE, RouteTarget, VXLAN_IFACE, Vtep};
use super::mtu;
use crate::input::Input;
use futures::StreamExt;
use ipnetwork::{IpNetwork, Ipv4Network};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tortie_cni::{Netns, ROUTE_PROTOCOL, sysctl};

/// Settings of one reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// This node's name (as in the inputs).
    pub node: String,
    /// The namespace to program (the host's own in production).
    pub netns: Netns,
    /// Full dump-and-diff period (Calico: 90 s).
    pub resync_interval: Duration,
    /// A route of a `cali*` interface younger than this is never removed (CNI races).
    pub new_iface_grace: Duration,
    /// Where to write the pod MTU for the CNI plugin.
    pub mtu_file: Option<PathBuf>,
}

impl ReconcilerConfig {
    /// Production defaults for `node` in `netns`.
    pub fn new(node: &str, netns: Netns) -> Self {
        ReconcilerConfig {
            node: node.into(),
            netns,
            resync_interval: Duration::from_secs(90),
            new_iface_grace: Duration::from_secs(10),
            mtu_file: None,
        }
    }
}

/// What the reconciler reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub in_sync: bool,
    pub resyncs: u64,
    pub route_writes: u64,
    pub route_deletes: u64,
    /// Desired routes whose interface does not exist yet.
    pub waiting_for_iface: usize,
    pub last_error: Option<String>,
    /// Routes the kernel refused (or never acknowledged) in the last pass.
    pub failed_routes: usize,
    /// The errors of the first [`MAX_REPORTED_FAILURES`] of them, one per route.
    pub route_failures: Vec<String>,
    /// Set when the kernel cannot do IPIP (names the missing module).
    pub ipip_error: Option<String>,
    pub pod_mtu: u32,
}

/// How many per-route errors [`Status::route_failures`] keeps.
pub const MAX_REPORTED_FAILURES: usize = 32;

/// Counts of one [`RouteReconciler::apply`] pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub writes: usize,
    pub deletes: usize,
    pub waiting: usize,
    /// Routes whose write or delete failed (each reported in [`Status::route_failures`]).
    pub failed: usize,
}

/// Route dataplane owner for one namespace (drive it with [`spawn`], or call its
/// methods directly as the benchmarks do).
pub struct RouteReconciler {
    cfg: ReconcilerConfig,
    handle: rtnetlink::Handle,
    /// Route writes and deletes go here, many per `sendmsg`.
    sock: RouteSocket,
    calc: RouteCalc,
    routes: DeltaTracker<IpNetwork, RouteTarget>,
    links: Vec<LinkInfo>,
    by_name: HashMap<String, u32>,
    by_index: BTreeMap<u32, String>,
    first_seen: HashMap<String, Instant>,
    devices_dirty: bool,
    applied_vteps: BTreeMap<Ipv4Addr, Vtep>,
    /// Addresses as last read: (interface index, address).
    addrs: Vec<(u32, IpNetwork)>,
    /// Whether VTEP entries already in the kernel were read (once, after start).
    vteps_read: bool,
    /// Workload interfaces whose sysctls are due → (has IPv4, has IPv6).
    sysctls_pending: BTreeMap<String, (bool, bool)>,
    grace_until: Option<Instant>,
    needs_resync: bool,
    status: Status,
}

fn satisfied(want: &RouteTarget, got: &RouteTarget) -> bool {
    want.satisfied_by(got)
}

impl RouteReconciler {
    /// Connects inside `cfg.netns` and reads the kernel (links, addresses, our routes)
    /// before anything is written.
    pub async fn new(cfg: ReconcilerConfig) -> Result<Self, RouteError> {
        let handle = cfg.netns.connect()?;
        let sock = RouteSocket::open(&cfg.netns)?;
        let mut r = RouteReconciler {
            sock,
            calc: RouteCalc::new(&cfg.node),
            cfg,
            handle,
            routes: DeltaTracker::new(satisfied),
            links: Vec::new(),
            by_name: HashMap::new(),
            by_index: BTreeMap::new(),
            first_seen: HashMap::new(),
            devices_dirty: true,
            applied_vteps: BTreeMap::new(),
            addrs: Vec::new(),
            vteps_read: false,
            sysctls_pending: BTreeMap::new(),
            grace_until: None,
            needs_resync: false,
            status: Status::default(),
        };
        r.read_kernel(true).await?;
        Ok(r)
    }

    /// The current status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The pure calculation (read-only), e.g. for tests.
    pub fn calc(&self) -> &RouteCalc {
        &self.calc
    }

    /// Feeds one input (no kernel I/O; call [`Self::apply`] afterwards).
    pub fn handle_input(&mut self, input: &Input) {
        match input {
            Input::InSync => {
                self.status.in_sync = true;
                return;
            }
            Input::EndpointUpsert(ep) if ep.node == self.cfg.node => {
                let fam = self.sysctls_pending.entry(ep.iface.clone()).or_default();
                fam.0 |= ep.ips.iter().any(|i| i.is_ipv4());
                fam.1 |= ep.ips.iter().any(|i| i.is_ipv6());
            }
            Input::EndpointUpsert(_) | Input::EndpointRemove(_) => {}
            Input::NamespaceUpsert(_)
            | Input::NamespaceRemove { .. }
            | Input::PolicyUpsert(_)
            | Input::PolicyRemove { .. } => return,
            _ => self.devices_dirty = true,
        }
        self.calc.apply(input);
        self.drain_calc();
    }

    fn drain_calc(&mut self) {
        for (dst, target) in self.calc.take_changes() {
            self.routes.set_desired(dst, target);
        }
    }

    fn set_links(&mut self, links: Vec<LinkInfo>, at_start: bool) {
        let now = Instant::now();
        for l in &links {
            if !at_start
                && !self.first_seen.contains_key(&l.name)
                && !self.by_name.contains_key(&l.name)
            {
                self.first_seen.insert(l.name.clone(), now);
            }
        }
        self.by_name = links.iter().map(|l| (l.name.clone(), l.index)).collect();
        self.by_index = links.iter().map(|l| (l.index, l.name.clone())).collect();
        self.first_seen.retain(|n, _| self.by_name.contains_key(n));
        self.calc.set_host_mtu(mtu::detect_host_mtu(&links));
        self.links = links;
    }

    async fn read_kernel(&mut self, at_start: bool) -> Result<(), RouteError> {
        let links = kernel::list_links(&self.handle).await?;
        self.set_links(links, at_start);
        self.read_addrs().await?;
        let ours: BTreeMap<IpNetwork, RouteTarget> =
            kernel::dump_routes(&self.handle, &self.by_index)
                .await?
                .into_iter()
                .filter(|r| r.protocol == ROUTE_PROTOCOL)
                .filter_map(|r| Some((r.dst, r.target?)))
                .collect();
        self.routes.replace_dataplane(ours);
        self.drain_calc();
        Ok(())
    }

    async fn read_addrs(&mut self) -> Result<(), RouteError> {
        let addrs = kernel::list_addrs(&self.handle).await?;
        self.addrs = addrs.clone();
        let uplinks: BTreeSet<u32> = self
            .links
            .iter()
            .filter(|l| mtu::is_uplink(l))
            .map(|l| l.index)
            .collect();
        let prefixes: Vec<Ipv4Network> = addrs
            .into_iter()
            .filter(|(i, _)| uplinks.contains(i))
            .filter_map(|(_, n)| match n {
                IpNetwork::V4(v4) => Ipv4Network::new(v4.network(), v4.prefix()).ok(),
                IpNetwork::V6(_) => None,
            })
            .collect();
        self.calc.set_uplink_prefixes(prefixes);
        self.drain_calc();
        Ok(())
    }

    /// Full dump-and-diff: re-reads links, addresses and routes, then applies.
    pub async fn resync(&mut self) -> Result<ApplyStats, RouteError> {
        self.status.resyncs += 1;
        self.needs_resync = false;
        self.devices_dirty = true;
        self.read_kernel(false).await?;
        self.apply().await
    }

    /// Writes the pending difference. Errors of single objects do not stop the pass;
    /// the first one is returned (and a resync is scheduled by the driver).
    pub async fn apply(&mut self) -> Result<ApplyStats, RouteError> {
        let mut first_err: Option<RouteError> = None;
        if self.devices_dirty
            && let Err(e) = self.apply_devices().await
        {
            first_err.get_or_insert(e);
        }
        if !self.sysctls_pending.is_empty()
            && let Err(e) = self.apply_sysctls()
        {
            first_err.get_or_insert(e);
        }
        let mut stats = ApplyStats::default();
        let mut failures: Vec<RouteError> = Vec::new();
        let mut reqs = Vec::new();
        let mut targets = Vec::new();
        for (dst, target) in self.routes.pending_updates() {
            match kernel::build_route(*dst, target, |n| self.by_name.get(n).copied()) {
                Ok(msg) => {
                    reqs.push(RouteRequest {
                        dst: *dst,
                        op: RouteOp::Replace(msg),
                    });
                    targets.push(target.clone());
                }
                Err(RouteError::MissingIface { .. }) => stats.waiting += 1,
                Err(e) => failures.push(e),
            }
        }
        let results = self.write(&reqs).await;
        for ((req, target), result) in reqs.iter().zip(targets).zip(results) {
            match result {
                Ok(()) => {
                    stats.writes += 1;
                    self.routes.set_dataplane(req.dst, Some(target));
                }
                Err(e) => failures.push(e),
            }
        }
        self.grace_until = None;
        if self.status.in_sync {
            let now = Instant::now();
            let mut reqs = Vec::new();
            for (dst, target) in self.routes.pending_deletes() {
                if let RouteTarget::Device { iface } = target
                    && let Some(seen) = self.first_seen.get(iface)
                    && *seen + self.cfg.new_iface_grace > now
                {
                    let until = *seen + self.cfg.new_iface_grace;
                    self.grace_until = Some(self.grace_until.map_or(until, |g| g.min(until)));
                    continue;
                }
                match kernel::build_delete(*dst, target) {
                    Ok(msg) => reqs.push(RouteRequest {
                        dst: *dst,
                        op: RouteOp::Delete(msg),
                    }),
                    Err(e) => failures.push(e),
                }
            }
            let results = self.write(&reqs).await;
            for (req, result) in reqs.iter().zip(results) {
                match result {
                    Ok(()) => {
                        stats.deletes += 1;
                        self.routes.set_dataplane(req.dst, None);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        stats.failed = failures.len();
        self.report_failures(&failures);
        if let Some(e) = failures.into_iter().next() {
            first_err.get_or_insert(e);
        }
        self.status.route_writes += stats.writes as u64;
        self.status.route_deletes += stats.deletes as u64;
        self.status.waiting_for_iface = stats.waiting;
        match first_err {
            Some(e) => {
                self.status.last_error = Some(e.to_string());
                Err(e)
            }
            None => Ok(stats),
        }
    }

    /// Sends `reqs` chunk by chunk; one result per request, in order.
    async fn write(&mut self, reqs: &[RouteRequest]) -> Vec<Result<(), RouteError>> {
        let mut out = Vec::with_capacity(reqs.len());
        for (i, chunk) in batch::chunks(reqs).into_iter().enumerate() {
            if i > 0 {
                // A large pass does not hold its worker thread for the whole table.
                tokio::task::yield_now().await;
            }
            out.extend(self.sock.send_chunk(chunk));
        }
        out
    }

    /// Records this pass's per-route errors in the status and the log.
    fn report_failures(&mut self, failures: &[RouteError]) {
        for e in failures.iter().take(MAX_REPORTED_FAILURES) {
            tracing::warn!("route dataplane: {e}");
        }
        if failures.len() > MAX_REPORTED_FAILURES {
            tracing::warn!(
                "route dataplane: {} more route errors in this pass",
                failures.len() - MAX_REPORTED_FAILURES
            );
        }
        self.status.failed_routes = failures.len();
        self.status.route_failures = failures
            .iter()
            .take(MAX_REPORTED_FAILURES)
            .map(|e| e.to_string())
            .collect();
    }

    fn apply_sysctls(&mut self) -> Result<(), RouteError> {
        let mut list = Vec::new();
        let mut done = Vec::new();
        for (iface, (v4, v6)) in &self.sysctls_pending {
            if !self.by_name.contains_key(iface) {
                continue; // applied when the interface appears
            }
            list.extend(sysctl::workload_sysctls(iface, *v4, *v6));
            done.push(iface.clone());
        }
        if list.is_empty() {
            return Ok(());
        }
        sysctl::apply(&self.cfg.netns, list)?;
        for d in done {
            self.sysctls_pending.remove(&d);
        }
        Ok(())
    }

    async fn apply_devices(&mut self) -> Result<(), RouteError> {
        let want: Devices = self.calc.devices();
        let mut first_err = None;
        sysctl::apply(&self.cfg.netns, sysctl::host_sysctls())?;
        let uplink = self
            .links
            .iter()
            .find(|l| mtu::is_uplink(l))
            .map(|l| l.index);
        let mut created = false;
        if let Some(v) = &want.vxlan {
            match devices::ensure_vxlan(&self.handle, &self.links, v, uplink, &self.addrs).await {
                Ok(c) => created |= c,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(d) = &want.ipip {
            match devices::ensure_ipip(&self.handle, &self.links, d, &self.addrs).await {
                Ok(c) => {
                    created |= c;
                    self.status.ipip_error = None;
                }
                Err(RouteError::IpipModuleMissing) => {
                    if self.status.ipip_error.is_none() {
                        tracing::error!("{}", RouteError::IpipModuleMissing);
                    }
                    self.status.ipip_error = Some(RouteError::IpipModuleMissing.to_string());
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if created {
            let links = kernel::list_links(&self.handle).await?;
            self.set_links(links, false);
            // A freshly created tunl0 still needs its MTU, state and address.
            if let Some(d) = &want.ipip
                && let Some(l) = self.links.iter().find(|l| l.name == IPIP_IFACE)
            {
                let links = vec![l.clone()];
                devices::ensure_ipip(&self.handle, &links, d, &self.addrs).await?;
            }
        }
        if let Some(vx) = self.by_name.get(VXLAN_IFACE).copied() {
            if !self.vteps_read {
                for v in devices::list_vteps(&self.handle, vx).await? {
                    self.applied_vteps.entry(v.tunnel_addr).or_insert(v);
                }
                self.vteps_read = true;
            }
            for (addr, v) in &want.vteps {
                if self.applied_vteps.get(addr) != Some(v) {
                    match devices::replace_vtep(&self.handle, vx, v).await {
                        Ok(()) => {
                            self.applied_vteps.insert(*addr, v.clone());
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
            }
            // Like routes, VTEPs of nodes that left are removed only once in sync.
            let gone: Vec<Vtep> = self
                .applied_vteps
                .iter()
                .filter(|_| self.status.in_sync)
                .filter(|(a, _)| !want.vteps.contains_key(a))
                .map(|(_, v)| v.clone())
                .collect();
            for v in gone {
                devices::delete_vtep(&self.handle, vx, &v).await?;
                self.applied_vteps.remove(&v.tunnel_addr);
            }
        }
        if want.pod_mtu != self.status.pod_mtu {
            if let Some(path) = &self.cfg.mtu_file {
                std::fs::write(path, format!("{}\n", want.pod_mtu)).map_err(|source| {
                    RouteError::Io {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
            }
            self.status.pod_mtu = want.pod_mtu;
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.devices_dirty = false;
                Ok(())
            }
        }
    }

    /// Folds one message of the event socket into the kernel view; returns whether a
    /// write pass is due.
    fn handle_payload(&mut self, payload: NetlinkPayload<RouteNetlinkMessage>) -> bool {
        match payload {
            NetlinkPayload::InnerMessage(m) => self.handle_event(m),
            // The event socket overflowed (a large batch makes many events at once):
            // events were lost, so only a full re-read knows the kernel's state.
            NetlinkPayload::Overrun(_) => {
                self.needs_resync = true;
                true
            }
            _ => false,
        }
    }

    /// Folds one netlink event into the kernel view; returns whether a write pass is due.
    fn handle_event(&mut self, msg: RouteNetlinkMessage) -> bool {
        match msg {
            RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m)
                if u8::from(m.header.protocol) != ROUTE_PROTOCOL =>
            {
                false
            }
            RouteNetlinkMessage::NewRoute(m) => {
                if let Some(r) = kernel::parse_route(&m, &self.by_index) {
                    self.routes.set_dataplane(r.dst, r.target);
                }
                self.routes.pending_len() != (0, 0)
            }
            RouteNetlinkMessage::DelRoute(m) => {
                if let Some(r) = kernel::parse_route(&m, &self.by_index) {
                    self.routes.set_dataplane(r.dst, None);
                }
                true
            }
            RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_) => {
                // Routes through a deleted link vanish without an event; any link change
                // is rare enough for a full re-read.
                self.needs_resync = true;
                true
            }
            RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                self.needs_resync = true;
                true
            }
            _ => false,
        }
    }
}

/// A running reconciler: send inputs, watch its status; dropping it stops the task.
pub struct ReconcilerTask {
    pub input_tx: mpsc::Sender<Input>,
    pub status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
}

impl ReconcilerTask {
    /// Stops the reconciler and waits until it has stopped.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for ReconcilerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a reconciler task: reads the kernel, then serves inputs, events and timers.
pub async fn spawn(cfg: ReconcilerConfig) -> Result<ReconcilerTask, RouteError> {
    let groups = [
        rtnetlink::MulticastGroup::Link,
        rtnetlink::MulticastGroup::Ipv4Route,
        rtnetlink::MulticastGroup::Ipv6Route,
        rtnetlink::MulticastGroup::Ipv4Ifaddr,
    ];
    let (conn, _events_handle, events) = cfg.netns.connect_raw(&groups)?;
    let mut r = RouteReconciler::new(cfg).await?;
    let (input_tx, input_rx) = mpsc::channel(1024);
    let (status_tx, status) = watch::channel(r.status.clone());
    // Add and repair at once; deletions wait for InSync.
    if let Err(e) = r.apply().await {
        r.needs_resync = true;
        tracing::warn!("initial apply: {e}");
    }
    let task = tokio::spawn(async move {
        let _keep = _events_handle;
        run(r, input_rx, events, conn, status_tx).await;
    });
    Ok(ReconcilerTask {
        input_tx,
        status,
        task,
    })
}

type Events = futures::channel::mpsc::UnboundedReceiver<(
    netlink_packet_core::NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

async fn run(
    mut r: RouteReconciler,
    mut input_rx: mpsc::Receiver<Input>,
    mut events: Events,
    conn: rtnetlink::proto::Connection<RouteNetlinkMessage>,
    status_tx: watch::Sender<Status>,
) {
    let conn = tokio::spawn(conn);
    let _abort = AbortOnDrop(conn);
    let mut next_resync = Instant::now() + r.cfg.resync_interval;
    let mut backoff = Duration::from_millis(100);
    let mut retry_at: Option<Instant> = None;
    loop {
        let mut wake = next_resync;
        if let Some(g) = r.grace_until {
            wake = wake.min(g);
        }
        if let Some(t) = retry_at {
            wake = wake.min(t);
        }
        let mut write = false;
        tokio::select! {
            input = input_rx.recv() => {
                let Some(input) = input else { break };
                r.handle_input(&input);
                while let Ok(more) = input_rx.try_recv() {
                    r.handle_input(&more);
                }
                write = true;
            }
            ev = events.next() => {
                let Some((msg, _)) = ev else { break };
                write |= r.handle_payload(msg.payload);
                while let Ok((msg, _)) = events.try_recv() {
                    write |= r.handle_payload(msg.payload);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_resync || retry_at.is_some_and(|t| Instant::now() >= t) {
                    r.needs_resync = true;
                }
                write = true;
            }
        }
        if !write {
            continue;
        }
        let result = if r.needs_resync {
            next_resync = Instant::now() + r.cfg.resync_interval;
            r.resync().await
        } else {
            r.apply().await
        };
        match result {
            Ok(_) => {
                r.status.last_error = None;
                retry_at = None;
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!("route dataplane: {e}; full resync in {backoff:?}");
                r.status.last_error = Some(e.to_string());
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        status_tx.send_replace(r.status.clone());
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
