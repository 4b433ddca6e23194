#!/usr/bin/env bash
# Provides what the deployment tests need besides Go, and prints KEY=value
# lines for them on stdout (progress goes to stderr):
# - etcd and kube-apiserver, from the end-to-end suite's provisioning
#   (tests/e2e/hack/provision.sh: built once, cached by version);
# - the CRDs of Flux (HelmRepository, HelmRelease, GitRepository,
#   Kustomization) and of the Prometheus Operator's ServiceMonitor, copied
#   from those projects' own Go modules, which ship them. Cached by version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${COFFER_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer/e2e}
# module@version:directory of its CRDs. Flux v2.7's controllers.
CRD_MODULES=${CRD_MODULES:-"github.com/fluxcd/source-controller@v1.7.0:config/crd/bases
github.com/fluxcd/helm-controller@v1.4.0:config/crd/bases
github.com/fluxcd/kustomize-controller@v1.7.3:config/crd/bases
github.com/prometheus-operator/prometheus-operator@v0.85.0:example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"}
log() { echo "provision: $*" >&2; }

"$here/../../e2e/hack/provision.sh"

crds() {
	local key dir m src
	key=$(echo "$CRD_MODULES" | sed 's/:.*//; s|.*/||; s/@/-/' | paste -sd_ -)
	dir=$CACHE/crds-$key
	if [ -d "$dir" ]; then
		log "CRDs cached in $dir"
	else
		log "fetching CRDs from the Go modules of Flux and the Prometheus Operator"
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		echo "$CRD_MODULES" | while IFS=: read -r m src; do
			mdir=$(cd "$dir.tmp" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "$m" |
				sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
			if [ -d "$mdir/$src" ]; then
				cp "$mdir/$src"/*.yaml "$dir.tmp/"
			elif [ -f "$mdir/$src" ]; then
				cp "$mdir/$src" "$dir.tmp/"
			else
				log "$m has no $src"
				exit 1
			fi
		done
		chmod -R u+w "$dir.tmp"
		mv "$dir.tmp" "$dir"
	fi
	echo "DEPLOY_CRDS=$dir"
}

mkdir -p "$CACHE"
crds
