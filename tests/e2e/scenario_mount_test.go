package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/coffer-csi/coffer/tests/harness"
)

// 1. One class mixing Secrets Manager (string, binary, pinned version,
// staging label, jmesPath) and Parameter Store (plain, SecureString,
// version, label), in the node's region; the driver records each file's
// version in the SecretProviderClassPodStatus.
func TestMixedObjects(t *testing.T) {
	const ns = "e2e-mixed"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("mixed-app"))
	createSPC(ctx, t, ns, spcSpec{name: "mixed", params: map[string]string{"objects": `
- objectName: mixed/db
  objectType: secretsmanager
  jmesPath:
    - {path: password, objectAlias: db-password, filePermission: "0600"}
    - {path: port, objectAlias: db-port}
- objectName: mixed/tls
  objectType: secretsmanager
  objectAlias: tls.bin
  filePermission: "0640"
- objectName: mixed/api-key
  objectType: secretsmanager
  objectAlias: api-key
- objectName: mixed/api-key
  objectType: secretsmanager
  objectAlias: api-key-pinned
  objectVersion: "` + apiKeyV1 + `"
- objectName: mixed/api-key
  objectType: secretsmanager
  objectAlias: api-key-previous
  objectVersionLabel: AWSPREVIOUS
- objectName: /mixed/host
  objectType: ssmparameter
- objectName: /mixed/token
  objectType: ssmparameter
  objectAlias: token
- objectName: /mixed/feature
  objectType: ssmparameter
  objectAlias: feature-v2
  objectVersion: "2"
- objectName: /mixed/feature
  objectType: ssmparameter
  objectAlias: feature-stable
  objectVersionLabel: stable
`}})
	pod := createPod(ctx, t, ns, "app-0", "app", "mixed")
	pod.mount(ctx)

	pod.checkFiles(map[string]wantFile{
		"mixed_db":         {`{"username":"app","password":"canary-mixed-db-pw","port":5432}`, 0o644},
		"db-password":      {"canary-mixed-db-pw", 0o600},
		"db-port":          {"5432", 0o644},
		"tls.bin":          {string(tlsBytes), 0o640},
		"api-key":          {"canary-mixed-api-key-v2", 0o644},
		"api-key-pinned":   {"canary-mixed-api-key-v1", 0o644},
		"api-key-previous": {"canary-mixed-api-key-v1", 0o644},
		"_mixed_host":      {"canary-mixed-host.internal", 0o644},
		"token":            {"canary-mixed-token", 0o644},
		"feature-v2":       {"canary-mixed-feature-v2", 0o644},
		"feature-stable":   {"canary-mixed-feature-v1", 0o644},
	})

	versions, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dbVersion := versions["mixed_db"]
	if dbVersion == "" || versions["db-password"] != dbVersion || versions["db-port"] != dbVersion {
		t.Errorf("jmesPath files must carry their secret's VersionId: %v", versions)
	}
	want := map[string]string{
		"api-key":          apiKeyV2,
		"api-key-pinned":   apiKeyV1,
		"api-key-previous": apiKeyV1,
		"_mixed_host":      "1",
		"token":            "1",
		"feature-v2":       "2",
		"feature-stable":   "1",
	}
	for id, v := range want {
		if versions[id] != v {
			t.Errorf("SecretProviderClassPodStatus version of %q = %q, want %q", id, versions[id], v)
		}
	}
	if len(versions) != 11 || versions["tls.bin"] == "" {
		t.Errorf("SecretProviderClassPodStatus objects = %v, want one per file", versions)
	}
	for id, v := range versions {
		if strings.Contains(v, canaryPrefix) || strings.Contains(id, canaryPrefix) {
			t.Errorf("SecretProviderClassPodStatus holds a secret value in %q", id)
		}
	}
}

