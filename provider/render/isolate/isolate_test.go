package isolate_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/render/isolate"
	"github.com/coffer-csi/coffer/provider/render/isolate/isolatetest"
)

func TestMain(m *testing.M) {
	// Tests run real workers: this binary, with the accounting switched
	// off for the hostile expressions (isolatetest).
	isolatetest.ServeIfWorker()
	os.Exit(m.Run())
}

func extractJob(expr string) *render.Job {
	return &render.Job{Extract: &render.ExtractJob{Data: []byte(`{"user":"app","port":5432}`), Entries: []render.ExtractEntry{{Expression: expr}}, Limit: 1 << 20}}
}

// benign evaluates a real jmesPath expression in a worker and checks the
// answer.
func benign(ctx context.Context, p *isolate.Pool, tenant string) error {
	out, err := p.Evaluate(ctx, tenant, extractJob("user"))
	if err != nil {
		return err
	}
	if out.Extract == nil || len(out.Extract.Files) != 1 || string(out.Extract.Files[0].Data) != "app" {
		return errors.New("wrong outcome")
	}
	return nil
}

// TestBackstopHoldsWithoutAccounting: an evaluation that allocates without
// any accounting fails with the memory limit in its message, the pool's
// process stays small (its peak RSS grows by less than the worker's
// limit), another tenant's evaluation succeeds meanwhile, and the next
// evaluation after the worker's death works (a new worker).
func TestBackstopHoldsWithoutAccounting(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{Workers: 2, MemoryBytes: 64 << 20, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := benign(ctx, p, "warm"); err != nil { // the first worker's start is not the attack's
		t.Fatal(err)
	}
	runtime.GC()
	before := isolatetest.PeakRSS(t)
	var wg sync.WaitGroup
	var hostileErr, benignErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, hostileErr = p.Evaluate(ctx, "attacker", extractJob(isolatetest.Alloc))
	}()
	go func() {
		defer wg.Done()
		benignErr = benign(ctx, p, "victim")
	}()
	wg.Wait()
	var e *isolate.Error
	if !errors.As(hostileErr, &e) || e.Cause != isolate.CauseMemory ||
		hostileErr.Error() != "exceeded the evaluator's 64 MiB memory limit (--evaluator-memory-bytes)" || e.Hint() == "" {
		t.Errorf("hostile evaluation: %v, want the memory limit", hostileErr)
	}
	if benignErr != nil {
		t.Errorf("benign evaluation beside it: %v", benignErr)
	}
	if grew := isolatetest.PeakRSS(t) - before; grew > 32<<20 {
		t.Errorf("the pool's process grew by %d MiB during the attack, want far less than the worker's 64", grew>>20)
	}
	if err := benign(ctx, p, "attacker"); err != nil {
		t.Errorf("evaluation after the worker's death: %v", err)
	}
}

// TestWorkerEnds: every way a worker can end fails only the evaluation in
// flight, with a message of the pool's (the cause and its limit), and the
// next evaluation works.
func TestWorkerEnds(t *testing.T) {
	tests := map[string]struct {
		expr, cause, msg string
		timeout          time.Duration
	}{
		"spins past the time limit": {isolatetest.Spin, isolate.CauseTime, "ran longer than the evaluator's 300ms time limit (--evaluator-timeout)", 300 * time.Millisecond},
		"recurses without end":      {isolatetest.Stack, isolate.CauseMemory, "", time.Minute},
		"exits":                     {isolatetest.Exit, isolate.CauseCrash, "ended the evaluator process unexpectedly", time.Minute},
		"answers past its limit":    {isolatetest.Large, isolate.CauseTooLarge, "gave a result larger than its output limit", time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := isolatetest.NewPool(t, isolate.Config{Workers: 1, MemoryBytes: 64 << 20, Timeout: tc.timeout})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			job := extractJob(tc.expr)
			job.Extract.Limit = 1 << 10
			_, err := p.Evaluate(ctx, "ns", job)
			var e *isolate.Error
			if !errors.As(err, &e) || e.Cause != tc.cause || (tc.msg != "" && err.Error() != tc.msg) {
				t.Fatalf("err = %v, want cause %s %q", err, tc.cause, tc.msg)
			}
			if err := benign(ctx, p, "ns"); err != nil {
				t.Errorf("next evaluation: %v", err)
			}
		})
	}
}

// TestDeadline: an evaluation still running when its caller's deadline
// passes is killed, and says so.
func TestDeadline(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{Workers: 1, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := p.Evaluate(ctx, "ns", extractJob(isolatetest.Spin))
	var e *isolate.Error
	if !errors.As(err, &e) || e.Cause != isolate.CauseDeadline || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
}

// TestFairness: while six evaluations of one tenant that never end by
// themselves hold and queue for the pool, another tenant's evaluation is
// answered before any of them ends: a tenant never holds the last slot.
func TestFairness(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{Workers: 2, Timeout: time.Minute})
	hostile, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = p.Evaluate(hostile, "attacker", extractJob(isolatetest.Spin))
			mu.Lock()
			ended++
			mu.Unlock()
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// All six are running or queued before the benign one arrives.
	for running, waiting := p.Load(); running+waiting < 6; running, waiting = p.Load() {
		if ctx.Err() != nil {
			t.Fatal("the hostile evaluations did not reach the pool within 30s")
		}
		time.Sleep(time.Millisecond)
	}
	err := benign(ctx, p, "victim")
	mu.Lock()
	endedFirst := ended
	mu.Unlock()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("benign evaluation: %v", err)
	}
	if endedFirst != 0 {
		t.Errorf("%d hostile evaluations ended before the benign one was answered, want 0", endedFirst)
	}
}

