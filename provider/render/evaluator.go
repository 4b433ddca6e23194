package render

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coffer-csi/coffer/internal/jmes"
	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Evaluator runs the evaluations of a class's expressions (jmesPath
// extraction and templates) somewhere the class cannot hurt the caller: a
// worker process whose memory the kernel limits (provider/render/isolate).
// Their accounting (jmes and tmpl budgets) bounds what an evaluation builds;
// an Evaluator holds even where that accounting is wrong.
//
// Evaluate returns the Outcome that Run would, or an error when the
// evaluation could not finish: it outlived ctx, or its worker died (over
// its memory limit, a stack overflow). The error's text is fixed by the
// Evaluator, never a value, and may implement Hint() string.
//
// tenant groups evaluations for fairness (a namespace): one tenant's
// evaluations may not take every worker.
type Evaluator interface {
	Evaluate(ctx context.Context, tenant string, job *Job) (*Outcome, error)
}

// Job is one evaluation: exactly one of its fields is set. It holds only
// data (expressions, templates, values), so it can cross a pipe.
type Job struct {
	Extract   *ExtractJob  `json:",omitempty"`
	Templates *TemplateJob `json:",omitempty"`
	// Work is what remains of the request's shared work budget (see
	// internal/work), and its size: the evaluation spends from it as if
	// it ran in the caller's process, and its Outcome says how much.
	Work *WorkShare `json:",omitempty"`
}

// WorkShare is the part of a request's work budget a Job may spend.
type WorkShare struct {
	Left, Total int
}

// Outcome is a Job's result: the field of the Job's kind is set.
type Outcome struct {
	Extract   *ExtractOutcome   `json:",omitempty"`
	Templates []TemplateOutcome `json:",omitempty"`
	// WorkSpent is what the evaluation spent of Job.Work (more than its
	// Left when it ran out).
	WorkSpent int `json:",omitempty"`
}

// ExtractJob applies an object's jmesPath entries to its value, as
// extract does: within what remains (Limit - Used) of the response limit.
type ExtractJob struct {
	Data        []byte
	Entries     []ExtractEntry
	Limit, Used int
}

// ExtractEntry is one jmesPath entry of an ExtractJob.
type ExtractEntry struct {
	Expression, Decoding string
}

// ExtractOutcome has a file's content per entry that succeeded, and an
// error (detail and hint, never a value) per entry that did not.
type ExtractOutcome struct {
	Files  []EntryData  `json:",omitempty"`
	Errors []EntryError `json:",omitempty"`
}

// EntryData is the content an entry extracted.
type EntryData struct {
	Entry int
	Data  []byte
}

// EntryError is why an entry failed.
type EntryError struct {
	Entry        int
	Detail, Hint string
}

// TemplateJob executes templates in order within one tmpl.Execution: work
// WorkFactor times OutputLimit, output at most Left (plus each item's
// Credit, the output it replaces) in total.
type TemplateJob struct {
	Wording     tmpl.Wording
	OutputLimit int
	Left        int
	// Inputs are the value sets items execute over (several items may
	// share one: a Secret's keys).
	Inputs []map[string]string
	Items  []TemplateItem
	// StopAtFirst leaves the items after a failure unexecuted.
	StopAtFirst bool
}

// TemplateItem is one template of a TemplateJob.
type TemplateItem struct {
	Text   string
	Input  int // index into Inputs
	Credit int
	// parsed is the parsed Text, when run in the process that parsed it.
	parsed *tmpl.Template
}

// TemplateOutcome is one item's output, or its error message (naming the
// template's line and action, never a value). An item left unexecuted
// (StopAtFirst) has neither.
type TemplateOutcome struct {
	Data []byte `json:",omitempty"`
	Err  string `json:",omitempty"`
}

// Run evaluates job in this process. It is what an evaluator's worker
// runs, and what rendering does without an Evaluator.
//
// Under a ctx that carries no work budget (a worker's), the job's share of
// its caller's budget stands in for it (the whole MaxWork when the job
// names none), and the Outcome reports what was spent of it.
func Run(ctx context.Context, job *Job) *Outcome {
	var part *work.Budget
	start := 0
	if work.FromContext(ctx) == nil {
		share := WorkShare{Left: MaxWork, Total: MaxWork}
		if job.Work != nil {
			share = *job.Work
		}
		start = share.Left
		part = work.Part(share.Left, share.Total)
		ctx = work.NewContext(ctx, part)
	}
	out := &Outcome{}
	switch {
	case job.Extract != nil:
		out.Extract = runExtract(ctx, job.Extract)
	case job.Templates != nil:
		out.Templates = runTemplates(ctx, job.Templates)
	}
	if part != nil {
		out.WorkSpent = part.Spent(start)
	}
	return out
}

// runExtract runs extract on an object made of the job's entries (entry j
// writes the path "j"), so that the evaluation is extract's own.
func runExtract(ctx context.Context, job *ExtractJob) *ExtractOutcome {
	o := &spc.Object{Index: -1}
	out := &ExtractOutcome{}
	for j, e := range job.Entries {
		c, err := jmes.Compile(e.Expression)
		if err != nil {
			// The class was validated with the same compiler.
			out.Errors = append(out.Errors, EntryError{Entry: j, Detail: fmt.Sprintf("path %q cannot be compiled", e.Expression), Hint: "check the expression"})
			c = nil
		}
		o.JMESPath = append(o.JMESPath, &spc.JMESPathEntry{Expression: e.Expression, Path: strconv.Itoa(j), Compiled: c, Decoding: e.Decoding})
	}
	if len(out.Errors) > 0 {
		return out
	}
	files, errs := extract(ctx, fetch.Value{Object: o, Data: job.Data}, job.Limit, job.Used)
	for _, f := range files {
		out.Files = append(out.Files, EntryData{Entry: entryOf(o, f.Path), Data: f.Data})
	}
	for _, e := range errs {
		out.Errors = append(out.Errors, EntryError{Entry: e.Entry, Detail: e.Detail, Hint: e.Hint})
	}
	return out
}