// 2. Rotation through kubelet's republish: changed values reach the files,
// unchanged files keep their versions; a failed fetch during rotation keeps
// every previous file (a mount is all or nothing).
func TestRotation(t *testing.T) {
	const ns, region = "e2e-rotation", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("rotation-app"))
	createSPC(ctx, t, ns, spcSpec{name: "rotating", params: map[string]string{"region": region, "objects": `
- {objectName: rotation/db, objectType: secretsmanager, jmesPath: [{path: password, objectAlias: password}]}
- {objectName: rotation/static, objectType: secretsmanager, objectAlias: static}
- {objectName: /rotation/param, objectType: ssmparameter, objectAlias: param}
- {objectName: /rotation/static-param, objectType: ssmparameter, objectAlias: static-param}
`}})
	pod := createPod(ctx, t, ns, "app-0", "app", "rotating")
	pod.mount(ctx)
	before := map[string]wantFile{
		"rotation_db":  {`{"password":"canary-rot-pw-1"}`, 0o644},
		"password":     {"canary-rot-pw-1", 0o644},
		"static":       {"canary-rot-static", 0o644},
		"param":        {"canary-rot-param-1", 0o644},
		"static-param": {"canary-rot-static-param", 0o644},
	}
	pod.checkFiles(before)
	v1, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A republish with nothing changed leaves files and versions alone.
	pod.republish(ctx)
	pod.checkFiles(before)

	dbV2 := putSecretString(ctx, t, region, "rotation/db", `{"password":"canary-rot-pw-2"}`)
	putParameter(ctx, t, region, "/rotation/param", "canary-rot-param-2", ssmtypes.ParameterTypeString)
	pod.republish(ctx)
	after := map[string]wantFile{
		"rotation_db":  {`{"password":"canary-rot-pw-2"}`, 0o644},
		"password":     {"canary-rot-pw-2", 0o644},
		"static":       {"canary-rot-static", 0o644},
		"param":        {"canary-rot-param-2", 0o644},
		"static-param": {"canary-rot-static-param", 0o644},
	}
	pod.checkFiles(after)
	var v2 map[string]string
	eventually(ctx, t, 10*time.Second, "versions after rotation", func(ctx context.Context) error {
		v2, err = pod.podStatus(ctx)
		if err != nil {
			return err
		}
		if v2["rotation_db"] != dbV2 || v2["password"] != dbV2 || v2["param"] != "2" {
			return fmt.Errorf("SecretProviderClassPodStatus versions %v; want rotation_db and password at %s, param at 2", v2, dbV2)
		}
		return nil
	})
	for _, id := range []string{"static", "static-param"} {
		if v2[id] != v1[id] {
			t.Errorf("unchanged %q changed version: %q -> %q", id, v1[id], v2[id])
		}
	}

	// Now one object fails (the secret is gone) while another changed: the
	// driver keeps every previous file, the new parameter value included.
	putParameter(ctx, t, region, "/rotation/param", "canary-rot-param-3", ssmtypes.ParameterTypeString)
	deleteSecret(ctx, t, region, "rotation/db")
	mark := env.driver.LogSize()
	pod.republish(ctx) // the driver masks rotation failures from kubelet
	pod.checkFiles(after)
	eventually(ctx, t, 10*time.Second, "the driver's log of the failed rotation", func(context.Context) error {
		for _, line := range strings.Split(env.driver.LogSince(mark), "\n") {
			if strings.Contains(line, "failed to mount secrets store object content") && strings.Contains(line, "rotation/db") && strings.Contains(line, "not found") {
				t.Logf("the driver logged: %s", line)
				return nil
			}
		}
		return fmt.Errorf("no line saying rotation/db was not found:\n%s", harness.Tail(env.driver.LogSince(mark), 20))
	})
	v3, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v3) != fmt.Sprint(v2) {
		t.Errorf("versions changed by a failed rotation: %v -> %v", v2, v3)
	}
}

