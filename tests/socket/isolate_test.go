package socket_test

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/provider/render/isolate/isolatetest"
	"github.com/coffer-csi/coffer/wiring"
)

func TestMain(m *testing.M) {
	// The evaluator workers of TestHostileClassFailsOnlyItsOwnMount are
	// this binary, with the accounting switched off for hostile_alloc.
	isolatetest.ServeIfWorker()
	os.Exit(m.Run())
}

// TestHostileClassFailsOnlyItsOwnMount: with the accounting switched off
// for one expression, six mounts of a hostile class from one namespace
// fail, each with the evaluator's memory limit in its error, while a
// benign mount from another namespace succeeds; the provider's own peak
// memory barely moves, and it serves the hostile namespace's benign class
// afterwards.
func TestHostileClassFailsOnlyItsOwnMount(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) {
		c.Server.MountTimeout = 25 * time.Second
		c.Evaluator.Workers, c.Evaluator.MemoryBytes, c.Evaluator.Timeout = 2, 64<<20, 20*time.Second

	}})
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
	before := isolatetest.PeakRSS(t)
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
	if grew := isolatetest.PeakRSS(t) - before; grew > 32<<20 {
		t.Errorf("the provider's peak RSS grew by %d MiB during the attack, want far less than one worker's 64", grew>>20)
	}
	afterwards := map[string]string{"objects": benign["objects"], "csi.storage.k8s.io/pod.namespace": "attacker"}
	if _, err := h.mount(t, afterwards); err != nil {
		t.Errorf("benign mount after the attack: %v", err)
	}
}
