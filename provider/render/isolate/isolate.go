// Package isolate evaluates a class's untrusted expressions (jmesPath and
// templates) in a small pool of worker processes, so that an evaluation
// the accounting underestimates can at most kill a worker: never the
// provider or the sync controller, and never another tenant's mount.
//
// A worker is the coffer binary itself, re-executed with the hidden
// "evaluator" command (Serve). Before it reads any input it limits its own
// memory with RLIMIT_DATA, so the kernel ends it when an evaluation
// allocates past --evaluator-memory-bytes, whatever any budget said. The pool
// kills a worker (its process group) whose evaluation outlives the
// caller's deadline or the pool's time limit, and starts another on the
// next evaluation. Workers start on first use (a node whose classes have
// no jmesPath or templates never starts one), stay warm, and exit after a
// while idle.
//
// One evaluation at a time per worker; a tenant (namespace) holds at most
// all slots but one (see scheduler), so one namespace's hostile class
// cannot keep the others' mounts waiting.
//
// The pool is part of rendering, and lives under it: it evaluates render's
// jobs with render.Run, implements render.Evaluator, and bounds its reads
// by what a job may output.
package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/provider/render"
)

// Defaults of Config.
const (
	DefaultWorkers     = 2
	DefaultMemoryBytes = 40 << 20
	DefaultTimeout     = 2 * time.Second
	DefaultIdleTimeout = time.Minute
)

// Config sets up a Pool. Zero fields take the defaults.
type Config struct {
	// Workers is how many evaluations run at once, each in its own
	// process.
	Workers int
	// MemoryBytes is what one worker may allocate beyond its start.
	MemoryBytes int64
	// Timeout bounds one evaluation, within the caller's deadline: a
	// legitimate one takes milliseconds.
	Timeout time.Duration
	// IdleTimeout is how long a worker stays warm unused.
	IdleTimeout time.Duration
	// Command starts a worker (default: this binary, "evaluator").
	Command []string
	// Env is added to the worker's environment, which is otherwise only
	// what it needs: the provider's own (AWS settings, credentials) is not
	// passed on.
	Env    []string
	Logger *slog.Logger
	// Clock times idle workers and the grace a closed worker has to exit
	// (nil: the real clock). Evaluations' time limits are their contexts'.
	Clock clock.WithDelayedExecution
}

// Pool runs evaluations in worker processes; it implements
// render.Evaluator. It is safe for concurrent use.
type Pool struct {
	cfg   Config
	sched *scheduler
	mu    sync.Mutex
	idle  []*worker
	// closed stops new workers; Close ends the idle ones.
	closed bool
}

