package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/coffer-csi/coffer/tests/harness"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// The fleet repository's paths for this cluster: the user's own overlays
// of deployment/flux, and an application team's base with this cluster's
// overlay (the Kustomize patch that puts the IRSA role on the
// ServiceAccount).
const (
	fleetCluster  = "clusters/node"
	fleetApp      = "apps/notifier"
	fluxTimeout   = 5 * time.Minute
	fluxRerunStep = "sudo make node-test NODE_RUN='^TestFlux$/^step[1-%d]-'"
)

// fleetPaths maps each Kustomization of deployment/flux/kustomizations.yaml
// to this cluster's directory in the fleet repository.
var fleetPaths = map[string]string{
	"csi-driver":                   "./" + fleetCluster + "/csi-driver",
	"coffer":                       "./" + fleetCluster + "/coffer",
	"coffer-secretproviderclasses": "./" + fleetCluster + "/apps",
}

// slackURLClass is ExternalSecret slack-url of ESO's guide, as a
// SecretProviderClass whose syncSecrets does exactly what it does:
//
//	spec:
//	  refreshInterval: 1h
//	  secretStoreRef: {name: aws-secretsmanager, kind: SecretStore}
//	  target: {name: slack-url, creationPolicy: Owner, deletionPolicy: Delete}
//	  data:
//	    - secretKey: address
//	      remoteRef: {key: dev/slackurl}
//
// The store's identity (a ServiceAccount with an IRSA role) is the entry's
// serviceAccountName. extra adds objects and data entries.
func slackURLClass(extraObjects, extraData string) string {
	return `# ExternalSecret slack-url, as coffer's syncSecrets.
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: slack-url
  namespace: ` + fluxNotifierNS + `
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: dev/slackurl
        objectType: secretsmanager
` + extraObjects + `    syncSecrets: |
      - secretName: slack-url
        serviceAccountName: notifier
        refreshInterval: 1h
        creationPolicy: Owner
        deletionPolicy: Delete
        data:
          - {key: address, objectName: dev/slackurl}
` + extraData
}

// appBase is the application team's base: its namespace, the
// ServiceAccount coffer-controller sync reads AWS as (its role left to each
// cluster), and the class.
func appBase(resources ...string) map[string]string {
	files := map[string]string{
		fleetApp + "/namespace.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: ` + fluxNotifierNS + `
  labels:
    ` + testLabel + `: "1"
`,
		fleetApp + "/serviceaccount.yaml": `# The identity coffer-controller sync reads AWS as for slack-url. Each cluster's
# overlay names its IAM role.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: notifier
  namespace: ` + fluxNotifierNS + `
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/set-by-each-cluster
`,
	}
	files[fleetApp+"/kustomization.yaml"] = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
	for _, r := range resources {
		files[fleetApp+"/kustomization.yaml"] += "  - " + r + "\n"
	}
	return files
}

// clusterOverlays are this cluster's directories: deployment/flux's
// releases from the cluster's Helm repository, with the node's settings
// (the driver's kubelet root and sidecar tags, coffer's image and AWS
// endpoint: what the tier's own installs set), coffer's chart pinned to
// cofferChart; and the application with this cluster's IAM role.
func (c *cluster) clusterOverlays(t *testing.T, helmURL, cofferChart string) map[string]string {
	t.Helper()
	values := func(v map[string]any) string {
		b, err := yaml.Marshal(map[string]any{"values": v})
		if err != nil {
			t.Fatal(err)
		}
		return "  " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n  ") + "\n"
	}
	repoPatch := func(name string) string {
		return `apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: ` + name + `
  namespace: flux-system
spec:
  url: ` + helmURL + "\n"
	}
	kustomization := func(base string) string {
		return `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../` + base + `
patches:
  - path: helmrepository.yaml
  - path: helmrelease.yaml
`
	}
	driver := c.driverValues()
	cofferValues := c.cofferValues(c.bins.cofferVersion)
	return map[string]string{
		fleetCluster + "/csi-driver/kustomization.yaml":  kustomization("deployment/flux/csi-driver"),
		fleetCluster + "/csi-driver/helmrepository.yaml": repoPatch("secrets-store-csi-driver"),
		fleetCluster + "/csi-driver/helmrelease.yaml": `apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: csi-secrets-store
  namespace: kube-system
spec:
` + values(map[string]any{"rotationPollInterval": driver["rotationPollInterval"], "linux": driver["linux"]}),
		fleetCluster + "/coffer/kustomization.yaml":  kustomization("deployment/flux/coffer"),
		fleetCluster + "/coffer/helmrepository.yaml": repoPatch("coffer"),
		fleetCluster + "/coffer/helmrelease.yaml": `apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: coffer
  namespace: kube-system
spec:
  chart:
    spec:
      version: "` + cofferChart + `"
` + values(cofferValues),
		fleetCluster + "/apps/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../` + fleetApp + `
patches:
  # This cluster's IAM role for the notifier.
  - target:
      version: v1
      kind: ServiceAccount
      name: notifier
    patch: |-
      - op: replace
        path: /metadata/annotations/eks.amazonaws.com~1role-arn
        value: ` + roleARN(fluxNotifierRole) + "\n",
	}
}

