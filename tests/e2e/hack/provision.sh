#!/usr/bin/env bash
# Provides the real Kubernetes parts the end-to-end suite runs: etcd (Debian),
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built
# from k8s.io/kubernetes, and
# the Secrets Store CSI Driver built from its module. Builds are cached by
# version, so only the first run pays (measured cold: 47 minutes on a 2-core VM
# that other builds shared, 18 minutes of CPU time). kube-scheduler and kubelet
# are for the node tier (tests/node); every Kubernetes binary reports its version.
# Prints KEY=path lines for the binaries on stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.3}
DRIVER_VERSION=${DRIVER_VERSION:-v1.6.0}
CACHE=${COFFER_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer/e2e}
here=$(cd "$(dirname "$0")" && pwd)
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { echo "provision: $*" >&2; }

ensure_etcd() {
	if ! command -v etcd >/dev/null 2>&1; then
		log "installing etcd-server from Debian"
		if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >&2
		# The package starts a system etcd on the default ports; the suite
		# runs its own on other ports, so the service is not needed.
		$SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
	echo "E2E_ETCD=$(command -v etcd)"
}

# Kubernetes' own build stamps its version into every binary with these
# ldflags (hack/lib/version.sh); without them the binaries report
# v0.0.0-master+$Format:%H$.
k8s_ldflags() {
	local info commit date major minor
	info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
	commit=$(echo "$info" | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]*\)",*$/\1/p' | head -1)
	date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.info")
	major=${K8S_VERSION#v}; major=${major%%.*}
	minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
	local flags="" pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags="$flags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		flags="$flags -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
	done
	echo "$flags"
}

# The Kubernetes binaries, from one wrapper module, all stamped with their
# version; each is built once (a component added later is built alone). The
# cache key names the stamping ("-stamped"): a cache from before it holds
# unstamped binaries, which are rebuilt rather than reused. kubectl is for
# the node tier's image of the driver chart's CRD hook.
K8S_COMPONENTS="kubelet kube-scheduler kube-apiserver kube-controller-manager kubectl"
build_kubernetes() {
	local dir=$CACHE/kubernetes-$K8S_VERSION-stamped c missing=
	for c in $K8S_COMPONENTS; do [ -x "$dir/$c" ] || missing="$missing $c"; done
	if [ -z "$missing" ]; then
		log "kubernetes $K8S_VERSION cached in $dir"
	else
		log "building$missing $K8S_VERSION (slow the first time)"
		local w staging
		w=$(mktemp -d)
		staging=v0.${K8S_VERSION#v1.}
		(
			cd "$w"
			go mod init coffer-e2e-kubernetes >/dev/null 2>&1
			go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
			modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
			# k8s.io/kubernetes replaces its staging modules with local paths,
			# which do not exist in the module cache: point them at the
			# published versions instead.
			grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | sort -u | while read -r m; do
				go mod edit -replace "$m=$m@$staging"
			done
			go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
			{
				printf '//go:build tools\n\npackage tools\n\nimport (\n'
				for c in $K8S_COMPONENTS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
				printf ')\n'
			} >tools.go
			go mod tidy >&2
			ldflags=$(k8s_ldflags)
			mkdir -p "$dir"
			for c in $missing; do
				log "building $c"
				nice go build -ldflags "$ldflags" -o "$dir/$c.tmp" "k8s.io/kubernetes/cmd/$c"
				mv "$dir/$c.tmp" "$dir/$c"
			done
		)
		rm -rf "$w"
	fi
	echo "E2E_KUBE_APISERVER=$dir/kube-apiserver"
	echo "E2E_KUBE_CONTROLLER_MANAGER=$dir/kube-controller-manager"
	echo "E2E_KUBE_SCHEDULER=$dir/kube-scheduler"
	echo "E2E_KUBELET=$dir/kubelet"
	echo "E2E_KUBECTL=$dir/kubectl"
}

build_driver() {
	local dir=$CACHE/secrets-store-csi-driver-$DRIVER_VERSION
	if [ -x "$dir/secrets-store-csi-driver" ]; then
		log "secrets-store-csi-driver $DRIVER_VERSION cached in $dir"
	else
		log "building secrets-store-csi-driver $DRIVER_VERSION (slow the first time)"
		local w
		w=$(mktemp -d)
		(
			cd "$w"
			go mod init coffer-e2e-driver >/dev/null 2>&1
			cp -r "$here/../tools/mlogstub" ./mlogstub
			go mod edit -require "sigs.k8s.io/secrets-store-csi-driver@$DRIVER_VERSION" -replace monis.app/mlog=./mlogstub
			cat >tools.go <<'GO'
//go:build tools

package tools

import _ "sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver"
GO
			GONOSUMDB=sigs.k8s.io/secrets-store-csi-driver go mod tidy >&2
			mkdir -p "$dir.tmp"
			nice go build -o "$dir.tmp/secrets-store-csi-driver" sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver
			# The driver's CRDs, applied by the suite.
			src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/secrets-store-csi-driver)
			cp -r "$src/charts/secrets-store-csi-driver/crds" "$dir.tmp/crds"
			chmod -R u+w "$dir.tmp/crds"
		)
		rm -rf "$dir" "$w"
		mv "$dir.tmp" "$dir"
	fi
	echo "E2E_DRIVER=$dir/secrets-store-csi-driver"
	echo "E2E_DRIVER_CRDS=$dir/crds"
}

mkdir -p "$CACHE"
ensure_etcd
build_driver
build_kubernetes