// New returns a pool; it starts no process until the first evaluation.
func New(cfg Config) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if len(cfg.Command) == 0 {
		// The running binary, even if the file was replaced since.
		cfg.Command = []string{"/proc/self/exe", "evaluator"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pool{cfg: cfg, sched: newScheduler(cfg.Workers)}
}

// Error is an evaluation that could not finish. Its message is fixed by
// the pool (the limit and the flag that sets it), never the worker's
// output, which could hold values.
type Error struct {
	// Cause is one of the Cause constants.
	Cause string
	msg   string
	hint  string
	err   error
}

// Causes of an Error, usable as a metric label.
const (
	CauseMemory   = "memory"
	CauseTime     = "time"
	CauseDeadline = "deadline"
	CauseCrash    = "crash"
	CauseStart    = "start"
	CauseTooLarge = "too_large"
)

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// Hint says what the class's author can do.
func (e *Error) Hint() string { return e.hint }

const hintSimplify = "simplify the expression or template: it should select and format the secret's values, not multiply them"

// Evaluate runs job in a worker (see render.Evaluator).
func (p *Pool) Evaluate(ctx context.Context, tenant string, job *render.Job) (*render.Outcome, error) {
	timeout := p.cfg.Timeout
	req, err := json.Marshal(request{Job: job, Timeout: timeout})
	if err != nil {
		return nil, errors.New("cannot be sent to the evaluator")
	}
	if int64(len(req)) > p.cfg.MemoryBytes/2 {
		return nil, &Error{Cause: CauseTooLarge, msg: fmt.Sprintf("needs %d bytes of input, more than half the evaluator's %s memory limit (--evaluator-memory-bytes)", len(req), mib(p.cfg.MemoryBytes)),
			hint: "select less, or raise --evaluator-memory-bytes"}
	}
	if err := p.sched.acquire(ctx, tenant); err != nil {
		return nil, &Error{Cause: CauseDeadline, msg: fmt.Sprintf("found no free evaluator before the deadline (%v)", err), err: err,
			hint: "retry later; the node's evaluators were busy"}
	}
	defer p.sched.release(tenant)
	w, err := p.get()
	if err != nil {
		p.cfg.Logger.Error("cannot start an evaluator process", "error", err)
		return nil, &Error{Cause: CauseStart, msg: "could not start an evaluator process", err: err, hint: "see the provider's log"}
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := w.call(ectx, req, responseLimit(job, len(req)))
	if err == nil {
		p.put(w)
		return out, nil
	}
	p.discard(w)
	e := p.explain(ctx, w, err)
	p.cfg.Logger.Warn("evaluation failed in its worker", "tenant", tenant, "cause", e.Cause, "exit", w.exitState())
	return nil, e
}

// responseLimit bounds the outcome frame the pool reads: the outputs the
// job may write (the evaluators check their outputs' sizes exactly, not by
// accounting), as JSON's base64, plus messages, which quote the job's own
// expressions and templates.
func responseLimit(job *render.Job, request int) int {
	output := 0
	switch {
	case job.Extract != nil:
		output = max(0, job.Extract.Limit-job.Extract.Used)
	case job.Templates != nil:
		output = max(0, job.Templates.Left)
		for _, it := range job.Templates.Items {
			output += max(0, it.Credit)
		}
	}
	return output/3*4 + 8*request + 1<<20
}

// explain turns a failed call into the caller's error, from what the pool
// knows: whether it killed the worker itself, and how the worker ended.
func (p *Pool) explain(ctx context.Context, w *worker, err error) *Error {
	switch {
	case w.killedForTime && ctx.Err() != nil:
		return &Error{Cause: CauseDeadline, msg: fmt.Sprintf("did not finish before the deadline (%v)", ctx.Err()), err: ctx.Err(), hint: hintSimplify}
	case w.killedForTime:
		return &Error{Cause: CauseTime, msg: fmt.Sprintf("ran longer than the evaluator's %s time limit (--evaluator-timeout)", p.cfg.Timeout), hint: hintSimplify}
	case errors.Is(err, errFrameTooLarge):
		return &Error{Cause: CauseTooLarge, msg: "gave a result larger than its output limit", hint: hintSimplify}
	}
	switch w.cause() {
	case CauseMemory:
		return &Error{Cause: CauseMemory, msg: fmt.Sprintf("exceeded the evaluator's %s memory limit (--evaluator-memory-bytes)", mib(p.cfg.MemoryBytes)), hint: hintSimplify}
	case "stack":
		return &Error{Cause: CauseMemory, msg: fmt.Sprintf("nests too deeply for the evaluator's stack (a quarter of its %s memory limit, --evaluator-memory-bytes)", mib(p.cfg.MemoryBytes)), hint: "nest the expression or template less deeply"}
	case CauseTime:
		return &Error{Cause: CauseTime, msg: "ran out of the evaluator's CPU time", hint: hintSimplify}
	}
	return &Error{Cause: CauseCrash, msg: "ended the evaluator process unexpectedly", hint: "see the provider's log; if the class is valid, this is a bug in coffer"}
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + "-byte"
}

// get takes an idle worker, or starts one.
func (p *Pool) get() (*worker, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.idleTimer.Stop()
		return w, nil
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errors.New("the evaluator pool is closed")
	}
	return start(p.cfg)
}

// put keeps a healthy worker warm, until it has been idle IdleTimeout.
func (p *Pool) put(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		w.close()
		return
	}
	p.idle = append(p.idle, w)
	w.idleTimer = p.cfg.Clock.AfterFunc(p.cfg.IdleTimeout, func() { p.retire(w) })
}

// retire ends w if it is still idle.
func (p *Pool) retire(w *worker) {
	p.mu.Lock()
	for i, o := range p.idle {
		if o == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			w.close()
			return
		}
	}
	p.mu.Unlock()
}