// fluxStep is one step of the scenario: what a failure prints to rerun it.
type fluxStep struct {
	*flux
	n int
}

// waitFor waits until the Flux object is Ready for its generation and ok
// (if any) accepts it; otherwise it stops the scenario with the object's
// conditions, its controller's log tail and the command to rerun the step.
func (s fluxStep) waitFor(t *testing.T, r schema.GroupVersionResource, ns, name string, timeout time.Duration, ok func(*unstructured.Unstructured) error) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	err := poll(timeout, func(ctx context.Context) error {
		u, err := s.get(ctx, r, ns, name)
		if err != nil {
			return err
		}
		last = u
		if err := ready(u); err != nil {
			return err
		}
		if ok != nil {
			return ok(u)
		}
		return nil
	})
	if err != nil {
		s.fail(t, fmt.Sprintf("%s %s/%s: %v\nits conditions:\n%s", strings.TrimSuffix(r.Resource, "s"), ns, name, err, conditions(last)), fluxController[r])
	}
	return last
}

// fail stops the scenario with what explains it: the message, the
// controller's log tail, and the command to rerun this step.
func (s fluxStep) fail(t *testing.T, msg, controller string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(msg)
	if p := s.procs[controller]; p != nil {
		fmt.Fprintf(&b, "\n----- %s: last lines of its log -----\n%s", controller, harness.Tail(p.LogSince(0), 20))
	}
	fmt.Fprintf(&b, "\nrerun this step (with the steps before it, which it builds on): "+fluxRerunStep, s.n)
	t.Fatal(b.String())
}

// applied waits until the Kustomization has applied the commit sha.
func (s fluxStep) applied(t *testing.T, name, sha string) {
	t.Helper()
	s.waitFor(t, gvrKustomization, fluxNS, name, fluxTimeout, func(u *unstructured.Unstructured) error {
		rev, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
		if !strings.HasSuffix(rev, sha) {
			return fmt.Errorf("applied revision %q, want commit %s", rev, sha)
		}
		return nil
	})
}

// pushed reconciles the GitRepository now (as `flux reconcile source git`
// does) and waits until its artifact is the commit sha.
func (s fluxStep) pushed(t *testing.T, sha string) {
	t.Helper()
	if err := s.requestReconcile(ctxFor(t, 30*time.Second), gvrGitRepository, fluxNS, "coffer"); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, gvrGitRepository, fluxNS, "coffer", time.Minute, func(u *unstructured.Unstructured) error {
		rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
		if !strings.HasSuffix(rev, sha) {
			return fmt.Errorf("artifact revision %q, want commit %s", rev, sha)
		}
		return nil
	})
}

