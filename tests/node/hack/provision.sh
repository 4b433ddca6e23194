#!/usr/bin/env bash
# Provides what the node tier (tests/node) runs besides the end-to-end
# suite's parts (tests/e2e/hack/provision.sh: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, the CSI driver), and
# prints KEY=value lines for them on stdout (progress goes to stderr):
# - containerd, runc and the CNI plugins, from Debian;
# - node-driver-registrar and livenessprobe at the versions the driver's
#   chart pins (static binaries, as their images ship them): see peer_binary
#   below for where they come from. Cached by version;
# - AWS's provider (ASCP), built from its unmodified source with
#   NODE_CSI_SOURCES/build-ascp.sh, cached by version, and its chart's
#   directory there (the switch scenario installs it with its own chart);
# - Flux's source-controller, kustomize-controller and helm-controller, each
#   with its CRDs beside it (crds/), for the GitOps scenario: see the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
CACHE=${COFFER_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer/e2e}
values=$repo/deployment/charts/coffer/charts/secrets-store-csi-driver/values.yaml
# The tags the driver chart pins (linux.registrarImage, linux.livenessProbeImage).
REGISTRAR_VERSION=${REGISTRAR_VERSION:-$(awk '/registrarImage:/{f=1} f&&/tag:/{print $2; exit}' "$values")}
LIVENESS_VERSION=${LIVENESS_VERSION:-$(awk '/livenessProbeImage:/{f=1} f&&/tag:/{print $2; exit}' "$values")}
NODE_CSI_SOURCES=${NODE_CSI_SOURCES:-$repo/../shared/peers}
# Where the CNI plugins are (Debian's containernetworking-plugins).
NODE_CNI_BIN=${NODE_CNI_BIN:-/usr/lib/cni}
export GOTOOLCHAIN=local
log() { echo "provision: $*" >&2; }

"$repo/tests/e2e/hack/provision.sh"

ensure_runtime() {
	local missing=
	for b in containerd runc ctr "$NODE_CNI_BIN/bridge" "$NODE_CNI_BIN/host-local" "$NODE_CNI_BIN/loopback"; do
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
	echo "NODE_CNI_BIN=$NODE_CNI_BIN"
}