// TestLazyAndIdle: no worker starts before the first evaluation, and an
// idle worker exits.
func TestLazyAndIdle(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	p := isolatetest.NewPool(t, isolate.Config{IdleTimeout: time.Minute, Clock: clk})
	if n := p.Processes(); n != 0 {
		t.Fatalf("%d workers before any evaluation, want 0", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := benign(ctx, p, "ns"); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute - time.Nanosecond)
	if n := p.Processes(); n != 1 {
		t.Fatalf("%d workers before the idle timeout, want the warm one", n)
	}
	clk.Step(time.Nanosecond)
	if n := p.Processes(); n != 0 {
		t.Fatalf("%d workers after the idle timeout, want 0", n)
	}
}

// TestTemplatesInWorker: templates run in the worker as in the process.
func TestTemplatesInWorker(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{})
	job := &render.Job{Templates: &render.TemplateJob{OutputLimit: 1 << 10, Left: 1 << 10,
		Inputs: []map[string]string{{"a": "x"}},
		Items:  []render.TemplateItem{{Text: `{{ .a | upper }}-{{ .a }}`}, {Text: `{{ .b }}`}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := p.Evaluate(ctx, "ns", job)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Templates) != 2 || string(out.Templates[0].Data) != "X-x" || out.Templates[1].Err == "" {
		t.Errorf("outcome %+v", out.Templates)
	}
}

// TestAccountingEscapesFailOnlyTheirEvaluation: an attack the issue found
// past the accounting (a printf width that fmt applies to every element of
// a list: 1,000 elements padded to 900 kB each is 900 MB from a short
// template) runs in a worker with coffer's real evaluation: it fails
// (refused by a budget, or ended by the memory limit), the pool's process
// stays small, and the worker pool serves the next evaluation.
func TestAccountingEscapesFailOnlyTheirEvaluation(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{Workers: 1, MemoryBytes: 40 << 20, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := benign(ctx, p, "ns"); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	before := isolatetest.PeakRSS(t)
	list := "[" + strings.TrimSuffix(strings.Repeat("0,", 1000), ",") + "]"
	job := &render.Job{Templates: &render.TemplateJob{OutputLimit: 4 << 20, Left: 4 << 20,
		Inputs: []map[string]string{{"list": list}},
		Items:  []render.TemplateItem{{Text: `{{ printf "%900000v" (fromJson .list) | len }}`}}}}
	out, err := p.Evaluate(ctx, "ns", job)
	if err == nil && (len(out.Templates) != 1 || out.Templates[0].Err == "") {
		t.Fatalf("the attack succeeded: %+v", out)
	}
	if grew := isolatetest.PeakRSS(t) - before; grew > 32<<20 {
		t.Errorf("the pool's process grew by %d MiB during the attack", grew>>20)
	}
	if err := benign(ctx, p, "ns"); err != nil {
		t.Errorf("next evaluation: %v", err)
	}
	t.Logf("the attack: %v", err)
}

// TestLegitimateWorkFitsTheDefaults: the default limits leave room for the
// largest legitimate evaluation: a 64 KiB JSON document (the most a
// Secrets Manager secret holds) searched with a projection and a filter,
// and half a Secret's 1 MiB through a template. (A larger document
// is refused before it reaches a worker: its decoding alone exceeds the
// mount's shared work budget, render.MaxWork.)
func TestLegitimateWorkFitsTheDefaults(t *testing.T) {
	p := isolatetest.NewPool(t, isolate.Config{Workers: 1, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var doc strings.Builder
	doc.WriteString(`{"items":[`)
	for i := 0; doc.Len() < 64<<10-64; i++ {
		if i > 0 {
			doc.WriteByte(',')
		}
		doc.WriteString(`{"name":"n` + strconv.Itoa(i) + `","v":` + strconv.Itoa(i) + `,"tag":"abcdefgh"}`)
	}
	doc.WriteString(`]}`)
	job := &render.Job{Extract: &render.ExtractJob{Data: []byte(doc.String()), Limit: 4 << 20,
		Entries: []render.ExtractEntry{{Expression: "items[*].name"}, {Expression: "items[?v > `100`].tag | length(@)"}}}}
	out, err := p.Evaluate(ctx, "ns", job)
	if err != nil || out.Extract == nil || len(out.Extract.Errors) != 0 || len(out.Extract.Files) != 2 {
		t.Fatalf("64 KiB document: %v %+v", err, out.Extract.Errors)
	}
	// Half a Secret's 1 MiB, encoded, decoded and upper-cased: within the
	// template's work budget (8 times its output limit), and the worker's
	// memory.
	value := strings.Repeat("x", 512<<10)
	tjob := &render.Job{Templates: &render.TemplateJob{OutputLimit: 1 << 20, Left: 1 << 20,
		Inputs: []map[string]string{{"v": value}},
		Items:  []render.TemplateItem{{Text: `{{ .v | b64enc | b64dec | len }}:{{ .v | upper | len }}`}}}}
	tout, err := p.Evaluate(ctx, "ns", tjob)
	if err != nil || len(tout.Templates) != 1 || tout.Templates[0].Err != "" {
		t.Fatalf("512 KiB template values: %v %+v", err, tout)
	}
}
