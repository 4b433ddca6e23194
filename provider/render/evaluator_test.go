package render_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// pipeEvaluator runs jobs as a worker process would: the job and the
// outcome cross JSON, so nothing but data reaches the evaluation.
type pipeEvaluator struct{ tenants []string }

func (p *pipeEvaluator) Evaluate(ctx context.Context, tenant string, job *render.Job) (*render.Outcome, error) {
	p.tenants = append(p.tenants, tenant)
	b, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	var sent render.Job
	if err := json.Unmarshal(b, &sent); err != nil {
		return nil, err
	}
	if b, err = json.Marshal(render.Run(ctx, &sent)); err != nil {
		return nil, err
	}
	var out render.Outcome
	return &out, json.Unmarshal(b, &out)
}

type deadEvaluator struct{}

func (deadEvaluator) Evaluate(context.Context, string, *render.Job) (*render.Outcome, error) {
	return nil, hinted{errors.New("exceeded the evaluator's 64 MiB memory limit (--evaluator-memory-bytes)")}
}

type hinted struct{ error }

func (hinted) Hint() string { return "the hint of the evaluator" }

// TestEvaluatorGivesTheSameFiles: jmesPath files, their errors and
// templated files are the same whether rendered in this process or
// through an Evaluator, and the Evaluator is told the tenant.
func TestEvaluatorGivesTheSameFiles(t *testing.T) {
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1",
		"objects": "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: user}, {path: port, objectAlias: port, writeFile: false}, {path: missing, objectAlias: m}, {path: pw, objectAlias: pw, decoding: base64}]}",
		"files":   `[{path: dsn, template: '{{ .user }}:{{ .port }}'}, {path: bad, template: '{{ (fromJson .user).x }}'}, {path: x, template: '{{ printf "%s-%s" .user .user }}'}]`}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	values := []fetch.Value{{Object: cfg.Objects[0], Data: []byte(`{"user":"app","port":5432,"pw":"c2VjcmV0"}`), Version: "v1"}}
	render1 := func(ev render.Evaluator, templates []*spc.FileTemplate) ([]render.File, string) {
		files, err := render.Files(context.Background(), values, render.Options{Evaluator: ev, Tenant: "team-a", Templates: templates})
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		return files, msg
	}
	// The missing key fails the objects, so the templates are checked
	// with a class without it.
	_, localErr := render1(nil, nil)
	ev := &pipeEvaluator{}
	_, pipeErr := render1(ev, nil)
	if localErr == "" || localErr != pipeErr {
		t.Fatalf("errors differ:\n in process: %s\n evaluator:  %s", localErr, pipeErr)
	}
	cfg.Objects[0].JMESPath = append(cfg.Objects[0].JMESPath[:2], cfg.Objects[0].JMESPath[3])
	_, localErr = render1(nil, cfg.Files)
	_, pipeErr = render1(ev, cfg.Files)
	if localErr == "" || localErr != pipeErr || !strings.Contains(pipeErr, `files[1] (bad)`) {
		t.Fatalf("errors differ:\n in process: %s\n evaluator:  %s", localErr, pipeErr)
	}
	cfg.Files = append(cfg.Files[:1], cfg.Files[2])
	local, localErr := render1(nil, cfg.Files)
	piped, pipeErr := render1(ev, cfg.Files)
	if localErr != "" || pipeErr != "" || len(local) != len(piped) || len(local) != 6 {
		t.Fatalf("in process: %d files (%s); evaluator: %d files (%s)", len(local), localErr, len(piped), pipeErr)
	}
	for i := range local {
		l, p := local[i], piped[i]
		if l.Path != p.Path || string(l.Data) != string(p.Data) || l.Version != p.Version || l.Unwritten != p.Unwritten || l.Mode != p.Mode {
			t.Errorf("file %d: in process %s %q %s %v, evaluator %s %q %s %v", i, l.Path, l.Data, l.Version, l.Unwritten, p.Path, p.Data, p.Version, p.Unwritten)
		}
	}
	for _, tenant := range ev.tenants {
		if tenant != "team-a" {
			t.Errorf("tenant %q, want team-a", tenant)
		}
	}
}

