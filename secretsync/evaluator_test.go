package secretsync

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/render"
)

// recordingEvaluator runs jobs in process and records their tenants; with
// fail set it fails every job as a worker's death would.
type recordingEvaluator struct {
	tenants []string
	fail    error
}

func (r *recordingEvaluator) Evaluate(ctx context.Context, tenant string, job *render.Job) (*render.Outcome, error) {
	r.tenants = append(r.tenants, tenant)
	if r.fail != nil {
		return nil, r.fail
	}
	return render.Run(ctx, job), nil
}

// TestTemplatesRunThroughTheEvaluator: a Secret's templates run through
// the engine's Evaluator as the class's namespace, give what Build gives,
// and an evaluation that could not finish fails that Secret with the
// evaluator's message, never a value.
func TestTemplatesRunThroughTheEvaluator(t *testing.T) {
	s := parseDecl(t, templateDecl(`{{ .pw | upper }}:{{ len (fromJson .list) }}`))[0]
	fs := byPath(files(t, testConfig(t), templateContent(), "v1"))
	want, err := s.Build(context.Background(), fs)
	if err != nil {
		t.Fatal(err)
	}
	ev := &recordingEvaluator{}
	got, err := s.BuildWith(context.Background(), fs, ev, "team-a")
	if err != nil || string(got["x"]) != string(want["x"]) || len(ev.tenants) != 1 || ev.tenants[0] != "team-a" {
		t.Fatalf("BuildWith = %q, %v (tenants %v), want %q as team-a", got["x"], err, ev.tenants, want["x"])
	}
	ev.fail = errors.New("exceeded the evaluator's 40 MiB memory limit (--evaluator-memory-bytes)")
	_, err = s.BuildWith(context.Background(), fs, ev, "team-a")
	if err == nil || !strings.Contains(err.Error(), "template.data: running the templates exceeded the evaluator's 40 MiB memory limit") || strings.Contains(err.Error(), canary) {
		t.Fatalf("BuildWith = %v, want the evaluator's limit", err)
	}
}

// TestEvaluatorDeathFailsOnlyItsSecret: when the evaluator fails a
// Secret's templates (its worker died), that Secret is reported
// InvalidData with the evaluator's message in its Event, and a Secret of
// the same class without templates is synced all the same.
func TestEvaluatorDeathFailsOnlyItsSecret(t *testing.T) {
	e := newEnv(t)
	ev := &recordingEvaluator{fail: errors.New("exceeded the evaluator's 40 MiB memory limit (--evaluator-memory-bytes)")}
	e.engine.Evaluator = ev
	decl := "[{secretName: s, data: [{key: pw, objectName: db-pass}], template: {data: {x: '{{ .pw }}'}}}, {secretName: plain, data: [{key: pw, objectName: db-pass}]}]"
	res := e.sync(decl, templateContent(), "v1", nil)
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	wantResult(t, res[0], false, ReasonInvalidData, "exceeded the evaluator's 40 MiB memory limit")
	wantResult(t, res[1], true, ReasonCreated)
	if len(ev.tenants) != 1 || ev.tenants[0] != testNS {
		t.Errorf("tenants %v, want the class's namespace %s", ev.tenants, testNS)
	}
	if events := strings.Join(e.events.take(), "\n"); !strings.Contains(events, "Warning "+ReasonInvalidData) || !strings.Contains(events, "evaluator's 40 MiB memory limit") {
		t.Errorf("events %s, want the Secret's failure", events)
	}
}
