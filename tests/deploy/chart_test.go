package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/lint/support"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// valueSets are the chart configurations the tests render, check and
// dry-run: the default and the variations users reach for.
var valueSets = []struct {
	name, values string
	check        func(t *testing.T, objs []*unstructured.Unstructured)
}{
	{name: "default", values: ``, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		wantKinds(t, objs, "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
		wantRules(t, objs, "serviceaccounts", "nodes", "events (create)")
		args := daemonArgs(t, objs)
		for _, want := range []string{"serve", "--provider-dir=/var/run/secrets-store-csi-providers", "--provider-name=aws", "--log-level=info"} {
			if !slices.Contains(args, want) {
				t.Errorf("args %v lack %s", args, want)
			}
		}
		if hasFlag(args, "region") || hasFlag(args, "fips") {
			t.Errorf("args %v set --region or --fips by default", args)
		}
		// Probes on the health listener, which serves /readyz.
		c := container(t, find(t, objs, "DaemonSet", "coffer"), "coffer")
		if !slices.Contains(args, "--health-addr=:8081") || !slices.Contains(args, "--metrics-addr=:8080") {
			t.Errorf("args %v: want the health and metrics listeners on", args)
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe"} {
			p, _ := c[probe].(map[string]any)
			path, _, _ := unstructured.NestedString(p, "httpGet", "path")
			port, _, _ := unstructured.NestedString(p, "httpGet", "port")
			if path != "/readyz" || port != "health" {
				t.Errorf("%s %v: want /readyz on the health port", probe, p)
			}
		}
	}},
	{name: "region set: no access to nodes", values: `region: eu-west-1`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		wantRules(t, objs, "serviceaccounts", "events (create)")
		if args := daemonArgs(t, objs); !slices.Contains(args, "--region=eu-west-1") {
			t.Errorf("args %v lack --region=eu-west-1", args)
		}
	}},
	{name: "alongside the AWS provider", values: `
provider: {name: coffer, dir: /etc/kubernetes/secrets-store-csi-providers}
fips: true
dualStack: true
logLevel: debug
logFormat: text
mountTimeout: 45s
shutdownTimeout: 1m
cache: {ttl: "0", maxBytes: 0}
podIdentity: {timeout: 1500ms, attempts: 5}
awsQuota: {ssmHigherThroughput: true, getParameters: 5000, getParametersByPath: 200, nodeShare: 0.05, remountJitter: 0s}
extraArgs: ["--max-objects=512", "--fetch-concurrency=16", "--sts-audience=sts.amazonaws.com"]
extraEnv: [{name: HTTPS_PROXY, value: "http://proxy.internal:3128"}]
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		args := daemonArgs(t, objs)
		for _, want := range []string{"--provider-name=coffer", "--provider-dir=/etc/kubernetes/secrets-store-csi-providers", "--fips", "--dual-stack", "--cache-ttl=0", "--max-objects=512",
			"--ssm-higher-throughput", "--aws-quota-get-parameters=5000", "--aws-quota-get-parameters-by-path=200", "--aws-quota-node-share=0.05", "--remount-jitter=0s"} {
			if !slices.Contains(args, want) {
				t.Errorf("args %v lack %s", args, want)
			}
		}
		ds := find(t, objs, "DaemonSet", "")
		if got, _, _ := unstructured.NestedInt64(ds.Object, "spec", "template", "spec", "terminationGracePeriodSeconds"); got != 70 {
			t.Errorf("terminationGracePeriodSeconds = %d, want 70 (1m shutdown + 10s)", got)
		}
		vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
		if hp := vols[0].(map[string]any)["hostPath"].(map[string]any)["path"]; hp != "/etc/kubernetes/secrets-store-csi-providers" {
			t.Errorf("hostPath %v", hp)
		}
	}},
	{name: "pinned digest, existing ServiceAccount, no RBAC", values: `
image: {repository: registry.example.com/mirror/coffer, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
serviceAccount: {create: false, name: coffer-provider}
rbac: {create: false}
fullnameOverride: secrets-provider
priorityClassName: ""
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		// The events policy holds whatever RBAC is granted by others.
		wantKinds(t, objs, "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
		ds := find(t, objs, "DaemonSet", "secrets-provider")
		c := container(t, ds, "coffer")
		if c["image"] != "registry.example.com/mirror/coffer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
			t.Errorf("image %v", c["image"])
		}
		if sa, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName"); sa != "coffer-provider" {
			t.Errorf("serviceAccountName %q", sa)
		}
		if _, found, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "priorityClassName"); found {
			t.Error("priorityClassName rendered although empty")
		}
	}},
	{name: "scheduling and metadata", values: `
tolerations: [{key: dedicated, operator: Equal, value: secrets, effect: NoSchedule}]
nodeSelector: {kubernetes.io/os: linux, node.kubernetes.io/instance-type: m7g.large}
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: eks.amazonaws.com/compute-type, operator: NotIn, values: [fargate]}]}]}}}
updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 20%}}
resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}
podAnnotations: {prometheus.io/scrape: "false"}
podLabels: {team: platform}
commonLabels: {cost-center: "1234"}
serviceAccount: {annotations: {example.com/owner: platform}}
hostNetwork: true
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		ds := find(t, objs, "DaemonSet", "")
		if dns, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "dnsPolicy"); dns != "ClusterFirstWithHostNet" {
			t.Errorf("hostNetwork without dnsPolicy ClusterFirstWithHostNet: %q", dns)
		}
		for _, o := range objs {
			if o.GetLabels()["cost-center"] != "1234" {
				t.Errorf("%s lacks commonLabels", ref(o))
			}
		}
	}},
	{name: "metrics scraped by the Prometheus Operator", values: `
metrics: {port: 9090, namespaceLabel: true, serviceMonitor: {enabled: true, interval: 1m, labels: {release: prometheus}}}
health: {port: 9091}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		wantKinds(t, objs, "ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service", "ServiceAccount", "ServiceMonitor", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
		args := daemonArgs(t, objs)
		for _, want := range []string{"--metrics-addr=:9090", "--health-addr=:9091", "--metrics-namespace-label"} {
			if !slices.Contains(args, want) {
				t.Errorf("args %v lack %s", args, want)
			}
		}
		svc := find(t, objs, "Service", "coffer-metrics")
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		ds := find(t, objs, "DaemonSet", "coffer")
		podLabels, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "template", "metadata", "labels")
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("the metrics Service selects %s=%s, the pods have %q", k, v, podLabels[k])
			}
		}
		sm := find(t, objs, "ServiceMonitor", "coffer")
		if sm.GetLabels()["release"] != "prometheus" {
			t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
		}
	}},
	{name: "no health or metrics listeners", values: `
health: {enabled: false}
metrics: {enabled: false}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		args := daemonArgs(t, objs)
		if hasFlag(args, "metrics-addr") || hasFlag(args, "health-addr") {
			t.Errorf("args %v", args)
		}
		c := container(t, find(t, objs, "DaemonSet", "coffer"), "coffer")
		if c["livenessProbe"] != nil || c["readinessProbe"] != nil || c["ports"] != nil {
			t.Errorf("probes or ports without listeners: %v", c)
		}
	}},
	{name: "Secret sync at mount and by the controller", values: `
sync: {atMount: true, controller: {enabled: true, extraArgs: ["--token-ttl=20m"]}}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		if !slices.Contains(daemonArgs(t, objs), "--sync-secrets") {
			t.Error("the DaemonSet does not run --sync-secrets")
		}
		role := find(t, objs, "ClusterRole", "coffer")
		if got := ruleSummary(role); !slices.Equal(got, []string{
			"/serviceaccounts:get", "/nodes:get", "/events:create", "secrets-store.csi.x-k8s.io/secretproviderclasses:get",
			"secrets-store.csi.x-k8s.io/secretproviderclasses/finalizers:update",
			"/secrets:get,create,patch,delete", "/events:create"}) {
			t.Errorf("coffer's ClusterRole with sync at mount: %v", got)
		}
		wantKinds(t, kinds(objs, "Deployment"), "Deployment")
		dep := find(t, objs, "Deployment", "coffer-sync")
		c := container(t, dep, "sync")
		if cmd := stringList(c["command"]); !slices.Equal(cmd, []string{"/usr/local/bin/coffer-controller"}) {
			t.Errorf("the sync Deployment's command %v, want the controller's binary", cmd)
		}
		args := stringList(c["args"])
		if args[0] != "sync" || !slices.Contains(args, "--token-ttl=20m") || !slices.Contains(args, "--provider-name=aws") {
			t.Errorf("coffer-controller sync args %v", args)
		}
		if sa, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName"); sa != "coffer-sync" {
			t.Errorf("coffer-controller sync runs as %q", sa)
		}
		if nonRoot, _, _ := unstructured.NestedBool(dep.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); !nonRoot {
			t.Error("coffer-controller sync runs as root")
		}
		find(t, objs, "ClusterRole", "coffer-sync")
		find(t, objs, "ClusterRole", "coffer-sync-nodes")
		find(t, objs, "Role", "coffer-sync-leader-election")
		find(t, objs, "ValidatingAdmissionPolicy", "coffer-sync-token-audiences")
		find(t, objs, "ValidatingAdmissionPolicyBinding", "coffer-sync-token-audiences")
		find(t, objs, "ValidatingAdmissionPolicy", "coffer-secret-writes")
		find(t, objs, "ValidatingAdmissionPolicyBinding", "coffer-secret-writes")
	}},
	{name: "workload restarts by the controller", values: `
sync: {controller: {enabled: true, restarts: {enabled: true, debounce: 1m}}}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		args := stringList(container(t, find(t, objs, "Deployment", "coffer-sync"), "sync")["args"])
		if !slices.Contains(args, "--restart-workloads") || !slices.Contains(args, "--restart-debounce=1m") {
			t.Errorf("coffer-controller sync args %v", args)
		}
		if got := ruleSummary(find(t, objs, "ClusterRole", "coffer-sync")); !slices.Contains(got, "apps/deployments:list,watch,patch") ||
			!slices.Contains(got, "/pods:list,watch") || !slices.Contains(got, "secrets-store.csi.x-k8s.io/secretproviderclasspodstatuses:list,watch") {
			t.Errorf("coffer-controller sync's ClusterRole: %v", got)
		}
		find(t, objs, "ValidatingAdmissionPolicy", "coffer-sync-workload-restarts")
		find(t, objs, "ValidatingAdmissionPolicyBinding", "coffer-sync-workload-restarts")
		if slices.Contains(daemonArgs(t, objs), "--restart-workloads") {
			t.Error("the DaemonSet restarts workloads")
		}
		if !slices.Contains(daemonArgs(t, objs), "--rotation-events") {
			t.Error("the DaemonSet records no rotation events")
		}
	}},
	{name: "no restarts unless enabled", values: `
sync: {controller: {enabled: true}}
rotationEvents: {enabled: false}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		args := stringList(container(t, find(t, objs, "Deployment", "coffer-sync"), "sync")["args"])
		if slices.Contains(args, "--restart-workloads") || slices.Contains(daemonArgs(t, objs), "--rotation-events") {
			t.Errorf("args %v / %v", args, daemonArgs(t, objs))
		}
		for _, r := range ruleSummary(find(t, objs, "ClusterRole", "coffer-sync")) {
			if strings.HasPrefix(r, "apps/") || strings.HasPrefix(r, "/pods") {
				t.Errorf("coffer-controller sync's ClusterRole without restarts: %s", r)
			}
		}
		if got := ruleSummary(find(t, objs, "ClusterRole", "coffer")); slices.Contains(got, "/events:create") {
			t.Errorf("coffer's ClusterRole without rotation events: %v", got)
		}
		for _, p := range kinds(objs, "ValidatingAdmissionPolicy") {
			if strings.HasSuffix(p.GetName(), "-workload-restarts") || strings.HasSuffix(p.GetName(), "-pod-events") {
				t.Errorf("%s rendered", ref(p))
			}
		}
	}},
	{name: "Secret sync at mount in listed namespaces", values: `
sync: {atMount: true, atMountNamespaces: [team-a, team-b]}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		if got := ruleSummary(find(t, objs, "ClusterRole", "coffer")); !slices.Equal(got, []string{"/serviceaccounts:get", "/nodes:get", "/events:create"}) {
			t.Errorf("coffer's ClusterRole with namespaced sync at mount: %v", got)
		}
		var nss []string
		for _, r := range kinds(objs, "Role") {
			if got := ruleSummary(r); r.GetName() != "coffer-sync-at-mount" || !slices.Equal(got, []string{
				"secrets-store.csi.x-k8s.io/secretproviderclasses:get", "secrets-store.csi.x-k8s.io/secretproviderclasses/finalizers:update",
				"/secrets:get,create,patch,delete", "/events:create"}) {
				t.Errorf("Role %s/%s: %v", r.GetNamespace(), r.GetName(), got)
			}
			nss = append(nss, r.GetNamespace())
		}
		if !slices.Equal(nss, []string{"team-a", "team-b"}) || len(kinds(objs, "RoleBinding")) != 2 {
			t.Errorf("Roles in %v, want team-a and team-b, each bound", nss)
		}
		find(t, objs, "ValidatingAdmissionPolicy", "coffer-secret-writes")
		find(t, objs, "ValidatingAdmissionPolicy", "coffer-pod-events")
		if len(kinds(objs, "ValidatingAdmissionPolicy")) != 2 {
			t.Error("a token audience policy without the sync controller")
		}
	}},
	{name: "no admission policies (Kubernetes before 1.30)", values: `
sync: {atMount: true, controller: {enabled: true, namespaces: [team-a]}}
admissionPolicy: {enabled: false}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		if n := len(kinds(objs, "ValidatingAdmissionPolicy")) + len(kinds(objs, "ValidatingAdmissionPolicyBinding")); n != 0 {
			t.Errorf("%d admission policy objects, want none", n)
		}
	}},
	{name: "Secret sync in one namespace, region set", values: `
region: eu-central-1
sync: {controller: {enabled: true, namespace: team-a, replicas: 1, serviceAccount: {annotations: {example.com/owner: platform}}}}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		role := find(t, objs, "Role", "coffer-sync")
		if role.GetNamespace() != "team-a" {
			t.Errorf("the sync Role is in %q", role.GetNamespace())
		}
		for _, r := range kinds(objs, "ClusterRole") {
			if r.GetName() != "coffer" {
				t.Errorf("namespaced sync with a region still creates ClusterRole %s", r.GetName())
			}
		}
		if args := stringList(container(t, find(t, objs, "Deployment", "coffer-sync"), "sync")["args"]); !slices.Contains(args, "--namespaces=team-a") || !slices.Contains(args, "--region=eu-central-1") {
			t.Errorf("coffer-controller sync args %v", args)
		}
	}},
	{name: "Secret sync in namespaced mode", values: `
sync: {controller: {enabled: true, namespace: team-a, namespaces: [team-a, team-b], restarts: {enabled: true}}}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		var in []string
		for _, r := range kinds(objs, "Role") {
			if r.GetName() == "coffer-sync" {
				in = append(in, r.GetNamespace())
			}
		}
		if !slices.Equal(in, []string{"team-a", "team-b"}) {
			t.Errorf("sync Roles in %q, want team-a and team-b", in)
		}
		// No ClusterRole grants anything on Secrets, tokens, classes or
		// workloads: the nodes' region label only.
		for _, r := range kinds(objs, "ClusterRole") {
			if r.GetName() == "coffer-sync" || slices.ContainsFunc(ruleSummary(r), func(s string) bool { return strings.Contains(s, "secrets") || strings.Contains(s, "token") }) {
				t.Errorf("namespaced mode renders ClusterRole %s: %v", r.GetName(), ruleSummary(r))
			}
		}
		if args := stringList(container(t, find(t, objs, "Deployment", "coffer-sync"), "sync")["args"]); !slices.Contains(args, "--namespaces=team-a,team-b") {
			t.Errorf("coffer-controller sync args %v", args)
		}
	}},
	{name: "cluster mode without the admission policy, risk accepted", values: `
sync: {controller: {enabled: true, acceptRiskTokensForAnyServiceAccount: true}}
admissionPolicy: {enabled: false}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		find(t, objs, "ClusterRole", "coffer-sync")
	}},
	{name: "change events", values: `
events:
  enabled: true
  queueURL: https://sqs.eu-west-1.amazonaws.com/111122223333/coffer-events-prod
  canary: {parameter: /coffer/canary/prod, secret: coffer/canary/prod}
  serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/coffer-events-prod"}}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		args := daemonArgs(t, objs)
		for _, want := range []string{"--events-ledger=kube-system/coffer-changes", "--event-max-age=15m", "--event-proof-max-age=2m", "--event-clock-skew=2s"} {
			if !slices.Contains(args, want) {
				t.Errorf("the DaemonSet's args %v lack %s", args, want)
			}
		}
		dep := find(t, objs, "Deployment", "coffer-events")
		c := container(t, dep, "events")
		if cmd := stringList(c["command"]); !slices.Equal(cmd, []string{"/usr/local/bin/coffer-controller"}) {
			t.Errorf("the events Deployment's command %v, want the controller's binary", cmd)
		}
		if got, want := stringList(c["args"]), []string{"events",
			"--queue-url=https://sqs.eu-west-1.amazonaws.com/111122223333/coffer-events-prod", "--ledger=coffer-changes",
			"--canary-parameter=/coffer/canary/prod", "--canary-secret=coffer/canary/prod", "--canary-interval=30s",
			"--ledger-retention=30m", "--leader-election-id=coffer-events", "--log-level=info", "--log-format=json",
			"--metrics-addr=:8080"}; !slices.Equal(got, want) {
			t.Errorf("coffer-controller events args\n%v\nwant\n%v", got, want)
		}
		if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 2 {
			t.Errorf("the events Deployment has %d replicas, want 2 (one leads)", r)
		}
		spec, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
		if spec["serviceAccountName"] != "coffer-events" || spec["hostNetwork"] != nil {
			t.Errorf("coffer-controller events runs as %v (hostNetwork %v)", spec["serviceAccountName"], spec["hostNetwork"])
		}
		if nonRoot, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot"); !nonRoot {
			t.Error("coffer-controller events runs as root")
		}
		sc, _ := c["securityContext"].(map[string]any)
		if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
			t.Errorf("coffer-controller events securityContext %v", sc)
		}
		if vols, _, _ := unstructured.NestedSlice(spec, "volumes"); len(vols) != 0 {
			t.Errorf("coffer-controller events mounts %v", vols)
		}
		sa := find(t, objs, "ServiceAccount", "coffer-events")
		if got := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]; got != "arn:aws:iam::111122223333:role/coffer-events-prod" {
			t.Errorf("the events ServiceAccount's role %q", got)
		}
		if got, want := namedRuleSummary(find(t, objs, "Role", "coffer-events")), []string{
			"coordination.k8s.io/leases:create", "coordination.k8s.io/leases[coffer-events]:get,update",
			"/configmaps:create", "/configmaps[coffer-changes]:get,update,patch,delete", "/events:create,patch",
		}; !slices.Equal(got, want) {
			t.Errorf("coffer-controller events' Role %v, want %v", got, want)
		}
		if got, want := namedRuleSummary(find(t, objs, "Role", "coffer-events-ledger")), []string{"/configmaps[coffer-changes]:get,list,watch"}; !slices.Equal(got, want) {
			t.Errorf("the nodes' ledger Role %v, want %v", got, want)
		}
		for name, sa := range map[string]string{"coffer-events": "coffer-events", "coffer-events-ledger": "coffer"} {
			b := find(t, objs, "RoleBinding", name)
			subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
			if role, _, _ := unstructured.NestedString(b.Object, "roleRef", "name"); role != name || len(subjects) != 1 || subjects[0].(map[string]any)["name"] != sa {
				t.Errorf("RoleBinding %s binds %s to %v, want %s to %s", name, role, subjects, name, sa)
			}
		}
		// Nothing cluster-wide, and nothing beyond the release namespace.
		for _, o := range objs {
			if o.GetLabels()["app.kubernetes.io/component"] == "events" && o.GetNamespace() != "kube-system" {
				t.Errorf("%s outside the release namespace", ref(o))
			}
		}
		if got := ruleSummary(find(t, objs, "ClusterRole", "coffer")); slices.ContainsFunc(got, func(r string) bool { return strings.Contains(r, "configmaps") }) {
			t.Errorf("coffer's ClusterRole reaches ConfigMaps: %v", got)
		}
	}},
	{name: "change events: renamed ledger, no metrics, defaults for the canaries", values: `
fullnameOverride: vault
events: {enabled: true, queueURL: "https://sqs.us-east-1.amazonaws.com/111122223333/q", ledger: ledger, maxAge: 5m, canary: {interval: 1m}}
metrics: {enabled: false}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		if args := daemonArgs(t, objs); !slices.Contains(args, "--events-ledger=kube-system/ledger") || !slices.Contains(args, "--event-max-age=5m") {
			t.Errorf("the DaemonSet's args %v", args)
		}
		c := container(t, find(t, objs, "Deployment", "vault-events"), "events")
		args := stringList(c["args"])
		if hasFlag(args, "canary-parameter") || hasFlag(args, "canary-secret") || hasFlag(args, "metrics-addr") || c["livenessProbe"] != nil {
			t.Errorf("coffer-controller events args %v, probe %v", args, c["livenessProbe"])
		}
		for _, want := range []string{"--ledger=ledger", "--canary-interval=1m", "--leader-election-id=vault-events"} {
			if !slices.Contains(args, want) {
				t.Errorf("coffer-controller events args %v lack %s", args, want)
			}
		}
		if got := namedRuleSummary(find(t, objs, "Role", "vault-events-ledger")); !slices.Equal(got, []string{"/configmaps[ledger]:get,list,watch"}) {
			t.Errorf("the nodes' ledger Role %v", got)
		}
	}},
	{name: "no change events unless enabled", values: `
events: {queueURL: "https://sqs.us-east-1.amazonaws.com/111122223333/q"}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		if args := daemonArgs(t, objs); hasFlag(args, "events-ledger") || hasFlag(args, "event-max-age") {
			t.Errorf("the DaemonSet's args %v", args)
		}
		for _, o := range objs {
			if o.GetLabels()["app.kubernetes.io/component"] == "events" || strings.HasSuffix(o.GetName(), "-events-ledger") {
				t.Errorf("%s rendered with events disabled", ref(o))
			}
		}
	}},
	{name: "with the driver chart", values: `
secrets-store-csi-driver:
  install: true
  syncSecret: {enabled: true}
`, check: func(t *testing.T, objs []*unstructured.Unstructured) {
		csi := find(t, objs, "CSIDriver", "secrets-store.csi.k8s.io")
		reqs, _, _ := unstructured.NestedSlice(csi.Object, "spec", "tokenRequests")
		var auds []string
		for _, r := range reqs {
			auds = append(auds, fmt.Sprint(r.(map[string]any)["audience"]))
		}
		if !slices.Equal(auds, []string{"sts.amazonaws.com", "pods.eks.amazonaws.com"}) {
			t.Errorf("CSIDriver tokenRequests audiences %v", auds)
		}
		if rr, _, _ := unstructured.NestedBool(csi.Object, "spec", "requiresRepublish"); !rr {
			t.Error("CSIDriver without requiresRepublish: no rotation")
		}
		// The driver reads sockets from the directory coffer writes to.
		var driverDS *unstructured.Unstructured
		for _, ds := range kinds(objs, "DaemonSet") {
			if ds.GetName() != "coffer" {
				driverDS = ds
			}
		}
		if driverDS == nil {
			t.Fatal("no driver DaemonSet")
		}
		b, _ := json.Marshal(driverDS.Object)
		if !strings.Contains(string(b), "/var/run/secrets-store-csi-providers") {
			t.Error("the driver DaemonSet does not mount /var/run/secrets-store-csi-providers")
		}
	}},
}

