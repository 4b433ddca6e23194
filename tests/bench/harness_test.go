package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	region   = "us-east-1"
	account  = "123456789012"
	nodeName = "bench-node"
)

// env is the world around coffer: the AWS fake (with STS trusting a token
// issuer) and the Kubernetes API's ServiceAccounts.
type env struct {
	fake   *fakeaws.Server
	url    string
	issuer *fakeaws.Issuer
	kube   *kubeAPI

	mu    sync.Mutex
	roles map[string]bool
}

func roleFor(ns, sa string) string { return "arn:aws:iam::" + account + ":role/" + ns + "-" + sa }

func newEnv(t testing.TB, latency time.Duration) *env {
	fake, ts := fakeaws.NewTestServer(t)
	issuer := fakeaws.NewTestIssuer(t, "https://oidc.bench")
	if err := fake.SetJWKS(issuer.JWKS()); err != nil {
		t.Fatal(err)
	}
	fake.SetLatency(latency)
	e := &env{fake: fake, url: ts.URL, issuer: issuer, roles: map[string]bool{}}
	e.kube = newKubeAPI(t, roleFor, "https://oidc.bench", issuer.JWKS())
	return e
}

// serviceAccount makes the role of ns/sa exist, trusted by that
// ServiceAccount only.
func (e *env) serviceAccount(t testing.TB, ns, sa string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	arn := roleFor(ns, sa)
	if e.roles[arn] {
		return
	}
	if err := e.fake.AddRole(fakeaws.Role{
		ARN: arn, TrustedSubjects: []string{"system:serviceaccount:" + ns + ":" + sa},
		Actions: []string{"*"}, Resources: []string{"*"},
	}); err != nil {
		t.Fatal(err)
	}
	e.roles[arn] = true
}