// discard ends a worker that failed (already dead, or killed).
func (p *Pool) discard(w *worker) {
	w.kill()
	<-w.done
	w.closePipes()
}

// Close ends the idle workers and every busy one when its evaluation ends.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.idleTimer.Stop()
		w.close()
	}
}

// Processes is how many worker processes are running (for tests and
// metrics): idle ones plus those evaluating.
func (p *Pool) Processes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) + p.sched.inUse()
}

// Load is how many evaluations run and how many wait for a worker (for
// tests and metrics).
func (p *Pool) Load() (running, waiting int) {
	return p.sched.inUse(), p.sched.queued()
}

// worker is one evaluator process.
type worker struct {
	cmd       *exec.Cmd
	in, out   *os.File
	stderr    *headBuffer
	done      chan struct{} // closed when the process has been reaped
	waitErr   error
	idleTimer clock.Timer
	// clock times the grace a closed worker has to exit.
	clock clock.Clock
	// killedForTime is set (before the kill) when the pool ended the
	// evaluation for its deadline.
	killedForTime bool
}

func start(cfg Config) (*worker, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = append([]string{
		// A fatal error prints no goroutine stacks (the evaluation's
		// arguments); one core per worker, so a spinning evaluation
		// leaves the other to the provider.
		"GOTRACEBACK=none", "GOMAXPROCS=1",
		MemoryEnv + "=" + strconv.FormatInt(cfg.MemoryBytes, 10),
	}, cfg.Env...)
	cmd.Stdin, cmd.Stdout = inR, outW
	w := &worker{cmd: cmd, in: inW, out: outR, stderr: &headBuffer{}, done: make(chan struct{}), clock: cfg.Clock}
	cmd.Stderr = w.stderr
	// Its own process group, so a kill reaches anything it started; and
	// it dies with the provider.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	go func() {
		w.waitErr = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// call sends one request and reads its outcome, killing the worker when
// ctx ends first.
func (w *worker) call(ctx context.Context, req []byte, limit int) (*render.Outcome, error) {
	type result struct {
		frame []byte
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		if err := writeFrame(w.in, req); err != nil {
			ch <- result{err: err}
			return
		}
		b, err := readFrame(w.out, limit)
		ch <- result{b, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		w.killedForTime = true
		w.kill()
		<-ch // the pipes break when the process dies
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	var out render.Outcome
	if err := json.Unmarshal(r.frame, &out); err != nil {
		return nil, errors.New("the evaluator's answer is not valid")
	}
	return &out, nil
}

func (w *worker) kill() {
	select {
	case <-w.done:
		return // reaped: its pid may be another process's now
	default:
	}
	if w.cmd.Process != nil {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// close ends an idle worker: it exits when its input ends.
func (w *worker) close() {
	w.in.Close()
	go func() {
		select {
		case <-w.done:
		case <-w.clock.After(5 * time.Second):
			w.kill()
			<-w.done
		}
		w.out.Close()
	}()
}

func (w *worker) closePipes() {
	w.in.Close()
	w.out.Close()
}

// cause reads how a dead worker ended: the Go runtime's fatal error
// (found by fixed markers in the first bytes of its stderr, which are
// never shown), or the signal that killed it.
func (w *worker) cause() string {
	<-w.done
	text := w.stderr.String()
	switch {
	case containsAny(text, "stack overflow", "stack exceeds"):
		return "stack"
	case containsAny(text, "out of memory", "cannot allocate memory", "failed to allocate"): // the last: the race detector's runtime
		return CauseMemory
	}
	var exit *exec.ExitError
	if errors.As(w.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			switch ws.Signal() {
			case syscall.SIGKILL:
				return CauseMemory // not the pool's kill: the kernel's OOM killer
			case syscall.SIGXCPU:
				return CauseTime
			}
		}
	}
	return CauseCrash
}

// exitState describes how the worker ended, for the log: the exit status
// or signal only.
func (w *worker) exitState() string {
	<-w.done
	if w.cmd.ProcessState == nil {
		return "not started"
	}
	return w.cmd.ProcessState.String()
}

// headBuffer keeps the first bytes written to it and drops the rest: a
// worker's stderr, read only for the runtime's fatal error markers.
type headBuffer struct {
	b []byte
}

const headBytes = 4 << 10

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := headBytes - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headBuffer) String() string { return string(h.b) }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
