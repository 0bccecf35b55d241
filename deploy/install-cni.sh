#!/bin/sh
# install-cni: the tortie-node DaemonSet's init container (image tortie/tortie-cni).
# Installs the tortie-cni plugin on the node and renders its CNI configuration, as
# Calico's install-cni does:
#   - copies the plugin binary to $CNI_BIN_DIR (atomically: copy, then rename);
#   - writes a kubeconfig for the plugin to $CNI_NET_DIR/tortie-kubeconfig from the pod's
#     service account (token + CA) when it runs inside Kubernetes;
#   - renders $CNI_NETWORK_CONFIG (the ConfigMap's template) with __KUBERNETES_NODE_NAME__
#     and __CNI_MTU__ filled in, has the plugin check it (`tortie-cni --check-conflist`),
#     and writes it to
#     $CNI_NET_DIR/$CNI_CONF_NAME (atomically).
# Environment (defaults in brackets): CNI_NETWORK_CONFIG (required), KUBERNETES_NODE_NAME
# (required), CNI_MTU [0 = the agent's /var/lib/tortie/mtu], CNI_CONF_NAME
# [10-tortie.conflist], CNI_BIN_DIR [/host/opt/cni/bin], CNI_NET_DIR [/host/etc/cni/net.d],
# TORTIE_CNI_BIN [/opt/cni/bin/tortie-cni], SERVICEACCOUNT_DIR
# [/var/run/secrets/kubernetes.io/serviceaccount], KUBERNETES_SERVICE_HOST/_PORT.
# Exits non-zero (and writes nothing more) on the first problem, naming it.
set -eu

fail() {
  echo "install-cni: $*" >&2
  exit 1
}

: "${CNI_NETWORK_CONFIG:?install-cni: CNI_NETWORK_CONFIG (the ConfigMap template) is required}"
: "${KUBERNETES_NODE_NAME:?install-cni: KUBERNETES_NODE_NAME is required}"
CNI_MTU="${CNI_MTU:-0}"
CNI_CONF_NAME="${CNI_CONF_NAME:-10-tortie.conflist}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/host/opt/cni/bin}"
CNI_NET_DIR="${CNI_NET_DIR:-/host/etc/cni/net.d}"
TORTIE_CNI_BIN="${TORTIE_CNI_BIN:-/opt/cni/bin/tortie-cni}"
SA_DIR="${SERVICEACCOUNT_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}"

case "$CNI_MTU" in
  '' | *[!0-9]*) fail "CNI_MTU: '$CNI_MTU' is not a number" ;;
esac
case "$CNI_CONF_NAME" in
  */* | '') fail "CNI_CONF_NAME: '$CNI_CONF_NAME' must be a file name" ;;
esac
[ -x "$TORTIE_CNI_BIN" ] || fail "TORTIE_CNI_BIN: $TORTIE_CNI_BIN is not an executable"
mkdir -p "$CNI_BIN_DIR" "$CNI_NET_DIR"

# The plugin must answer VERSION before it is installed.
CNI_COMMAND=VERSION "$TORTIE_CNI_BIN" </dev/null | grep -q supportedVersions ||
  fail "$TORTIE_CNI_BIN does not answer CNI VERSION"

cp "$TORTIE_CNI_BIN" "$CNI_BIN_DIR/.tortie-cni.tmp"
chmod 755 "$CNI_BIN_DIR/.tortie-cni.tmp"
mv -f "$CNI_BIN_DIR/.tortie-cni.tmp" "$CNI_BIN_DIR/tortie-cni"
echo "install-cni: installed $CNI_BIN_DIR/tortie-cni"

if [ -f "$SA_DIR/token" ] && [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then
  host="$KUBERNETES_SERVICE_HOST"
  case "$host" in *:*) host="[$host]" ;; esac
  ca=$(base64 -w0 <"$SA_DIR/ca.crt") || fail "cannot read $SA_DIR/ca.crt"
  token=$(cat "$SA_DIR/token")
  umask 077
  cat >"$CNI_NET_DIR/.tortie-kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://$host:${KUBERNETES_SERVICE_PORT:-443}
      certificate-authority-data: $ca
users:
  - name: tortie-cni
    user:
      token: $token
contexts:
  - name: tortie-context
    context:
      cluster: local
      user: tortie-cni
current-context: tortie-context
EOF
  mv -f "$CNI_NET_DIR/.tortie-kubeconfig.tmp" "$CNI_NET_DIR/tortie-kubeconfig"
  umask 022
  echo "install-cni: wrote $CNI_NET_DIR/tortie-kubeconfig"
fi

# Node names are DNS labels/subdomains: nothing in them needs escaping for sed or JSON.
case "$KUBERNETES_NODE_NAME" in
  *[!a-z0-9.-]*) fail "KUBERNETES_NODE_NAME: '$KUBERNETES_NODE_NAME' is not a DNS subdomain" ;;
esac
printf '%s\n' "$CNI_NETWORK_CONFIG" |
  sed -e "s/__KUBERNETES_NODE_NAME__/$KUBERNETES_NODE_NAME/g" -e "s/__CNI_MTU__/$CNI_MTU/g" \
    >"$CNI_NET_DIR/.$CNI_CONF_NAME.tmp"
left=$(grep -o '__[A-Z_]*__' "$CNI_NET_DIR/.$CNI_CONF_NAME.tmp" | sort -u | tr '\n' ' ' || true)
if [ -n "$left" ]; then
  rm -f "$CNI_NET_DIR/.$CNI_CONF_NAME.tmp"
  fail "CNI_NETWORK_CONFIG: placeholders left unfilled: $left"
fi
# The plugin's own parser checks the rendered list (JSON, our entry, every field).
if ! "$TORTIE_CNI_BIN" --check-conflist "$CNI_NET_DIR/.$CNI_CONF_NAME.tmp" >&2; then
  rm -f "$CNI_NET_DIR/.$CNI_CONF_NAME.tmp"
  fail "CNI_NETWORK_CONFIG: the rendered configuration is not accepted by tortie-cni"
fi
mv -f "$CNI_NET_DIR/.$CNI_CONF_NAME.tmp" "$CNI_NET_DIR/$CNI_CONF_NAME"
echo "install-cni: wrote $CNI_NET_DIR/$CNI_CONF_NAME for node $KUBERNETES_NODE_NAME (mtu $CNI_MTU)"