# peer_binary NAME VERSION CMD [BUILD...]: the path of a peer's binary: the
# two kubernetes-csi sidecars, AWS's provider (NAME ascp) for the switch
# scenario, and Flux's controllers. The Go module proxy does not serve the
# first three, so this repository neither holds nor builds their source.
# They come, in this order, from the cache ($CACHE/NAME-VERSION/CMD), from
# NODE_CSI_BINARIES (a directory holding CMD-VERSION), or from a build script
# kept beside AWS's provider outside this repository
# (NODE_CSI_SOURCES/build-NAME.sh OUT VERSION, as ../shared/peers/build-ascp.sh
# is for the benchmark), or from BUILD OUT VERSION when given (a controller the
# proxy serves, built by hack/build-flux-controller.sh). Without any of them
# the tier reports BLOCKED (exit 3) and does not run.
peer_binary() {
	local name=$1 version=$2 cmd=$3 dir=$CACHE/$1-$2
	shift 3
	local build=("$@")
	[ ${#build[@]} -gt 0 ] || build=("$NODE_CSI_SOURCES/build-$name.sh")
	if [ -x "$dir/$cmd" ]; then
		log "$name $version cached in $dir"
	elif [ -n "${NODE_CSI_BINARIES:-}" ] && [ -x "$NODE_CSI_BINARIES/$cmd-$version" ]; then
		mkdir -p "$dir" && cp "$NODE_CSI_BINARIES/$cmd-$version" "$dir/$cmd"
	elif [ -x "${build[0]}" ]; then
		log "building $name $version with ${build[*]}"
		local t0=$SECONDS
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		"${build[@]}" "$dir.tmp/$cmd" "$version" >&2
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
		log "built $name $version in $((SECONDS - t0)) s"
	else
		log "BLOCKED: $name $version is not served by the Go module proxy, and no binary or build script was found"
		log "provide \$NODE_CSI_BINARIES/$cmd-$version (static, linux/amd64; NODE_CSI_BINARIES is ${NODE_CSI_BINARIES:-not set}), or $NODE_CSI_SOURCES/build-$name.sh"
		exit 3
	fi
	echo "$dir/$cmd"
}

mkdir -p "$CACHE"
ensure_runtime
registrar=$(peer_binary node-driver-registrar "$REGISTRAR_VERSION" csi-node-driver-registrar)
liveness=$(peer_binary livenessprobe "$LIVENESS_VERSION" livenessprobe)
echo "NODE_REGISTRAR=$registrar"
echo "NODE_REGISTRAR_VERSION=$REGISTRAR_VERSION"
echo "NODE_LIVENESSPROBE=$liveness"
echo "NODE_LIVENESSPROBE_VERSION=$LIVENESS_VERSION"

# AWS's provider (ASCP), for the switch scenario: its chart (NODE_ASCP_CHART,
# default the source beside the build scripts) names its version (the
# image tag). The binary comes as the sidecars' do (peer_binary): from the
# cache, from NODE_CSI_BINARIES/secrets-store-csi-driver-provider-aws-VERSION,
# or from NODE_CSI_SOURCES/build-ascp.sh OUT (which ignores VERSION). The
# same holds for Flux's controllers below.
ascp_chart=${NODE_ASCP_CHART:-$NODE_CSI_SOURCES/secrets-store-csi-driver-provider-aws/charts/secrets-store-csi-driver-provider-aws}
if [ ! -f "$ascp_chart/values.yaml" ]; then
	log "BLOCKED: AWS's provider's chart is not at $ascp_chart (set NODE_ASCP_CHART, or NODE_CSI_SOURCES to ../shared/peers)"
	exit 3
fi
ASCP_VERSION=$(awk '/^  tag:/{print $2; exit}' "$ascp_chart/values.yaml")
ascp=$(peer_binary ascp "$ASCP_VERSION" secrets-store-csi-driver-provider-aws)
echo "NODE_ASCP=$ascp"
echo "NODE_ASCP_VERSION=$ASCP_VERSION"
echo "NODE_ASCP_CHART=$(cd "$ascp_chart" && pwd)"

# Flux v2.7's controllers, for the GitOps scenario (scenario_flux_test.go):
# source-controller and kustomize-controller from their modules (the proxy
# serves them; v1.7.3 is the newest of the v1.7 line whose source it serves),
# helm-controller v1.4.5 from NODE_CSI_SOURCES/build-helm-controller.sh (its
# dependencies from the proxy, not the controller itself). Each binary has
# its CRDs in crds/ beside it, from the same source.
FLUX_SOURCE_VERSION=${FLUX_SOURCE_VERSION:-v1.7.3}
FLUX_KUSTOMIZE_VERSION=${FLUX_KUSTOMIZE_VERSION:-v1.7.3}
FLUX_HELM_VERSION=${FLUX_HELM_VERSION:-v1.4.5}

# flux_crds BINARY SRC: the CRDs beside a controller's binary (crds/),
# copied once from SRC, its source's config/crd/bases.
flux_crds() {
	local crds
	crds=$(dirname "$1")/crds
	[ -d "$crds" ] && return 0
	if [ ! -d "$2" ]; then
		log "BLOCKED: the CRDs of $1 are not at $2"
		exit 3
	fi
	rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
	cp "$2"/*.yaml "$crds.tmp/" && chmod -R u+w "$crds.tmp" && mv "$crds.tmp" "$crds"
}

# module_dir MODULE@VERSION: the module's source, from the Go module cache.
module_dir() {
	(cd / && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

source_controller=$(peer_binary source-controller "$FLUX_SOURCE_VERSION" source-controller "$here/build-flux-controller.sh" github.com/fluxcd/source-controller)
kustomize_controller=$(peer_binary kustomize-controller "$FLUX_KUSTOMIZE_VERSION" kustomize-controller "$here/build-flux-controller.sh" github.com/fluxcd/kustomize-controller)
helm_controller=$(peer_binary helm-controller "$FLUX_HELM_VERSION" helm-controller)
[ -d "$(dirname "$source_controller")/crds" ] ||
	flux_crds "$source_controller" "$(module_dir "github.com/fluxcd/source-controller@$FLUX_SOURCE_VERSION")/config/crd/bases"
[ -d "$(dirname "$kustomize_controller")/crds" ] ||
	flux_crds "$kustomize_controller" "$(module_dir "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION")/config/crd/bases"
flux_crds "$helm_controller" "$NODE_CSI_SOURCES/helm-controller-$FLUX_HELM_VERSION/config/crd/bases"
echo "NODE_FLUX_SOURCE_CONTROLLER=$source_controller"
echo "NODE_FLUX_KUSTOMIZE_CONTROLLER=$kustomize_controller"
echo "NODE_FLUX_HELM_CONTROLLER=$helm_controller"
