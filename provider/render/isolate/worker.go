package isolate

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-csi/coffer/provider/render"
)

// MemoryEnv carries the worker's memory limit (bytes) from the pool to the
// worker: the worker sets its limits from it before it reads any input.
const MemoryEnv = "COFFER_EVALUATOR_MEMORY"

// Handler evaluates one job in the worker: render.Run in coffer; tests
// pass one that allocates without bound, to show that the kernel's limit
// holds where the accounting does not.
type Handler func(ctx context.Context, job *render.Job) *render.Outcome

// request is one frame to a worker.
type request struct {
	Job *render.Job
	// Timeout is how long the evaluation may run: the worker's own
	// deadline, before the pool kills it.
	Timeout time.Duration
}

// Serve is the worker's main loop (the hidden "coffer evaluator"
// command): it limits its own memory from MemoryEnv, then answers one
// request frame from in with one outcome frame on out, until in ends.
// Nothing is logged: values pass through here.
func Serve(in io.Reader, out io.Writer, handle Handler) error {
	memory, err := strconv.ParseInt(os.Getenv(MemoryEnv), 10, 64)
	if err != nil || memory <= 0 {
		return fmt.Errorf("%s must be a positive number of bytes", MemoryEnv)
	}
	if err := limitSelf(memory); err != nil {
		return err
	}
	r := bufio.NewReader(in)
	for {
		// A request holds what the provider already holds (bounded
		// values, the class's expressions); the worker's limit caps it.
		frame, err := readFrame(r, int(memory))
		if errors.Is(err, io.EOF) {
			return nil // the pool closed the pipe: idle, or going away
		}
		if err != nil {
			return err
		}
		var req request
		if err := json.Unmarshal(frame, &req); err != nil || req.Job == nil {
			return errors.New("the request is not valid")
		}
		frame = nil
		ctx, cancel := context.WithTimeout(context.Background(), req.Timeout)
		outcome := handle(ctx, req.Job)
		cancel()
		b, err := json.Marshal(outcome)
		if err != nil {
			return errors.New("the outcome cannot be encoded")
		}
		outcome, req = nil, request{}
		if err := writeFrame(out, b); err != nil {
			return err
		}
		// Give back what one evaluation built, so an idle worker is small.
		b = nil
		debug.FreeOSMemory()
	}
}

// limitSelf makes the kernel bound this process: its data segment (the Go
// heap, goroutine stacks and everything the runtime maps writable) may grow
// by at most memory bytes over what it has now, so an evaluation that
// allocates without bound fails with "out of memory" and the process ends
// (a Go allocation failure is fatal), whatever the accounting said.
//
// RLIMIT_DATA, not RLIMIT_AS: the Go runtime reserves far more address
// space than it uses (about 1.2 GiB at start on amd64), which RLIMIT_AS
// would count; RLIMIT_DATA counts only private writable mappings (about
// 40 MiB at start, most of it reserved, not resident), and since Linux
// 4.7 it is enforced for mmap, which is how Go grows its heap.
//
// The Go soft limit (debug.SetMemoryLimit) makes the collector work hard
// before the hard limit is reached, so a legitimate evaluation near the
// limit collects instead of dying; the stack limit turns runaway recursion
// into a quick "stack overflow" well before it exhausts the memory.
func limitSelf(memory int64) error {
	base, err := dataSize()
	if err != nil {
		return err
	}
	limit := uint64(base + memory)
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		return fmt.Errorf("limiting the evaluator's memory: %w", err)
	}
	// No core files: they would hold the values being evaluated.
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		return fmt.Errorf("disabling core files: %w", err)
	}
	debug.SetMemoryLimit(memory * 3 / 4)
	debug.SetMaxStack(int(max(memory/4, 1<<20)))
	return nil
}

// dataSize is the process's VmData, in bytes.
func dataSize() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading the evaluator's memory use: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("reading the evaluator's memory use: no VmData in /proc/self/status")
}

// Frames are a 4-byte big-endian length, then that many bytes of JSON.
// Each side bounds what it reads before it allocates it.

var errFrameTooLarge = errors.New("frame over the limit")

func writeFrame(w io.Writer, b []byte) error {
	if uint64(len(b)) > 1<<32-1 {
		return errFrameTooLarge
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(b)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r io.Reader, limit int) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if uint64(n) > uint64(limit) {
		return nil, errFrameTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
