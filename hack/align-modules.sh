#!/usr/bin/env bash
# align-modules: every go.mod in the repository requires the same version of
# each dependency (tests/modules: TestOneVersionOfEachDependency). The version
# is the go command's own minimal version selection over all the modules at
# once (a throwaway go.work), written back into each go.mod and tidied, until
# nothing changes (tidying one module can raise a version another requires).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t mods < <(find . -name go.mod -not -path './.git/*' -not -path '*/testdata/*' -not -path './bin/*' -printf '%h\n' | sort)
cleanup() { rm -f go.work go.work.sum; }
trap cleanup EXIT

# requirements MODDIR: "path version" for each require line of its go.mod.
requirements() {
  go mod edit -print "$1/go.mod" | awk '
    /^require \(/ { inblock = 1; next }
    inblock && /^\)/ { inblock = 0; next }
    inblock && NF >= 2 { print $1, $2; next }
    /^require [^(]/ { print $2, $3 }'
}

for round in 1 2 3 4 5 6; do
  cleanup
  go work init "${mods[@]}"
  declare -A selected=()
  while read -r path version; do
    [ -n "$version" ] && selected[$path]=$version
  done < <(go list -m -f '{{.Path}} {{.Version}}' all)
  cleanup
  changed=0
  for m in "${mods[@]}"; do
    while read -r path version; do
      want=${selected[$path]:-}
      if [ -n "$want" ] && [ "$want" != "$version" ]; then
        echo "$m: $path $version -> $want"
        go mod edit -require="$path@$want" "$m/go.mod"
        changed=1
      fi
    done < <(requirements "$m")
    (cd "$m" && go mod tidy)
  done
  unset selected
  [ "$changed" = 0 ] && exit 0
done
echo "align-modules: still changing after 6 rounds" >&2
exit 1