// ruleSummary lists a role's rules as "group/resource:verbs".
func ruleSummary(role *unstructured.Unstructured) []string {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var out []string
	for _, r := range rules {
		m := r.(map[string]any)
		for _, g := range stringList(m["apiGroups"]) {
			for _, res := range stringList(m["resources"]) {
				out = append(out, g+"/"+res+":"+strings.Join(stringList(m["verbs"]), ","))
			}
		}
	}
	return out
}

// namedRuleSummary lists a role's rules as "group/resource[names]:verbs",
// the names only where the rule has them.
func namedRuleSummary(role *unstructured.Unstructured) []string {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var out []string
	for _, r := range rules {
		m := r.(map[string]any)
		names := ""
		if n := stringList(m["resourceNames"]); len(n) > 0 {
			names = "[" + strings.Join(n, ",") + "]"
		}
		for _, g := range stringList(m["apiGroups"]) {
			for _, res := range stringList(m["resources"]) {
				out = append(out, g+"/"+res+names+":"+strings.Join(stringList(m["verbs"]), ","))
			}
		}
	}
	return out
}

func wantKinds(t *testing.T, objs []*unstructured.Unstructured, want ...string) {
	t.Helper()
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind())
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
}

// wantRules checks coffer's ClusterRole grants exactly get on the core
// resources listed.
func wantRules(t *testing.T, objs []*unstructured.Unstructured, resources ...string) {
	t.Helper()
	role := find(t, objs, "ClusterRole", "coffer")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var got []string
	for _, r := range rules {
		m := r.(map[string]any)
		if g := stringList(m["apiGroups"]); !slices.Equal(g, []string{""}) {
			t.Errorf("rule for API groups %v", g)
		}
		if v, res := stringList(m["verbs"]), stringList(m["resources"]); slices.Equal(v, []string{"create"}) && slices.Equal(res, []string{"events"}) {
			got = append(got, "events (create)") // --rotation-events
			continue
		}
		if v := stringList(m["verbs"]); !slices.Equal(v, []string{"get"}) {
			t.Errorf("rule with verbs %v: coffer only gets (and creates events)", v)
		}
		got = append(got, stringList(m["resources"])...)
	}
	if !slices.Equal(got, resources) {
		t.Errorf("ClusterRole grants get on %v, want %v", got, resources)
	}
}

func daemonArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var ds *unstructured.Unstructured
	for _, d := range kinds(objs, "DaemonSet") {
		if d.GetLabels()["app.kubernetes.io/part-of"] == "coffer" {
			ds = d
		}
	}
	if ds == nil {
		t.Fatalf("no coffer DaemonSet in %s", describe(objs))
	}
	return stringList(container(t, ds, "coffer")["args"])
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

func TestChartValueSets(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, "coffer", "kube-system", vs.values)
			vs.check(t, objs)
			checkDaemonSet(t, objs)
		})
	}
}

// checkDaemonSet holds for every configuration: what a node agent with a
// host socket needs, and nothing more.
func checkDaemonSet(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var ds *unstructured.Unstructured
	for _, d := range kinds(objs, "DaemonSet") {
		if d.GetLabels()["app.kubernetes.io/part-of"] == "coffer" {
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no coffer DaemonSet")
	}
	c := container(t, ds, "coffer")
	args := stringList(c["args"])
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("args %v do not start with serve", args)
	}

	// NODE_NAME from the downward API.
	env, _ := c["env"].([]any)
	nodeName := false
	for _, e := range env {
		m := e.(map[string]any)
		if m["name"] == "NODE_NAME" {
			fp, _, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath")
			nodeName = fp == "spec.nodeName"
		}
	}
	if !nodeName {
		t.Error("no NODE_NAME from spec.nodeName")
	}

	// The socket directory: a hostPath mounted where --provider-dir says.
	var dir string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--provider-dir="); ok {
			dir = v
		}
	}
	mounts, _ := c["volumeMounts"].([]any)
	vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
	if len(mounts) != 1 || len(vols) != 1 {
		t.Fatalf("want exactly the provider directory mounted, got mounts %v volumes %v", mounts, vols)
	}
	if mp := mounts[0].(map[string]any)["mountPath"]; mp != dir {
		t.Errorf("provider directory mounted at %v, --provider-dir=%s", mp, dir)
	}
	hp, _ := vols[0].(map[string]any)["hostPath"].(map[string]any)
	if hp["path"] != dir || hp["type"] != "DirectoryOrCreate" {
		t.Errorf("hostPath %v, want %s DirectoryOrCreate", hp, dir)
	}

	// Security: read-only root, no capabilities, no escalation.
	sc, _ := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["privileged"] != false {
		t.Errorf("securityContext %v", sc)
	}
	if drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop"); !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("capabilities dropped: %v, want ALL", drop)
	}
	if add, found, _ := unstructured.NestedStringSlice(sc, "capabilities", "add"); found {
		t.Errorf("capabilities added: %v", add)
	}
	if res, ok := c["resources"].(map[string]any); !ok || res["requests"] == nil || res["limits"] == nil {
		t.Errorf("resources %v: want requests and limits", c["resources"])
	}
	grace, _, _ := unstructured.NestedInt64(ds.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
	if grace < 11 {
		t.Errorf("terminationGracePeriodSeconds %d leaves no time to drain Mounts", grace)
	}
}