func runTemplates(ctx context.Context, job *TemplateJob) []TemplateOutcome {
	out := make([]TemplateOutcome, len(job.Items))
	x := tmpl.NewExecution(ctx, job.OutputLimit, job.Wording)
	left := job.Left
	for i, it := range job.Items {
		t := it.parsed
		if t == nil {
			var err error
			if t, err = tmpl.Parse(it.Text); err != nil {
				out[i].Err = err.Error()
				if job.StopAtFirst {
					break
				}
				continue
			}
		}
		var values map[string]string
		if it.Input >= 0 && it.Input < len(job.Inputs) {
			values = job.Inputs[it.Input]
		}
		left += it.Credit
		data, err := x.Execute(t, values, max(0, left))
		if err != nil {
			out[i].Err = err.Error()
			if job.StopAtFirst {
				break
			}
			continue
		}
		if data == nil {
			data = []byte{}
		}
		out[i].Data = data
		left -= len(data)
	}
	return out
}

// firstFailure passes evaluations on to an Evaluator until one cannot
// finish; every later one fails at once. A class whose first evaluation
// killed its worker would most likely kill the next too: one render
// (a mount) pays for one worker, not one per object. Not safe for
// concurrent use: a render evaluates in order.
type firstFailure struct {
	ev     Evaluator
	failed bool
}

var errEarlierFailure = hinted{errors.New("was skipped: an earlier evaluation of this class could not finish"),
	"fix the expression or template that failed first"}

type hinted struct {
	error
	hint string
}

func (h hinted) Hint() string { return h.hint }

func (f *firstFailure) Evaluate(ctx context.Context, tenant string, job *Job) (*Outcome, error) {
	if f.failed {
		return nil, errEarlierFailure
	}
	out, err := f.ev.Evaluate(ctx, tenant, job)
	f.failed = err != nil
	return out, err
}

// Evaluate runs job with ev, or in this process when ev is nil. Through
// ev, the job carries what remains of the work budget ctx carries, and
// what the evaluation spent of it is spent from that budget here: one
// request shares one budget wherever its evaluations run.
func Evaluate(ctx context.Context, ev Evaluator, tenant string, job *Job) (*Outcome, error) {
	if ev == nil {
		return Run(ctx, job), nil
	}
	shared := work.FromContext(ctx)
	if shared != nil {
		job.Work = &WorkShare{Left: shared.Left(), Total: shared.Total()}
	}
	out, err := ev.Evaluate(ctx, tenant, job)
	if err == nil && shared != nil {
		shared.Spend(max(0, min(out.WorkSpent, job.Work.Left+1)))
	}
	return out, err
}

// extractWith applies an object's jmesPath entries through ev (in this
// process when nil), and turns the outcome into the object's files and
// errors, as extract would.
func extractWith(ctx context.Context, ev Evaluator, tenant string, v fetch.Value, limit, used int) ([]File, fetch.Errors) {
	if ev == nil {
		return extract(ctx, v, limit, used)
	}
	o := v.Object
	job := &ExtractJob{Data: v.Data, Limit: limit, Used: used}
	for _, e := range o.JMESPath {
		job.Entries = append(job.Entries, ExtractEntry{Expression: e.Expression, Decoding: e.Decoding})
	}
	res, err := Evaluate(ctx, ev, tenant, &Job{Extract: job})
	if err == nil && res.Extract == nil {
		err = errors.New("the evaluator gave no answer")
	}
	if err != nil {
		return nil, fetch.Errors{{Object: o, Entry: -1, Kind: fetch.KindInvalid,
			Detail: fmt.Sprintf("evaluating its jmesPath (%s) %v", describeExpressions(o), err),
			Hint:   hintOf(err, "simplify the expressions; they should select from the secret's JSON, not multiply it")}}
	}
	var files []File
	for _, f := range res.Extract.Files {
		if f.Entry < 0 || f.Entry >= len(o.JMESPath) {
			continue
		}
		e := o.JMESPath[f.Entry]
		files = append(files, File{Path: e.Path, Mode: e.Mode, Data: f.Data, Version: v.Version, Object: o})
	}
	var errs fetch.Errors
	for _, e := range res.Extract.Errors {
		if e.Entry < -1 || e.Entry >= len(o.JMESPath) {
			continue
		}
		errs = append(errs, &fetch.ObjectError{Object: o, Entry: e.Entry, Kind: fetch.KindInvalid, Detail: e.Detail, Hint: e.Hint})
	}
	return files, errs
}

// describeExpressions names an object's jmesPath expressions, the first
// few of them.
func describeExpressions(o *spc.Object) string {
	const shown = 3
	var parts []string
	for _, e := range o.JMESPath[:min(shown, len(o.JMESPath))] {
		parts = append(parts, quoteShort(e.Expression))
	}
	s := "path " + strings.Join(parts, ", ")
	if len(o.JMESPath) > 1 {
		s = "paths " + strings.Join(parts, ", ")
	}
	if len(o.JMESPath) > shown {
		s += fmt.Sprintf(" and %d more", len(o.JMESPath)-shown)
	}
	return s
}

// hintOf is err's own hint, or def.
func hintOf(err error, def string) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return def
}

// quoteShort quotes an expression for a message, cut to its first 64
// bytes (at a character boundary): enough to find it in the class.
func quoteShort(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