// TestEvaluatorFailure: an evaluation that could not finish fails its own
// object or templated files, with the evaluator's message and hint.
func TestEvaluatorFailure(t *testing.T) {
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1",
		"objects": "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: user}]}\n- {objectName: s, objectType: secretsmanager}",
		"files":   `[{path: a, template: '{{ .s }}'}, {path: b, template: '{{ .s }}'}]`}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(`{"user":"app"}`), Version: "v"}}, render.Options{Evaluator: deadEvaluator{}})
	want := `objects[0] (db): evaluating its jmesPath (path "user") exceeded the evaluator's 64 MiB memory limit (--evaluator-memory-bytes)`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "the hint of the evaluator") {
		t.Errorf("err = %v, want %q and the hint", err, want)
	}
	_, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[1], Data: []byte("x"), Version: "v"}}, render.Options{Evaluator: deadEvaluator{}, Templates: cfg.Files})
	want = `files[0] (a): rendering it and the other 1 templated files exceeded the evaluator's 64 MiB memory limit`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

type countingDead struct{ calls int }

func (c *countingDead) Evaluate(ctx context.Context, tenant string, job *render.Job) (*render.Outcome, error) {
	c.calls++
	return deadEvaluator{}.Evaluate(ctx, tenant, job)
}

// TestOneWorkerPerRender: after an evaluation of a mount could not finish,
// the mount's other evaluations fail at once instead of each killing
// another worker.
func TestOneWorkerPerRender(t *testing.T) {
	cfg := parse(t, "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: x, objectAlias: ax}]}\n- {objectName: b, objectType: secretsmanager, jmesPath: [{path: x, objectAlias: bx}]}")
	ev := &countingDead{}
	values := []fetch.Value{{Object: cfg.Objects[0], Data: []byte(`{"x":1}`), Version: "v"}, {Object: cfg.Objects[1], Data: []byte(`{"x":1}`), Version: "v"}}
	_, err := render.Files(context.Background(), values, render.Options{Evaluator: ev})
	if ev.calls != 1 {
		t.Errorf("%d evaluations, want 1", ev.calls)
	}
	for _, want := range []string{"objects[0] (a): evaluating its jmesPath (path \"x\") exceeded", "objects[1] (b): evaluating its jmesPath (path \"x\") was skipped: an earlier evaluation of this class could not finish"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// spyEvaluator records what each job may spend of the shared budget.
type spyEvaluator struct {
	pipeEvaluator
	shares []render.WorkShare
}

func (s *spyEvaluator) Evaluate(ctx context.Context, tenant string, job *render.Job) (*render.Outcome, error) {
	if job.Work != nil {
		s.shares = append(s.shares, *job.Work)
	}
	return s.pipeEvaluator.Evaluate(context.Background(), tenant, job)
}

// TestSharedBudgetCrossesTheEvaluator: a mount's evaluations share one work
// budget in worker processes as in this one: each job carries what remains
// of it, and what the worker spent is spent here, so four objects of 64
// unwritten entries each (within every cap) fail as they do in process,
// rather than each getting a fresh budget in its worker.
func TestSharedBudgetCrossesTheEvaluator(t *testing.T) {
	const limit = 64 << 10
	secret := `{"s":"` + strings.Repeat("x", 6000) + `"}`
	var objects []string
	for o := range 4 {
		var entries []string
		for i := range 64 {
			entries = append(entries, fmt.Sprintf("{path: 'length(to_string([@,@,@,@,@,@,@,@]))', objectAlias: e%d-%d, writeFile: false}", o, i))
		}
		objects = append(objects, fmt.Sprintf("- {objectName: s%d, objectType: secretsmanager, jmesPath: [%s]}", o, strings.Join(entries, ", ")))
	}
	cfg, err := spc.Parse(map[string]string{"objects": strings.Join(objects, "\n"), "region": "us-east-1"}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var values []fetch.Value
	for _, o := range cfg.Objects {
		values = append(values, fetch.Value{Object: o, Data: []byte(secret), Version: "v"})
	}
	_, local := render.Files(context.Background(), values, render.Options{MaxResponseBytes: limit})
	spy := &spyEvaluator{}
	_, through := render.Files(context.Background(), values, render.Options{MaxResponseBytes: limit, Evaluator: spy})
	if local == nil || !strings.Contains(local.Error(), "work budget") {
		t.Fatalf("in process: %v, want the shared work budget", local)
	}
	if through == nil || through.Error() != local.Error() {
		t.Fatalf("through the evaluator:\n %v\nin process:\n %v", through, local)
	}
	if len(spy.shares) < 2 {
		t.Fatalf("jobs carried %d shares of the budget", len(spy.shares))
	}
	for i := 1; i < len(spy.shares); i++ {
		prev, now := spy.shares[i-1], spy.shares[i]
		if (prev.Left > 0 && now.Left >= prev.Left) || now.Left > prev.Left || now.Total != spy.shares[0].Total {
			t.Errorf("job %d may spend %+v after job %d's %+v: the budget did not shrink", i, now, i-1, prev)
		}
	}
}
