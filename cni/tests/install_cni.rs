//! deploy/install-cni.sh (the DaemonSet's init container) run as the DaemonSet runs it,
//! with the ConfigMap's template and the built plugin, into temporary host directories:
//! the plugin is installed, the rendered list is accepted by the plugin's parser and
//! names the node and MTU, the kubeconfig is made from the service account; a template
//! the plugin rejects, or a bad MTU, fails and installs no configuration.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};
use tortie_cni::conf::{DatastoreConf, MtuSource, NodeSource, check_conflist};

fn template() -> Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tortie-config.yaml");
    let cm: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    Ok(cm["data"]["cni_network_config"]
        .as_str()
        .context("data.cni_network_config")?
        .to_string())
}

fn install(dir: &Path, config: &str, mtu: &str) -> Result<Output> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/install-cni.sh");
    let sa = dir.join("sa");
    std::fs::create_dir_all(&sa)?;
    std::fs::write(sa.join("token"), "tok-123")?;
    std::fs::write(sa.join("ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n")?;
    Ok(Command::new("sh")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_NETWORK_CONFIG", config)
        .env("CNI_MTU", mtu)
        .env("CNI_CONF_NAME", "10-tortie.conflist")
        .env("KUBERNETES_NODE_NAME", "node-7.example")
        .env("CNI_BIN_DIR", dir.join("bin"))
        .env("CNI_NET_DIR", dir.join("net.d"))
        .env("TORTIE_CNI_BIN", env!("CARGO_BIN_EXE_tortie-cni"))
        .env("SERVICEACCOUNT_DIR", &sa)
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .output()?)
}

#[test]
fn install_cni_renders_an_accepted_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = install(dir.path(), &template()?, "1440")?;
    ensure!(
        out.status.success(),
        "install-cni failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dir.path().join("bin/tortie-cni");
    let mode = std::fs::metadata(&bin)?.permissions().mode();
    assert_eq!(mode & 0o755, 0o755, "{mode:o}");
    let conf = std::fs::read(dir.path().join("net.d/10-tortie.conflist"))?;
    let c = check_conflist(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(c.node, NodeSource::Name("node-7.example".into()));
    assert_eq!(c.mtu, MtuSource::Value(1440));
    let DatastoreConf::Kubernetes {
        kubeconfig: Some(kc),
    } = &c.datastore
    else {
        panic!("{:?}", c.datastore);
    };
    assert_eq!(kc, "/etc/cni/net.d/tortie-kubeconfig");
    let kubeconfig = std::fs::read_to_string(dir.path().join("net.d/tortie-kubeconfig"))?;
    assert!(
        kubeconfig.contains("server: https://10.96.0.1:443"),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains("token: tok-123"), "{kubeconfig}");
    let kmode = std::fs::metadata(dir.path().join("net.d/tortie-kubeconfig"))?
        .permissions()
        .mode();
    assert_eq!(kmode & 0o077, 0, "kubeconfig readable by others: {kmode:o}");
    // The default ConfigMap value (0) renders too: the plugin then reads the agent's file.
    let out = install(dir.path(), &template()?, "0")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn install_cni_refuses_bad_input_and_installs_no_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = template()?.replace("\"kubernetes\",", "\"consul\",");
    assert_ne!(
        broken,
        template()?,
        "the template no longer names its datastore"
    );
    let out = install(dir.path(), &broken, "1440")?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datastore_type"), "{err}");
    assert!(!dir.path().join("net.d/10-tortie.conflist").exists());
    let out = install(dir.path(), &template()?, "big")?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CNI_MTU"));
    let out = install(
        dir.path(),
        &template()?.replace("__CNI_MTU__", "__OTHER__"),
        "0",
    )?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("__OTHER__"));
    assert!(!dir.path().join("net.d/10-tortie.conflist").exists());
    Ok(())
}