// 3. The driver's secretObjects sync builds a Kubernetes Secret from
// coffer's files (jmesPath files too), updates it on rotation, and the
// garbage collector removes it with its owner: the pod's owner, or the
// SecretProviderClassPodStatus (owned by the pod) for a pod without one.
func TestDriverSecretObjects(t *testing.T) {
	const ns, region = "e2e-sync", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("sync-app"))
	objects := `
- objectName: sync/db
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: username}
    - {path: password, objectAlias: password}
- {objectName: /sync/host, objectType: ssmparameter}
`
	syncTo := func(secret string) []any {
		return []any{map[string]any{
			"secretName": secret,
			"type":       "Opaque",
			"labels":     map[string]any{"app": "web"},
			"data": []any{
				map[string]any{"objectName": "username", "key": "username"},
				map[string]any{"objectName": "password", "key": "password"},
				map[string]any{"objectName": "_sync_host", "key": "host"},
			},
		}}
	}
	createSPC(ctx, t, ns, spcSpec{name: "web", params: map[string]string{"region": region, "objects": objects}, secretObjects: syncTo("web-db")})
	createSPC(ctx, t, ns, spcSpec{name: "solo", params: map[string]string{"region": region, "objects": objects}, secretObjects: syncTo("solo-db")})

	// A ReplicaSet owns the pod (no ReplicaSet controller runs: the test
	// is its kubelet and its controller).
	replicas := int32(1)
	labels := map[string]string{"app": "web"}
	rs, err := env.kube.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	isController := true
	web := createPod(ctx, t, ns, "web-7d9f-x2k4p", "app", "web", ownedBy(metav1.OwnerReference{
		APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &isController, BlockOwnerDeletion: &isController,
	}))
	web.mount(ctx)
	web.checkFiles(map[string]wantFile{
		"sync_db":    {`{"username":"canary-sync-user","password":"canary-sync-pw-1"}`, 0o644},
		"username":   {"canary-sync-user", 0o644},
		"password":   {"canary-sync-pw-1", 0o644},
		"_sync_host": {"canary-sync-host", 0o644},
	})

	secrets := env.kube.CoreV1().Secrets(ns)
	wantData := func(password string) map[string]string {
		return map[string]string{"username": "canary-sync-user", "password": password, "host": "canary-sync-host"}
	}
	checkSecret := func(name string, data map[string]string, ownerKind, ownerName string, ownerUID types.UID) func(context.Context) error {
		return func(ctx context.Context) error {
			s, err := secrets.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if s.Labels["secrets-store.csi.k8s.io/managed"] != "true" || s.Labels["app"] != "web" {
				return fmt.Errorf("secret %s labels %v", name, s.Labels)
			}
			got := map[string]string{}
			for k, v := range s.Data {
				got[k] = string(v)
			}
			if fmt.Sprint(got) != fmt.Sprint(data) {
				return fmt.Errorf("secret %s data keys %s do not hold the mounted values yet", name, keys(got))
			}
			for _, o := range s.OwnerReferences {
				if o.Kind == ownerKind && o.Name == ownerName && (ownerUID == "" || o.UID == ownerUID) {
					return nil
				}
			}
			return fmt.Errorf("secret %s owners %v, want %s %s", name, s.OwnerReferences, ownerKind, ownerName)
		}
	}
	// The driver creates the Secret, then its patcher (every 5s) adds the
	// pod's owner as the Secret's owner.
	eventually(ctx, t, 30*time.Second, "synced Secret web-db", checkSecret("web-db", wantData("canary-sync-pw-1"), "ReplicaSet", rs.Name, rs.UID))

	putSecretString(ctx, t, region, "sync/db", `{"username":"canary-sync-user","password":"canary-sync-pw-2"}`)
	web.republish(ctx)
	if got := web.files()["password"].content; got != "canary-sync-pw-2" {
		t.Fatalf("after rotation the password file holds %q", got)
	}
	eventually(ctx, t, 30*time.Second, "Secret web-db updated by rotation", checkSecret("web-db", wantData("canary-sync-pw-2"), "ReplicaSet", rs.Name, rs.UID))

	// A pod without an owner: the Secret is owned by the pod's
	// SecretProviderClassPodStatus, which the pod owns.
	solo := createPod(ctx, t, ns, "solo", "app", "solo")
	solo.mount(ctx)
	spcps := solo.pod.Name + "-" + ns + "-solo"
	eventually(ctx, t, 30*time.Second, "synced Secret solo-db", checkSecret("solo-db", wantData("canary-sync-pw-2"), "SecretProviderClassPodStatus", spcps, ""))

	// Owners go, and the garbage collector takes the Secrets with them.
	background := metav1.DeletePropagationBackground
	if err := env.kube.AppsV1().ReplicaSets(ns).Delete(ctx, rs.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	solo.unpublish() // kubelet tears the volume down, then the pod goes
	zero := int64(0)
	if err := env.kube.CoreV1().Pods(ns).Delete(ctx, solo.pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-db", "solo-db"} {
		eventually(ctx, t, 60*time.Second, "garbage collection of Secret "+name, func(ctx context.Context) error {
			_, err := secrets.Get(ctx, name, metav1.GetOptions{})
			if isNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("secret %s still exists", name)
		})
	}
}