// TestHelmLint runs `helm lint --strict` (the Helm SDK's linter) on the
// chart with its defaults and with every value set.
func TestHelmLint(t *testing.T) {
	for _, vs := range valueSets {
		vals := map[string]any{}
		if err := yaml.Unmarshal([]byte(vs.values), &vals); err != nil {
			t.Fatal(err)
		}
		lint := action.NewLint()
		lint.Strict = true
		lint.Namespace = "kube-system"
		res := lint.Run([]string{filepath.Join(repoRoot(t), ChartPath)}, vals)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev { // INFO: "icon is recommended"
				t.Errorf("%s: helm lint: %s", vs.name, m)
			}
		}
		for _, err := range res.Errors {
			t.Errorf("%s: helm lint: %v", vs.name, err)
		}
	}
}

// TestChartFlagsExist checks that every flag the chart renders, in every
// value set, is a flag of `coffer serve` (the DaemonSet), `coffer-controller sync`
// (the sync Deployment) or `coffer-controller events` (the events
// Deployment) in the binary the image holds.
func TestChartFlagsExist(t *testing.T) {
	serve, sync, events := serveFlags(t), commandFlags(t, "sync"), commandFlags(t, "events")
	check := func(set, command string, flags map[string]bool, args []string) {
		if len(args) == 0 || args[0] != command {
			t.Errorf("%s: args %v do not start with %s", set, args, command)
			return
		}
		for _, a := range args[1:] {
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !strings.HasPrefix(a, "--") || !flags[name] {
				t.Errorf("%s: the chart renders %q, which `coffer %s -h` does not list", set, a, command)
			}
		}
	}
	for _, vs := range valueSets {
		objs := render(t, "coffer", "kube-system", vs.values)
		check(vs.name, "serve", serve, daemonArgs(t, objs))
		for _, d := range kinds(objs, "Deployment") {
			switch d.GetLabels()["app.kubernetes.io/component"] {
			case "sync":
				check(vs.name, "sync", sync, stringList(container(t, d, "sync")["args"]))
			case "events":
				check(vs.name, "events", events, stringList(container(t, d, "events")["args"]))
			}
		}
	}
}

