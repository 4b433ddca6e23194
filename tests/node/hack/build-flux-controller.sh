#!/usr/bin/env bash
# Builds one of Flux's controllers that the Go module proxy serves
# (github.com/fluxcd/source-controller, github.com/fluxcd/kustomize-controller)
# from its unmodified module, out of tree, into OUT (static, CGO off).
#   build-flux-controller.sh MODULE OUT VERSION
# The interface after MODULE is the peers' build scripts' (OUT VERSION), so
# provision.sh caches it the same way (peer_binary).
#
# A module's own replace directives do not apply when it is a dependency, so
# the wrapper module here repeats them: a replace by a published version as
# it is; a replace by a local directory (each controller points its api
# module at ./api, which the module's zip does not hold) becomes a
# requirement of that module at the same tag, which is what ./api is at
# that tag.
set -euo pipefail
module=${1:?usage: build-flux-controller.sh MODULE OUT VERSION}
out=${2:?usage: build-flux-controller.sh MODULE OUT VERSION}
version=${3:?usage: build-flux-controller.sh MODULE OUT VERSION}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
go mod init coffer-node-flux >/dev/null 2>&1
src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "build-flux-controller.sh: the Go module proxy did not serve $module@$version" >&2; exit 1; }
go mod edit -require "$module@$version"
awk '/^replace \($/ {blk=1; next}
     blk && /^\)/ {blk=0; next}
     /^replace / || blk { sub(/^replace /, ""); sub(/\/\/.*/, ""); if ($0 ~ /=>/) print }' "$src/go.mod" |
	while read -r old a b c d; do
		# old [oldVersion] => new [newVersion]
		if [ "$a" = "=>" ]; then new=$b newv=$c; else old="$old@$a" new=$c newv=$d; fi
		case "$new" in
		./* | ../*) go mod edit -require "${old%@*}@$version" ;;
		*) go mod edit -replace "$old=$new${newv:+@$newv}" ;;
		esac
	done
printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$module" >tools.go
go mod tidy >&2
nice go build -trimpath -o "$out" "$module"
