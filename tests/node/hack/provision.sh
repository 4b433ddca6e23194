#!/usr/bin/env bash
# Provides what the node tier (tests/node) runs besides the end-to-end
# suite's parts (tests/e2e/hack/provision.sh: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, the CSI driver), and
# prints KEY=value lines for them on stdout (progress goes to stderr):
# - containerd, runc and the CNI plugins, from Debian;
# - node-driver-registrar and livenessprobe at the versions the driver's
#   chart pins, built from their source (static, as their images ship them).
#   The module proxy does not serve these two modules, so their source comes
#   from NODE_CSI_SOURCES: a directory holding node-driver-registrar-<v> and
#   livenessprobe-<v> (each the project's tree at its tag, vendor/ included),
#   by default ../shared/peers beside the repository. Builds are cached by
#   version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
CACHE=${COFFER_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer/e2e}
values=$repo/deployment/charts/coffer/charts/secrets-store-csi-driver/values.yaml
# The tags the driver chart pins (linux.registrarImage, linux.livenessProbeImage).
REGISTRAR_VERSION=${REGISTRAR_VERSION:-$(awk '/registrarImage:/{f=1} f&&/tag:/{print $2; exit}' "$values")}
LIVENESS_VERSION=${LIVENESS_VERSION:-$(awk '/livenessProbeImage:/{f=1} f&&/tag:/{print $2; exit}' "$values")}
NODE_CSI_SOURCES=${NODE_CSI_SOURCES:-$repo/../shared/peers}
export GOTOOLCHAIN=local
log() { echo "provision: $*" >&2; }

"$repo/tests/e2e/hack/provision.sh"

ensure_runtime() {
	local missing=
	for b in containerd runc ctr /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback; do
		command -v "$b" >/dev/null 2>&1 || [ -x "$b" ] || missing=1
	done
	if [ -n "$missing" ]; then
		log "installing containerd, runc and containernetworking-plugins from Debian"
		if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq containerd runc containernetworking-plugins iproute2 util-linux >&2
		# The package starts a system containerd on the default socket; the
		# tier runs its own, with its own socket and state.
		$SUDO systemctl disable --now containerd >/dev/null 2>&1 || true
	fi
	echo "NODE_CONTAINERD=$(command -v containerd)"
	echo "NODE_CTR=$(command -v ctr)"
	echo "NODE_CNI_BIN=/usr/lib/cni"
}

# build_csi NAME VERSION CMD: a kubernetes-csi sidecar from its source tree,
# as its release tooling builds it (CGO off, vendor/, main.version stamped).
build_csi() {
	local name=$1 version=$2 cmd=$3 dir=$CACHE/$1-$2 src
	if [ ! -x "$dir/$cmd" ]; then
		src=$NODE_CSI_SOURCES/$name-$version
		if [ ! -f "$src/go.mod" ]; then
			log "BLOCKED: $name $version is not served by the Go module proxy, and its source is not in $src"
			log "put the project's tree at tag $version (vendor/ included) there, or set NODE_CSI_SOURCES"
			exit 3
		fi
		log "building $name $version from $src"
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		(cd "$src" && CGO_ENABLED=0 nice go build -mod=vendor -trimpath -ldflags "-X main.version=$version" -o "$dir.tmp/$cmd" "./cmd/$cmd")
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	else
		log "$name $version cached in $dir"
	fi
	echo "$dir/$cmd"
}

mkdir -p "$CACHE"
ensure_runtime
registrar=$(build_csi node-driver-registrar "$REGISTRAR_VERSION" csi-node-driver-registrar)
liveness=$(build_csi livenessprobe "$LIVENESS_VERSION" livenessprobe)
echo "NODE_REGISTRAR=$registrar"
echo "NODE_REGISTRAR_VERSION=$REGISTRAR_VERSION"
echo "NODE_LIVENESSPROBE=$liveness"
echo "NODE_LIVENESSPROBE_VERSION=$LIVENESS_VERSION"