// TestChartRejectsBadValues: values.schema.json and the chart's own checks
// fail the install, naming the problem.
func TestChartRejectsBadValues(t *testing.T) {
	tests := map[string]struct{ values, want string }{
		"unknown key":                  {`regoin: us-east-1`, "regoin"},
		"invalid provider name":        {`provider: {name: "my provider"}`, "provider"},
		"relative provider dir":        {`provider: {dir: var/run/providers}`, "dir"},
		"log level":                    {`logLevel: verbose`, "logLevel"},
		"log format":                   {`logFormat: yaml`, "logFormat"},
		"region":                       {`region: useast1`, "region"},
		"duration without unit":        {`mountTimeout: "30"`, "mountTimeout"},
		"zero mount timeout":           {`mountTimeout: 0s`, "mountTimeout"},
		"negative cache ttl":           {`cache: {ttl: "-1s"}`, "ttl"},
		"max staleness without unit":   {`cache: {maxStaleness: "5"}`, "maxStaleness"},
		"negative stale on outage":     {`cache: {serveStaleOnOutage: "-1h"}`, "serveStaleOnOutage"},
		"cache bytes as string":        {`cache: {maxBytes: 64Mi}`, "maxBytes"},
		"pod identity attempts":        {`podIdentity: {attempts: 0}`, "attempts"},
		"node share above 1":           {`awsQuota: {nodeShare: 2}`, "nodeShare"},
		"zero batch quota":             {`awsQuota: {batchGetSecretValue: 0}`, "batchGetSecretValue"},
		"zero throttle cooldown":       {`awsQuota: {throttleCooldown: 0s}`, "throttleCooldown"},
		"pull policy":                  {`image: {pullPolicy: Sometimes}`, "pullPolicy"},
		"digest":                       {`image: {digest: "sha256:abc"}`, "digest"},
		"extra arg not a flag":         {`extraArgs: ["region=us-east-1"]`, "extraArgs"},
		"unknown image key":            {`image: {registry: ghcr.io}`, "registry"},
		"fips as string":               {`fips: "yes"`, "fips"},
		"resources typo":               {`resources: {request: {cpu: 1}}`, "request"},
		"service account without name": {`serviceAccount: {create: false}`, "serviceAccount.name"},
		"driver without audiences": {`
secrets-store-csi-driver: {install: true, tokenRequests: [{audience: example.com}]}`, "tokenRequests"},
		"same health and metrics port":   {`health: {port: 8080}`, "must differ"},
		"ServiceMonitor without metrics": {`metrics: {enabled: false, serviceMonitor: {enabled: true}}`, "needs metrics.enabled"},
		"scrape interval":                {`metrics: {serviceMonitor: {interval: 1.5m}}`, "interval"},
		"sync namespace":                 {`sync: {controller: {enabled: true, namespace: Team_A}}`, "namespace"},
		"sync typo":                      {`sync: {atmount: true}`, "atmount"},
		"sync namespaces":                {`sync: {controller: {enabled: true, namespaces: [team-a, "team a"]}}`, "namespaces"},
		"sync namespaces twice":          {`sync: {controller: {enabled: true, namespaces: [team-a, team-a]}}`, "namespaces"},
		// Cluster-wide create on serviceaccounts/token with nothing to hold
		// the audiences: coffer-controller sync could act as any ServiceAccount.
		"cluster-wide tokens without the policy": {`
sync: {controller: {enabled: true}}
admissionPolicy: {enabled: false}`, "sync.controller.acceptRiskTokensForAnyServiceAccount=true"},
		"sync without a ServiceAccount": {`sync: {controller: {enabled: true, serviceAccount: {create: false}}}`, "sync.controller.serviceAccount.name"},
		"events without a queue":        {`events: {enabled: true}`, "events.queueURL"},
		"events queue URL not a URL":    {`events: {enabled: true, queueURL: coffer-events}`, "queueURL"},
		"events max age without unit":   {`events: {maxAge: "15"}`, "maxAge"},
		"events zero proof age":         {`events: {proofMaxAge: 0s}`, "proofMaxAge"},
		"events ledger name":            {`events: {ledger: Coffer_Changes}`, "ledger"},
		"events typo":                   {`events: {enable: true}`, "enable"},
		"events canary typo":            {`events: {canary: {params: /x}}`, "params"},
		"events extra arg not a flag":   {`events: {extraArgs: ["queue-url=x"]}`, "extraArgs"},
		"events without a ServiceAccount": {`
events: {enabled: true, queueURL: "https://sqs.us-east-1.amazonaws.com/111122223333/q", serviceAccount: {create: false}}`, "events.serviceAccount.name"},
		"driver reading another directory": {`
provider: {dir: /opt/providers}
secrets-store-csi-driver: {install: true}`, "provider.dir"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := renderErr("coffer", "kube-system", tc.values)
			if err == nil {
				t.Fatalf("values\n%s\nrendered without error", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q: %v", tc.want, err)
			}
		})
	}
}