// 4. Two pods with two ServiceAccounts and two roles on one node: each
// mounts what its role allows, and nothing else.
func TestIsolation(t *testing.T) {
	const ns, region = "e2e-isolation", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "team-a", roleARN("iso-a"))
	createServiceAccount(ctx, t, ns, "team-b", roleARN("iso-b"))
	// A ServiceAccount that claims team b's role: the role's trust policy
	// does not trust it.
	createServiceAccount(ctx, t, ns, "impostor", roleARN("iso-b"))
	spc := func(name string, secrets ...string) {
		var objs []string
		for _, s := range secrets {
			objs = append(objs, fmt.Sprintf("- {objectName: %s, objectType: secretsmanager}", s))
		}
		createSPC(ctx, t, ns, spcSpec{name: name, params: map[string]string{"region": region, "objects": strings.Join(objs, "\n")}})
	}
	spc("a", "iso/a-token")
	spc("b", "iso/b-token")
	spc("a-and-b", "iso/a-token", "iso/b-token")

	a := createPod(ctx, t, ns, "a", "team-a", "a")
	b := createPod(ctx, t, ns, "b", "team-b", "b")
	a.mount(ctx)
	b.mount(ctx)
	a.checkFiles(map[string]wantFile{"iso_a-token": {"canary-iso-a", 0o644}})
	b.checkFiles(map[string]wantFile{"iso_b-token": {"canary-iso-b", 0o644}})

	greedy := createPod(ctx, t, ns, "a-greedy", "team-a", "a-and-b")
	msg := greedy.mountFails(ctx)
	for _, want := range []string{"iso/b-token", "access denied", "iso-a"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error for team a reading team b's secret does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "iso/a-token") {
		t.Errorf("error blames iso/a-token, which team a may read:\n%s", msg)
	}

	other := createPod(ctx, t, ns, "b-reads-a", "team-b", "a")
	msg = other.mountFails(ctx)
	if !strings.Contains(msg, "iso/a-token") || !strings.Contains(msg, "access denied") {
		t.Errorf("error for team b reading team a's secret:\n%s", msg)
	}

	impostor := createPod(ctx, t, ns, "impostor", "impostor", "b")
	msg = impostor.mountFails(ctx)
	for _, want := range []string{"system:serviceaccount:e2e-isolation:impostor", roleARN("iso-b"), "trust policy"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error for a ServiceAccount annotated with a role that does not trust it does not mention %q:\n%s", want, msg)
		}
	}
	for _, p := range []*testPod{greedy, other, impostor} {
		if p.published {
			t.Errorf("pod %s has a volume after a failed mount", p.pod.Name)
		}
	}
}

