#!/usr/bin/env bash
# make demo: start the bundled AWS fake with example secrets, validate the
# demo SecretProviderClass and mount it with coffer, then show the files.
# No AWS account is needed: the fake speaks the real AWS wire protocols and
# coffer reaches it through the standard AWS_ENDPOINT_URL setting.
# Headings are bold on a terminal only, never with NO_COLOR set
# (https://no-color.org) or in a pipe or log.
set -euo pipefail
cd "$(dirname "$0")/.."

spc=deployment/examples/demo/secretproviderclass.yaml
out=${DEMO_OUT:-demo-out}
bin=${DEMO_BIN:-./bin} # where make build puts coffer and fakeaws
work=$(mktemp -d)
fake_pid=
cleanup() {
	[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

bold= plain=
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
	bold=$'\033[1m' plain=$'\033[0m'
fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

step "Starting the AWS fake (Secrets Manager, Parameter Store) with demo data"
"$bin/fakeaws" --seed tests/fakeaws/testdata/demo-seed.yaml --ready-file "$work/url" >"$work/fake.out" 2>"$work/fake.log" &
fake_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
[ -s "$work/url" ] || { echo "the fake did not start:"; cat "$work/fake.log"; exit 1; }
url=$(cat "$work/url")
echo "listening on $url"

# Standard AWS SDK settings: the endpoint override and the fake's demo key.
export AWS_ENDPOINT_URL="$url" AWS_ACCESS_KEY_ID=AKIDDEMO AWS_SECRET_ACCESS_KEY=demo-secret-key
export AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE

step "coffer validate $spc"
"$bin/coffer" validate "$spc" | tee "$work/valid.out"

step "coffer validate lists every mistake at once: a misspelt key (leaving objectType unset), a bad file mode, an alias escaping the mount"
cat >"$work/broken.yaml" <<'YAML'
objects: |
  - objectName: "prod/db"
    objectTpye: "secretsmanager"
  - objectName: "prod/api-key"
    objectType: "secretsmanager"
    objectAlias: "../escape"
    filePermission: "999"
YAML
"$bin/coffer" validate "$work/broken.yaml" || true

step "coffer mount --spc $spc --out $out"
rm -rf "$out"
"$bin/coffer" mount --spc "$spc" --out "$out"

step "The files, as the driver would write them into the pod"
(cd "$out" && ls -lA)
for f in db-username db-port db-host token token-stable flags.json .pgpass; do
	path="$out/$f"
	[ -f "$path" ] || path="$out/_app_prod_${f}"
	printf '%-34s %s\n' "$path" "$(cat "$path")"
done
echo "(demo values only: coffer itself never prints a secret value)"

step "AWS calls the mount made (from the fake's log)"
grep -o 'operation=[A-Za-z]* region=[a-z0-9-]*' "$work/fake.log" | sort | uniq -c || true
# The punchline: batching. The AWS provider reads each secret with a call of
# its own (parameters with GetParameters by 10), on every mount and every
# rotation poll, and adds an STS call per mount for the pod's role.
calls=$(grep -c 'operation=' "$work/fake.log" || true)
objects=$(sed -n 's/.* ok, \([0-9]*\) objects, \([0-9]*\) files.*/\1/p' "$work/valid.out")
files=$(sed -n 's/.* ok, \([0-9]*\) objects, \([0-9]*\) files.*/\2/p' "$work/valid.out")
secrets=$(grep -c 'objectType: "secretsmanager"' "$spc" || true)
params=$(grep -c 'objectType: "ssmparameter"' "$spc" || true)
echo "=> $calls AWS calls for $objects objects ($files files); one call per object would be $objects, and the AWS provider makes $((secrets + (params + 9) / 10)) ($secrets GetSecretValue, $(((params + 9) / 10)) GetParameters) plus an STS call on every mount and rotation poll."