// TestChartDryRun server-side dry-runs every value set against the real
// kube-apiserver: schema errors, unknown fields and admission rejections
// fail.
func TestChartDryRun(t *testing.T) {
	cluster(t)
	for i, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			// Each set in its own namespace and release, as separate installs.
			name := fmt.Sprintf("coffer%d", i)
			dryRun(t, render(t, name, "coffer-"+name, vs.values))
		})
	}
}

// TestChartRBAC installs the chart's ServiceAccounts and RBAC for real and
// asks the apiserver's authoriser what coffer (and coffer-controller sync) may do: what
// they need, and nothing else.
func TestChartRBAC(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	type access struct {
		sa    string // the ServiceAccount's name
		attr  authorizationv1.ResourceAttributes
		allow bool
	}
	spc := func(verb, ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "secrets-store.csi.x-k8s.io", Resource: "secretproviderclasses", Namespace: ns}
	}
	spcFinalizers := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "update", Group: "secrets-store.csi.x-k8s.io", Resource: "secretproviderclasses", Subresource: "finalizers", Namespace: ns}
	}
	core := func(verb, resource, ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Namespace: ns}
	}
	// atMount: sync at mount in team-a; everywhere: in every namespace.
	provider := func(nodes, atMount, everywhere bool) []access {
		return []access{
			{"coffer", core("get", "serviceaccounts", "team-a"), true},
			{"coffer", core("get", "nodes", ""), nodes},
			{"coffer", core("list", "serviceaccounts", "team-a"), false},
			{"coffer", core("watch", "serviceaccounts", ""), false},
			{"coffer", authorizationv1.ResourceAttributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "team-a"}, false},
			{"coffer", core("list", "nodes", ""), false},
			{"coffer", core("get", "pods", "team-a"), false},
			{"coffer", core("get", "secrets", "team-a"), atMount},
			{"coffer", core("create", "secrets", "team-a"), atMount},
			{"coffer", core("list", "secrets", "team-a"), false},
			{"coffer", core("update", "secrets", "team-a"), false},
			// By default no node component may write a Secret anywhere.
			{"coffer", core("patch", "secrets", "kube-system"), everywhere},
			{"coffer", core("delete", "secrets", "kube-system"), everywhere},
			{"coffer", spc("get", "team-a"), atMount},
			{"coffer", spc("list", "team-a"), false},
			{"coffer", spcFinalizers("team-a"), atMount},
			{"coffer", spc("update", "team-a"), false},
			// --rotation-events: create only, never update or delete.
			{"coffer", core("create", "events", "team-a"), true},
			{"coffer", core("update", "events", "team-a"), false},
			{"coffer", core("delete", "events", "team-a"), false},
			// The at-mount recorder is create-only too.
			{"coffer", core("patch", "events", "team-a"), false},
			// Restarts are coffer-controller sync's, never a node's.
			{"coffer", authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "team-a"}, false},
		}
	}
	// coffer-controller sync --restart-workloads in ns (or everywhere, with "").
	restarts := func(ns string, enabled bool) []access {
		other := "team-b"
		if ns == "" {
			ns, other = "team-a", "team-a"
		}
		apps := func(verb, resource, ns string) authorizationv1.ResourceAttributes {
			return authorizationv1.ResourceAttributes{Verb: verb, Group: "apps", Resource: resource, Namespace: ns}
		}
		var out []access
		for _, kind := range []string{"deployments", "statefulsets", "daemonsets"} {
			out = append(out,
				access{"coffer-sync", apps("patch", kind, ns), enabled},
				access{"coffer-sync", apps("watch", kind, ns), enabled},
				access{"coffer-sync", apps("patch", kind, other), enabled && other == ns},
				access{"coffer-sync", apps("update", kind, ns), false},
				access{"coffer-sync", apps("create", kind, ns), false},
				access{"coffer-sync", apps("delete", kind, ns), false})
		}
		return append(out,
			access{"coffer-sync", apps("patch", "replicasets", ns), false},
			access{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments", Subresource: "scale", Namespace: ns}, false},
			access{"coffer-sync", core("list", "pods", ns), enabled},
			access{"coffer-sync", core("delete", "pods", ns), false},
			access{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "watch", Group: "secrets-store.csi.x-k8s.io", Resource: "secretproviderclasspodstatuses", Namespace: ns}, enabled},
			access{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "patch", Group: "secrets-store.csi.x-k8s.io", Resource: "secretproviderclasspodstatuses", Namespace: ns}, false})
	}
	syncController := func(ns string, nodes bool) []access {
		other := "team-b"
		if ns == "" {
			ns, other = "team-a", "team-a"
		}
		inOther := other == ns
		return []access{
			{"coffer-sync", spc("list", ns), true},
			{"coffer-sync", spc("watch", ns), true},
			{"coffer-sync", spc("patch", ns), true},
			{"coffer-sync", spc("list", other), inOther},
			{"coffer-sync", spc("delete", ns), false},
			{"coffer-sync", core("create", "secrets", ns), true},
			{"coffer-sync", core("patch", "secrets", ns), true},
			{"coffer-sync", core("delete", "secrets", ns), true},
			{"coffer-sync", core("create", "secrets", other), inOther},
			{"coffer-sync", core("list", "secrets", ns), true},
			{"coffer-sync", core("watch", "secrets", ns), true},
			{"coffer-sync", core("watch", "secrets", other), inOther},
			{"coffer-sync", core("update", "secrets", ns), false},
			{"coffer-sync", spcFinalizers(ns), true},
			{"coffer-sync", spc("update", ns), false},
			{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: ns}, true},
			{"coffer-sync", core("get", "serviceaccounts", ns), true},
			{"coffer-sync", core("create", "events", ns), true},
			{"coffer-sync", core("get", "nodes", ""), nodes},
			{"coffer-sync", core("get", "pods", ns), false},
		}
	}
	// coffer-controller events, and the nodes' ledger watch, with the
	// release in ns.
	eventsAccess := func(ns string) []access {
		named := func(verb, group, resource, name, ns string) authorizationv1.ResourceAttributes {
			return authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Name: name, Namespace: ns}
		}
		const lease, ledger = "coffer-events", "coffer-changes"
		return []access{
			{"coffer-events", named("create", "coordination.k8s.io", "leases", "", ns), true},
			{"coffer-events", named("get", "coordination.k8s.io", "leases", lease, ns), true},
			{"coffer-events", named("update", "coordination.k8s.io", "leases", lease, ns), true},
			{"coffer-events", named("update", "coordination.k8s.io", "leases", "coffer-sync", ns), false},
			{"coffer-events", named("delete", "coordination.k8s.io", "leases", lease, ns), false},
			{"coffer-events", named("create", "coordination.k8s.io", "leases", "", "team-a"), false},
			{"coffer-events", named("create", "", "configmaps", "", ns), true},
			{"coffer-events", named("get", "", "configmaps", ledger, ns), true},
			{"coffer-events", named("update", "", "configmaps", ledger, ns), true},
			{"coffer-events", named("patch", "", "configmaps", ledger, ns), true},
			// Delete: an unreadable ledger is replaced by a new object (a new
			// UID), never rewritten in place.
			{"coffer-events", named("delete", "", "configmaps", ledger, ns), true},
			{"coffer-events", named("delete", "", "configmaps", "kube-root-ca.crt", ns), false},
			{"coffer-events", named("get", "", "configmaps", "kube-root-ca.crt", ns), false},
			{"coffer-events", named("list", "", "configmaps", "", ns), false},
			{"coffer-events", named("get", "", "configmaps", ledger, "team-a"), false},
			{"coffer-events", named("create", "", "events", "", ns), true},
			{"coffer-events", named("patch", "", "events", "", ns), true},
			{"coffer-events", named("create", "", "events", "", "team-a"), false},
			{"coffer-events", named("get", "", "secrets", "", ns), false},
			{"coffer-events", named("get", "", "serviceaccounts", "", ns), false},
			{"coffer", named("get", "", "configmaps", ledger, ns), true},
			{"coffer", named("list", "", "configmaps", ledger, ns), true},
			{"coffer", named("watch", "", "configmaps", ledger, ns), true},
			{"coffer", named("list", "", "configmaps", "", ns), false},
			{"coffer", named("get", "", "configmaps", "kube-root-ca.crt", ns), false},
			{"coffer", named("update", "", "configmaps", ledger, ns), false},
			{"coffer", named("patch", "", "configmaps", ledger, ns), false},
			{"coffer", named("watch", "", "configmaps", ledger, "team-a"), false},
			{"coffer", named("update", "coordination.k8s.io", "leases", lease, ns), false},
		}
	}
	for _, tc := range []struct {
		release, values string
		checks          []access
	}{
		{"rbac-default", ``, provider(true, false, false)},
		{"rbac-region", `region: us-east-1`, provider(false, false, false)},
		{"rbac-sync", `sync: {atMount: true, controller: {enabled: true}}`, append(append(provider(true, true, true), syncController("", true)...), restarts("", false)...)},
		{"rbac-sync-ns", `{region: us-east-1, sync: {controller: {enabled: true, namespace: team-a}}}`, append(provider(false, false, false), syncController("team-a", false)...)},
		{"rbac-restarts", `{sync: {controller: {enabled: true, restarts: {enabled: true}}}}`, append(append(provider(true, false, false), syncController("", true)...), restarts("", true)...)},
		// Namespaced mode in two namespaces: Roles there, nothing
		// cluster-wide (team-b is outside; see syncController).
		{"rbac-sync-namespaces", `{region: us-east-1, sync: {controller: {enabled: true, namespaces: [team-a, team-c], restarts: {enabled: true}}}}`, append(append(append(provider(false, false, false), syncController("team-a", false)...), syncController("team-c", false)...), restarts("team-c", true)...)},
		{"rbac-restarts-ns", `{region: us-east-1, sync: {controller: {enabled: true, namespace: team-a, restarts: {enabled: true}}}}`, append(append(provider(false, false, false), syncController("team-a", false)...), restarts("team-a", true)...)},
		{"rbac-no-rotation-events", `{rotationEvents: {enabled: false}}`, []access{
			{"coffer", core("create", "events", "team-a"), false},
		}},
		// Change events: coffer-controller events writes its Lease and the
		// ledger ConfigMap, by name, in the release namespace; nodes read
		// that ConfigMap and nothing else.
		{"rbac-events", `{region: us-east-1, events: {enabled: true, queueURL: "https://sqs.us-east-1.amazonaws.com/111122223333/q"}}`, append(provider(false, false, false), eventsAccess("rbac-events")...)},
		// Sync at mount in listed namespaces only: no node holds Secret
		// access anywhere else.
		{"rbac-at-mount-ns", `{region: us-east-1, sync: {atMount: true, atMountNamespaces: [team-a]}}`, append(provider(false, true, false),
			access{"coffer", core("get", "secrets", "team-b"), false},
			access{"coffer", core("create", "secrets", "team-b"), false},
			access{"coffer", spc("get", "team-b"), false},
		)},
	} {
		t.Run(tc.release, func(t *testing.T) {
			ns := tc.release
			if err := c.EnsureNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			for _, team := range []string{"team-a", "team-c"} {
				if err := c.EnsureNamespace(ctx, team); err != nil {
					t.Fatal(err)
				}
			}
			// Release names of their own: ServiceAccounts are the release's
			// full names, coffer and coffer-sync with release "coffer".
			objs := render(t, "coffer", ns, tc.values)
			for _, o := range objs {
				switch o.GetKind() {
				case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
					if o.GetNamespace() == "" && (o.GetKind() == "ClusterRoleBinding" || o.GetKind() == "ClusterRole") {
						// Cluster-scoped names would collide across cases.
						o.SetName(ns + "-" + o.GetName())
						if o.GetKind() == "ClusterRoleBinding" {
							_ = unstructured.SetNestedField(o.Object, ns+"-"+fmt.Sprint(o.Object["roleRef"].(map[string]any)["name"]), "roleRef", "name")
						}
					}
					if _, err := c.Apply(ctx, o, false); err != nil {
						t.Fatalf("%s: %v", ref(o), err)
					}
				}
			}
			// Leases: only in the release namespace.
			if strings.Contains(tc.values, "controller") {
				tc.checks = append(tc.checks,
					access{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: ns}, true},
					access{"coffer-sync", authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"}, false})
			}
			// The authoriser sees new bindings through an informer: ask
			// again until the answers settle (every grant shows up), then
			// judge them.
			allowed := func(ch access) bool {
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               fmt.Sprintf("system:serviceaccount:%s:%s", ns, ch.sa),
					Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
					ResourceAttributes: &ch.attr,
				}}
				got, err := c.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return got.Status.Allowed
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				settled := true
				for _, ch := range tc.checks {
					if ch.allow && !allowed(ch) {
						settled = false
					}
				}
				if settled || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for _, ch := range tc.checks {
				if got := allowed(ch); got != ch.allow {
					t.Errorf("%s may %s %s %s/%s in %q: %v, want %v", ch.sa, ch.attr.Verb, ch.attr.Group, ch.attr.Resource, ch.attr.Subresource, ch.attr.Namespace, got, ch.allow)
				}
			}
		})
	}
}