// attrs are the driver's attributes for a pod of ns/sa.
func (e *env) attrs(ns, sa, pod, objects string) string {
	uid := "uid-" + ns + "-" + pod
	// As kubelet mints it: bound to the pod.
	tok := e.issuer.TokenWithClaims(fakeaws.TokenClaims{Subject: "system:serviceaccount:" + ns + ":" + sa, Audiences: []string{"sts.amazonaws.com"}, PodName: pod, PodUID: uid})
	tokens, _ := json.Marshal(map[string]map[string]string{"sts.amazonaws.com": {"token": tok, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	a, _ := json.Marshal(map[string]string{
		"secretProviderClass":                      "bench",
		"objects":                                  objects,
		"region":                                   region,
		"csi.storage.k8s.io/pod.name":              pod,
		"csi.storage.k8s.io/pod.namespace":         ns,
		"csi.storage.k8s.io/pod.uid":               uid,
		"csi.storage.k8s.io/serviceAccount.name":   sa,
		"csi.storage.k8s.io/serviceAccount.tokens": string(tokens),
		"csi.storage.k8s.io/ephemeral":             "true",
	})
	return string(a)
}

// objects seeds n secrets and m parameters under prefix and returns the
// objects list that mounts them.
func (e *env) objects(prefix string, secrets, params int) string {
	var b strings.Builder
	for i := range secrets {
		name := fmt.Sprintf("bench/%s/secret-%02d", prefix, i)
		e.fake.PutSecretString(region, name, fmt.Sprintf(`{"user":"u%d","password":"p%d"}`, i, i))
		fmt.Fprintf(&b, "- {objectName: %s, objectType: secretsmanager}\n", name)
	}
	for i := range params {
		name := fmt.Sprintf("/bench/%s/param-%02d", prefix, i)
		e.fake.PutParameter(region, name, fmt.Sprintf("value-%d", i), "SecureString")
		fmt.Fprintf(&b, "- {objectName: %s, objectType: ssmparameter}\n", name)
	}
	return b.String()
}

func (e *env) calls(service, op string) int {
	return e.fake.CountCalls(func(c fakeaws.Call) bool {
		return (service == "" || c.Service == service) && (op == "" || c.Operation == op)
	})
}

// driverServiceConfig is the driver's gRPC service config for providers.
const driverServiceConfig = `{"methodConfig": [{"name": [{"service": "v1alpha1.CSIDriverProvider"}], "waitForReady": true,
  "retryPolicy": {"MaxAttempts": 3, "InitialBackoff": "1s", "MaxBackoff": "10s", "BackoffMultiplier": 1.1, "RetryableStatusCodes": ["UNAVAILABLE"]}}]}`

// coffer is the real binary, serving its socket as the DaemonSet would.
type coffer struct {
	args   []string
	env    []string
	dir    string
	cmd    *exec.Cmd
	client v1alpha1.CSIDriverProviderClient
	conn   *grpc.ClientConn
	stderr *os.File
	// targets, when set, is where mounts are written as the driver writes
	// them (a directory per pod): for ASCP, which reads its files back on
	// remounts whose versions did not change.
	targets string
}

func cofferBinary(t testing.TB) string {
	if p := os.Getenv("COFFER_BIN"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../bin/coffer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no coffer binary at %s: run make build (make bench does)", p)
	}
	return p
}

func startCoffer(t testing.TB, e *env, flags ...string) *coffer {
	dir, err := os.MkdirTemp("", "coffer-bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	logFile, err := os.Create(filepath.Join(dir, "coffer.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--provider-dir", dir, "--kubeconfig", e.kube.kubeconfig(t), "--node-name", nodeName, "--log-level", "warn"}, flags...)
	cmd := exec.Command(cofferBinary(t), args...)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL="+e.url, "AWS_REGION="+region, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_CA_BUNDLE=",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=")
	return startProcess(t, cmd, dir, logFile, args)
}

// startProcess starts a provider process serving dir/aws.sock, logging to
// logFile, and connects to it as the driver does.
func startProcess(t testing.TB, cmd *exec.Cmd, dir string, logFile *os.File, args []string) *coffer {
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &coffer{cmd: cmd, stderr: logFile, args: args, env: cmd.Env, dir: dir}
	t.Cleanup(func() { c.stop(t) })
	socket := filepath.Join(dir, "aws.sock")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the provider did not create its socket:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// As the driver dials providers: wait for the socket to be ready and
	// retry UNAVAILABLE (pkg/secrets-store/provider_client.go).
	var err error
	c.conn, err = grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)), grpc.WithDefaultServiceConfig(driverServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.client = v1alpha1.NewCSIDriverProviderClient(c.conn)
	return c
}

func (c *coffer) stop(t testing.TB) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.conn.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.stderr.Close()
}

// mount sends one Mount as the driver does and times it.
func (c *coffer) mount(attrs string, current []*v1alpha1.ObjectVersion) (*v1alpha1.MountResponse, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	target := "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount"
	if c.targets != "" {
		var a map[string]string
		json.Unmarshal([]byte(attrs), &a)
		target = filepath.Join(c.targets, a["csi.storage.k8s.io/pod.uid"], "mount")
	}
	start := time.Now()
	resp, err := c.client.Mount(ctx, &v1alpha1.MountRequest{
		Attributes: attrs, Secrets: "null", Permission: "420",
		TargetPath:           target,
		CurrentObjectVersion: current,
	})
	d := time.Since(start)
	if err == nil && c.targets != "" {
		for _, f := range resp.Files {
			path := filepath.Join(target, f.Path)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return resp, d, err
			}
			if err := os.WriteFile(path, f.Contents, 0o600); err != nil {
				return resp, d, err
			}
		}
	}
	return resp, d, err
}

// sampleAnon samples the process's anonymous memory every 20 ms until the
// returned function is called, which returns the peak.
func (c *coffer) sampleAnon() (peak func() float64) {
	stop := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		highest := 0.0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				highest = max(highest, c.anonMiB())
			case <-stop:
				sampled <- max(highest, c.anonMiB())
				return
			}
		}
	}()
	return func() float64 {
		close(stop)
		return <-sampled
	}
}

// anonMiB reads the process's current anonymous resident memory.
func (c *coffer) anonMiB() float64 {
	return statusKiB(c.cmd.Process.Pid, "RssAnon") / 1024
}

// statusKiB reads one kB field of /proc/pid/status.
func statusKiB(pid int, field string) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}

// usage reads the process's peak resident memory and CPU time from /proc.
func (c *coffer) usage(t testing.TB) (peakRSSMiB float64, cpuSeconds float64) {
	pid := c.cmd.Process.Pid
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		t.Fatal(err)
	}
	peakRSSMiB = statusKiB(pid, "VmHWM") / 1024
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name: utime and stime are the 12th and 13th.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const clockTicks = 100 // USER_HZ on Linux
	return peakRSSMiB, (utime + stime) / clockTicks
}

// restart stops the provider (SIGTERM: it drains and removes its socket)
// and starts it again on the same socket, keeping the client connection,
// as a DaemonSet rollout does while the driver keeps running.
func (c *coffer) restart(t testing.TB) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
	cmd := exec.Command(c.cmd.Path, c.args...)
	cmd.Env = c.env
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd = cmd
}

// openFDs counts the process's open file descriptors.
func (c *coffer) openFDs() int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(entries)
}
