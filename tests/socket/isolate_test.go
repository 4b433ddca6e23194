package socket_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/internal/isolate"
	"github.com/coffer-csi/coffer/provider/render"
)

// workerEnv makes the test binary an evaluator worker (TestMain).
const workerEnv = "SOCKET_TEST_EVALUATOR"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := isolate.Serve(os.Stdin, os.Stdout, unaccounted); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var sink [][]byte

// unaccounted is coffer's evaluation, except that the path
// hostile_alloc allocates without any accounting: an evaluation the
// budgets underestimate, as badly as can be.
func unaccounted(ctx context.Context, job *render.Job) *render.Outcome {
	if job.Extract != nil && len(job.Extract.Entries) > 0 && job.Extract.Entries[0].Expression == "hostile_alloc" {
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			sink = append(sink, b)
		}
	}
	return render.Run(ctx, job)
}

func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestHostileClassFailsOnlyItsOwnMount: with the accounting switched off
// for one expression, six mounts of a hostile class from one namespace
// fail, each with the evaluator's memory limit in its error, while a
// benign mount from another namespace succeeds; the provider's own peak
// memory barely moves, and it serves the hostile namespace's benign class
// afterwards.
func TestHostileClassFailsOnlyItsOwnMount(t *testing.T) {
	pool := isolate.New(isolate.Config{Workers: 2, MemoryBytes: 64 << 20, Timeout: 20 * time.Second,
		Command: []string{os.Args[0]}, Env: []string{workerEnv + "=1"}})
	t.Cleanup(pool.Close)
	h := newHarness(t, harnessOptions{evaluator: pool, mountTimeout: 25 * time.Second})
	h.fake.PutSecretString(primary, "app/db", `{"username":"app","password":"pw"}`)
	benign := map[string]string{"objects": `[{objectName: app/db, objectType: secretsmanager, jmesPath: [{path: username, objectAlias: user}]}]`}
	hostile := map[string]string{"objects": `[{objectName: app/db, objectType: secretsmanager, jmesPath: [{path: hostile_alloc, objectAlias: x}]}]`,
		"csi.storage.k8s.io/pod.namespace": "attacker"}
	if _, err := h.mount(t, benign); err != nil { // workers warm: their start is not the attack's
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := h.mount(t, benign); err != nil {
		t.Fatal(err)
	}
	usual := time.Since(start)
	runtime.GC()
	before := vmHWM(t)
	var wg sync.WaitGroup
	hostileErrs := make([]error, 6)
	for i := range hostileErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, hostileErrs[i] = h.mount(t, hostile)
		}()
	}
	start = time.Now()
	resp, err := h.mount(t, benign)
	// Reported, not asserted (no timing assertions): the figure for the
	// bench's fairness line.
	t.Logf("benign mount: %v alone, %v during six hostile mounts of another namespace", usual, time.Since(start))
	if err != nil {
		t.Errorf("benign mount during the attack: %v", err)
	} else if fs, _ := files(resp); fs["user"] == nil || string(fs["user"].GetContents()) != "app" {
		t.Errorf("benign mount during the attack: files %v", fs)
	}
	wg.Wait()
	for i, err := range hostileErrs {
		if err == nil || !strings.Contains(err.Error(), `evaluating its jmesPath (path "hostile_alloc") exceeded the evaluator's 64 MiB memory limit (--evaluator-memory-bytes)`) {
			t.Errorf("hostile mount %d: %v, want the evaluator's memory limit", i, err)
		}
	}
	if grew := vmHWM(t) - before; grew > 32<<20 {
		t.Errorf("the provider's peak RSS grew by %d MiB during the attack, want far less than one worker's 64", grew>>20)
	}
	afterwards := map[string]string{"objects": benign["objects"], "csi.storage.k8s.io/pod.namespace": "attacker"}
	if _, err := h.mount(t, afterwards); err != nil {
		t.Errorf("benign mount after the attack: %v", err)
	}
}