// TestVendoredDriverChart: the driver chart vendored in charts/ is the
// upstream chart of the version Chart.yaml depends on, the version the
// end-to-end suite runs and coffer's go.mod requires, byte for byte as the
// driver's Go module ships it.
func TestVendoredDriverChart(t *testing.T) {
	var chart struct {
		Dependencies []struct{ Name, Version, Repository, Condition string }
	}
	if err := yaml.Unmarshal(readFile(t, ChartPath+"/Chart.yaml"), &chart); err != nil {
		t.Fatal(err)
	}
	if len(chart.Dependencies) != 1 || chart.Dependencies[0].Name != "secrets-store-csi-driver" {
		t.Fatalf("dependencies %+v", chart.Dependencies)
	}
	dep := chart.Dependencies[0]
	if dep.Condition != "secrets-store-csi-driver.install" {
		t.Errorf("condition %q", dep.Condition)
	}
	var vendored struct{ Version string }
	if err := yaml.Unmarshal(readFile(t, ChartPath+"/charts/secrets-store-csi-driver/Chart.yaml"), &vendored); err != nil {
		t.Fatal(err)
	}
	if vendored.Version != dep.Version {
		t.Errorf("vendored driver chart %s, Chart.yaml depends on %s", vendored.Version, dep.Version)
	}
	if !strings.Contains(string(readFile(t, "tests/e2e/hack/provision.sh")), "DRIVER_VERSION:-v"+dep.Version+"}") {
		t.Errorf("the end-to-end suite does not run driver v%s", dep.Version)
	}
	if !strings.Contains(string(readFile(t, "go.mod")), "sigs.k8s.io/secrets-store-csi-driver v"+dep.Version) {
		t.Errorf("go.mod does not require the driver v%s", dep.Version)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/secrets-store-csi-driver@v"+dep.Version)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("the driver's module is not available to compare with: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	upstream := filepath.Join(mod.Dir, "charts", "secrets-store-csi-driver")
	vendoredDir := filepath.Join(repoRoot(t), ChartPath, "charts", "secrets-store-csi-driver")
	if diff := diffTrees(t, upstream, vendoredDir); diff != "" {
		t.Errorf("the vendored driver chart differs from %s:\n%s", upstream, diff)
	}
}

func diffTrees(t *testing.T, a, b string) string {
	t.Helper()
	list := func(root string) map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			m[rel] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ma, mb := list(a), list(b)
	var diffs []string
	for k, v := range ma {
		if w, ok := mb[k]; !ok {
			diffs = append(diffs, "missing "+k)
		} else if v != w {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "\n")
}