// secretIs waits until Secret slack-url holds exactly want (nil: until it
// is gone).
func (s fluxStep) secretIs(t *testing.T, want map[string]string, timeout time.Duration) *corev1.Secret {
	t.Helper()
	var sec *corev1.Secret
	err := poll(timeout, func(ctx context.Context) error {
		got, err := env.kube.CoreV1().Secrets(fluxNotifierNS).Get(ctx, "slack-url", metav1.GetOptions{})
		if want == nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err == nil {
				return fmt.Errorf("Secret slack-url still exists (deleting: %t)", got.DeletionTimestamp != nil)
			}
			return err
		}
		if err != nil {
			return err
		}
		sec = got
		if len(got.Data) != len(want) {
			return fmt.Errorf("Secret slack-url has keys %v, want %v", keys(got.Data), names(want))
		}
		for k, v := range want {
			if string(got.Data[k]) != v {
				return fmt.Errorf("Secret slack-url: key %s has %d bytes, want %d", k, len(got.Data[k]), len(v))
			}
		}
		return nil
	})
	if err != nil {
		s.fail(t, fmt.Sprintf("coffer-controller sync: %v\nsync controller pods:\n%s", err, podsOf(releaseNS, "sync")), "kustomize-controller")
	}
	return sec
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFlux: the GitOps flow of ESO's guides, for coffer, with Flux's own
// controllers (source-controller, kustomize-controller, helm-controller)
// reconciling a fleet repository served from the node: deployment/flux and
// deployment/examples as committed, this cluster's overlays, an
// application's base. Each step waits on what Flux reports Ready.
func TestFlux(t *testing.T) {
	// The tier installs the driver and coffer with Helm itself; here Flux
	// installs them, from nothing.
	for _, release := range []string{cofferRelease, driverRelease} {
		if ok, err := env.helmInstalled(release); err != nil {
			t.Fatal(err)
		} else if ok {
			if err := env.helmUninstall(release); err != nil {
				t.Fatal(err)
			}
		}
		providerGone(t, release)
	}

	f, err := env.startFlux(ctxFor(t, 3*time.Minute))
	if err != nil {
		t.Fatalf("Flux's controllers did not start: %v", err)
	}
	ch, err := loader.Load(env.cofferChart())
	if err != nil {
		t.Fatal(err)
	}
	first := ch.Metadata.Version
	next := semver.MustParse(first).IncPatch().String()
	f.newHelmRepo(t, env.path("flux", "charts"), env.driverChart(), env.cofferChart(), first, next)
	f.newFleetRepo(t, env.path("flux", "git"), env.bins.repo)

	files := env.clusterOverlays(t, f.helmURL, first)
	for k, v := range appBase("namespace.yaml", "serviceaccount.yaml", "secretproviderclass.yaml") {
		files[k] = v
	}
	files[fleetApp+"/secretproviderclass.yaml"] = slackURLClass("", "")
	sha := f.commit(t, "coffer with Flux on cluster node", files)

	// What the user applies once (flux-system's own sync, in a real
	// cluster): deployment/flux/kustomizations.yaml, its GitRepository
	// pointed at the fleet repository and its paths at this cluster's
	// directories.
	objs, err := decodeObjects(filepath.Join(env.bins.repo, "deployment/flux/kustomizations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "GitRepository":
			if err := unstructured.SetNestedField(o.Object, f.gitURL, "spec", "url"); err != nil {
				t.Fatal(err)
			}
		case "Kustomization":
			path, ok := fleetPaths[o.GetName()]
			if !ok {
				t.Fatalf("deployment/flux/kustomizations.yaml has Kustomization %s, which this scenario does not know: give it a path in fleetPaths", o.GetName())
			}
			if err := unstructured.SetNestedField(o.Object, path, "spec", "path"); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.create(ctxFor(t, 30*time.Second), o); err != nil {
			t.Fatal(err)
		}
	}

	steps := []struct {
		name string
		run  func(*testing.T, fluxStep)
	}{
		{"releases", func(t *testing.T, s fluxStep) {
			s.waitFor(t, gvrGitRepository, fluxNS, "coffer", time.Minute, nil)
			s.waitFor(t, gvrHelmRepository, fluxNS, "secrets-store-csi-driver", fluxTimeout, nil)
			driver := s.waitFor(t, gvrHelmRelease, releaseNS, driverRelease, fluxTimeout, nil)
			s.waitFor(t, gvrHelmRepository, fluxNS, "coffer", fluxTimeout, nil)
			coffer := s.waitFor(t, gvrHelmRelease, releaseNS, cofferRelease, fluxTimeout, chartVersion(first))
			// As deployment/flux says: coffer after the driver, with
			// remediation and a timeout.
			if deps, _, _ := unstructured.NestedSlice(coffer.Object, "spec", "dependsOn"); len(deps) != 1 {
				t.Errorf("HelmRelease coffer depends on %v", deps)
			}
			for _, hr := range []*unstructured.Unstructured{driver, coffer} {
				timeout, _, _ := unstructured.NestedString(hr.Object, "spec", "timeout")
				install, _, _ := unstructured.NestedInt64(hr.Object, "spec", "install", "remediation", "retries")
				upgrade, _, _ := unstructured.NestedInt64(hr.Object, "spec", "upgrade", "remediation", "retries")
				if timeout == "" || install == 0 || upgrade == 0 {
					t.Errorf("HelmRelease %s: timeout %q, install retries %d, upgrade retries %d", hr.GetName(), timeout, install, upgrade)
				}
			}
			if d, c := deployed(driver), deployed(coffer); c.Before(d) {
				t.Errorf("coffer was deployed at %s, before the driver (%s)", c, d)
			}
			s.waitFor(t, gvrKustomization, fluxNS, "csi-driver", fluxTimeout, nil)
			s.waitFor(t, gvrKustomization, fluxNS, "coffer", fluxTimeout, nil)
			daemonSetRolledOut(t, s, "helm.sh/chart=coffer-"+first)
		}},
		{"irsa", func(t *testing.T, s fluxStep) {
			s.applied(t, "coffer-secretproviderclasses", sha)
			got, err := env.kube.CoreV1().ServiceAccounts(fluxNotifierNS).Get(ctxFor(t, 30*time.Second), "notifier", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if arn := got.Annotations["eks.amazonaws.com/role-arn"]; arn != roleARN(fluxNotifierRole) {
				t.Fatalf("ServiceAccount notifier has role %q, want the overlay's %s", arn, roleARN(fluxNotifierRole))
			}
		}},
		{"sync", func(t *testing.T, s fluxStep) {
			sec := s.secretIs(t, map[string]string{"address": "canary-node-slack-url"}, 2*time.Minute)
			if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Kind != "SecretProviderClass" || sec.OwnerReferences[0].Name != "slack-url" {
				t.Errorf("Secret slack-url is owned by %v, want SecretProviderClass slack-url (creationPolicy: Owner)", sec.OwnerReferences)
			}
			if !fakeCall(env.fake.LogSince(0), "AssumeRoleWithWebIdentity", sa(fluxNotifierNS, "notifier"), "ok") {
				t.Errorf("the AWS fake logged no AssumeRoleWithWebIdentity for %s", sa(fluxNotifierNS, "notifier"))
			}
		}},
		{"add-key", func(t *testing.T, s fluxStep) {
			sha := f.commit(t, "notifier: the Slack channel too", map[string]string{
				fleetApp + "/secretproviderclass.yaml": slackURLClass(
					"      - objectName: dev/slackchannel\n        objectType: secretsmanager\n",
					"          - {key: channel, objectName: dev/slackchannel}\n"),
			})
			s.pushed(t, sha)
			s.applied(t, "coffer-secretproviderclasses", sha)
			s.secretIs(t, map[string]string{"address": "canary-node-slack-url", "channel": "canary-node-slack-channel"}, 2*time.Minute)
		}},
		{"prune", func(t *testing.T, s fluxStep) {
			files := appBase("namespace.yaml", "serviceaccount.yaml")
			files[fleetApp+"/secretproviderclass.yaml"] = ""
			sha := f.commit(t, "notifier: no more Slack", files)
			s.pushed(t, sha)
			s.applied(t, "coffer-secretproviderclasses", sha)
			if err := poll(time.Minute, func(ctx context.Context) error {
				_, err := f.dyn.Resource(gvrSPC).Namespace(fluxNotifierNS).Get(ctx, "slack-url", metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("SecretProviderClass slack-url not pruned: %v", err)
			}); err != nil {
				s.fail(t, err.Error(), "kustomize-controller")
			}
			s.secretIs(t, nil, time.Minute)
		}},
		{"chart-bump", func(t *testing.T, s fluxStep) {
			ns := namespace(t, "flux-mount")
			secretProviderClass(t, ns, "rotating", map[string]any{"objects": "- objectName: node/flux-rotating\n  objectType: secretsmanager\n  objectAlias: value\n"}, nil)
			pod := waitRunning(t, ns, createPod(t, workloadPod(ns, "app", "rotating", "read", "/mnt/secrets", "2s")).Name, 2*time.Minute)
			podFiles(t, pod, time.Minute, wantFiles(map[string]string{"value": "canary-node-flux-1"}))
			before := cofferPods(t)

			sha := f.commit(t, "coffer "+next, map[string]string{
				fleetCluster + "/coffer/helmrelease.yaml": env.clusterOverlays(t, f.helmURL, next)[fleetCluster+"/coffer/helmrelease.yaml"],
			})
			s.pushed(t, sha)
			s.applied(t, "coffer", sha)
			s.waitFor(t, gvrHelmRelease, releaseNS, cofferRelease, fluxTimeout, chartVersion(next))
			daemonSetRolledOut(t, s, "helm.sh/chart=coffer-"+next)
			for uid := range cofferPods(t) {
				if before[uid] {
					t.Fatalf("coffer's pod %s is still the one from before the upgrade", uid)
				}
			}
			// The running pod's next rotation remount is the new coffer's,
			// and brings it a change made in AWS after the rollout.
			putSecret(ctxFor(t, 30*time.Second), t, "node/flux-rotating", "canary-node-flux-2")
			podFiles(t, pod, 6*(rotationPoll+cofferTTL), wantFiles(map[string]string{"value": "canary-node-flux-2"}))
		}},
	}
	for i, st := range steps {
		s := fluxStep{flux: f, n: i + 1}
		if !t.Run(fmt.Sprintf("step%d-%s", i+1, st.name), func(t *testing.T) { st.run(t, s) }) {
			return
		}
	}
}

// chartVersion accepts a HelmRelease whose latest release is of coffer's
// chart at version v.
func chartVersion(v string) func(*unstructured.Unstructured) error {
	return func(u *unstructured.Unstructured) error {
		hist, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
		if len(hist) == 0 {
			return fmt.Errorf("no release in its history")
		}
		latest, _ := hist[0].(map[string]any)
		if latest["chartVersion"] != v {
			return fmt.Errorf("latest release is of chart version %v, want %s", latest["chartVersion"], v)
		}
		return nil
	}
}

// deployed is when a HelmRelease's first release was deployed.
func deployed(u *unstructured.Unstructured) time.Time {
	hist, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
	if len(hist) == 0 {
		return time.Time{}
	}
	first, _ := hist[len(hist)-1].(map[string]any)
	s, _ := first["firstDeployed"].(string)
	at, _ := time.Parse(time.RFC3339, s)
	return at
}

// daemonSetRolledOut waits until coffer's DaemonSet runs only ready pods
// of its current template, whose labels match selector.
func daemonSetRolledOut(t *testing.T, s fluxStep, selector string) {
	t.Helper()
	err := poll(2*time.Minute, func(ctx context.Context) error {
		ds, err := env.kube.AppsV1().DaemonSets(releaseNS).Get(ctx, cofferRelease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := ds.Status
		if ds.Generation != st.ObservedGeneration || st.DesiredNumberScheduled == 0 || st.NumberReady != st.DesiredNumberScheduled || st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberUnavailable != 0 {
			return fmt.Errorf("DaemonSet coffer: desired %d, ready %d, updated %d", st.DesiredNumberScheduled, st.NumberReady, st.UpdatedNumberScheduled)
		}
		pods, err := env.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: selector + ",app.kubernetes.io/name=coffer"})
		if err != nil {
			return err
		}
		if len(pods.Items) != int(st.DesiredNumberScheduled) {
			return fmt.Errorf("%d pods with %s, want %d", len(pods.Items), selector, st.DesiredNumberScheduled)
		}
		return nil
	})
	if err != nil {
		s.fail(t, fmt.Sprintf("%v\npods in %s:\n%s", err, releaseNS, env.podReport(releaseNS)), "helm-controller")
	}
}

// cofferPods are the UIDs of coffer's DaemonSet pods.
func cofferPods(t *testing.T) map[string]bool {
	t.Helper()
	pods, err := env.kube.CoreV1().Pods(releaseNS).List(ctxFor(t, 30*time.Second), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=coffer,app.kubernetes.io/instance=" + cofferRelease})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		out[string(p.UID)] = true
	}
	return out
}