// 5. Mistakes users make, each failing NodePublishVolume with coffer's
// message saying what to fix.
func TestMisconfiguration(t *testing.T) {
	const ns, region = "e2e-misconfig", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("misconfig-app"))
	createServiceAccount(ctx, t, ns, "plain", "")
	createSPC(ctx, t, ns, spcSpec{name: "good", params: map[string]string{"region": region, "objects": `
- {objectName: misconfig/db, objectType: secretsmanager}
`}})
	createSPC(ctx, t, ns, spcSpec{name: "typo", params: map[string]string{"region": region, "objects": `
- {objectName: misconfig/db, objectTpye: secretsmanager}
`}})

	t.Run("ServiceAccount without role annotation", func(t *testing.T) {
		msg := createPod(ctx, t, ns, "no-role", "plain", "good").mountFails(ctx)
		for _, want := range []string{"e2e-misconfig/plain", "eks.amazonaws.com/role-arn", "kubectl annotate serviceaccount"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
	})

	t.Run("unknown SecretProviderClass key", func(t *testing.T) {
		msg := createPod(ctx, t, ns, "typo", "app", "typo").mountFails(ctx)
		for _, want := range []string{`invalid SecretProviderClass "typo"`, "objectTpye", `did you mean "objectType"?`} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
	})

	t.Run("unknown key in the pod's volumeAttributes", func(t *testing.T) {
		msg := createPod(ctx, t, ns, "attr-typo", "app", "good", withVolumeAttributes(map[string]string{"regoin": "eu-west-1"})).mountFails(ctx)
		for _, want := range []string{"regoin", `"region"`} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
	})

	t.Run("CSIDriver without tokenRequests", func(t *testing.T) {
		drivers := env.kube.StorageV1().CSIDrivers()
		setTokenRequests(ctx, t, nil)
		t.Cleanup(func() {
			setTokenRequests(context.Background(), t, csiDriverObject().Spec.TokenRequests)
			if d, err := drivers.Get(context.Background(), driverName, metav1.GetOptions{}); err != nil || len(d.Spec.TokenRequests) != 2 {
				t.Errorf("CSIDriver not restored: %v", err)
			}
		})
		msg := createPod(ctx, t, ns, "no-tokens", "app", "good").mountFails(ctx)
		for _, want := range []string{"sent no ServiceAccount token", "tokenRequests", audSTS} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
	})

	// And with all that fixed, the same namespace mounts.
	pod := createPod(ctx, t, ns, "fixed", "app", "good")
	pod.mount(ctx)
	pod.checkFiles(map[string]wantFile{"misconfig_db": {"canary-misconfig", 0o644}})
}

// 6. coffer restarts (a DaemonSet rollout) while the driver keeps running:
// the driver's cached connection reaches the new process, for republishes
// of existing volumes and for new mounts.
func TestCofferRestart(t *testing.T) {
	const ns, region = "e2e-restart", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("restart-app"))
	createSPC(ctx, t, ns, spcSpec{name: "db", params: map[string]string{"region": region, "objects": `
- {objectName: restart/db, objectType: secretsmanager, objectAlias: db}
`}})
	first := createPod(ctx, t, ns, "first", "app", "db")
	first.mount(ctx)
	first.checkFiles(map[string]wantFile{"db": {"canary-restart-1", 0o644}})

	driverPid := env.driver.Pid()
	if err := env.restartCoffer(ctx); err != nil {
		t.Fatal(err)
	}

	putSecretString(ctx, t, region, "restart/db", "canary-restart-2")
	first.republish(ctx)
	first.checkFiles(map[string]wantFile{"db": {"canary-restart-2", 0o644}})

	second := createPod(ctx, t, ns, "second", "app", "db")
	second.mount(ctx)
	second.checkFiles(map[string]wantFile{"db": {"canary-restart-2", 0o644}})

	if exited, _ := env.driver.Exited(); exited || env.driver.Pid() != driverPid {
		t.Errorf("the driver restarted; it must not need to")
	}
}

// 7. EKS Pod Identity: the ServiceAccount has no role annotation; the
// class says usePodIdentity and coffer asks the (fake) node agent, which
// validates the pod's token for audience pods.eks.amazonaws.com and answers
// with the associated role's credentials.
func TestPodIdentity(t *testing.T) {
	const ns, region = "e2e-podidentity", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", "")
	createServiceAccount(ctx, t, ns, "unassociated", "")
	createSPC(ctx, t, ns, spcSpec{name: "pi", params: map[string]string{"region": region, "usePodIdentity": "true", "objects": `
- objectName: pi/db
  objectType: secretsmanager
  jmesPath: [{path: password, objectAlias: password}]
- {objectName: /pi/param, objectType: ssmparameter, objectAlias: param}
`}})
	pod := createPod(ctx, t, ns, "app-0", "app", "pi")
	pod.mount(ctx)
	pod.checkFiles(map[string]wantFile{
		"pi_db":    {`{"password":"canary-pi-pw"}`, 0o644},
		"password": {"canary-pi-pw", 0o644},
		"param":    {"canary-pi-param", 0o644},
	})

	msg := createPod(ctx, t, ns, "unassociated", "unassociated", "pi").mountFails(ctx)
	for _, want := range []string{"Pod Identity", "system:serviceaccount:e2e-podidentity:unassociated"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error for a ServiceAccount without association does not mention %q:\n%s", want, msg)
		}
	}
}
