package harness

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Group is the processes of one test cluster, logging into one directory.
type Group struct {
	LogDir string

	mu    sync.Mutex
	procs []*Process // in start order
}

// Spawn starts bin as the component name, logging to LogDir/name.log.
func (g *Group) Spawn(name, bin string, env []string, args ...string) (*Process, error) {
	p := NewProcess(name, filepath.Join(g.LogDir, name+".log"), bin, env, args...)
	if err := p.Start(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p, nil
}

// Procs returns the group's processes in start order.
func (g *Group) Procs() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}

// StopAll stops every process, newest first.
func (g *Group) StopAll(grace time.Duration) {
	procs := g.Procs()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(grace)
	}
}

// Marks remembers where each log ended, for LogTailsSince after a failure.
func (g *Group) Marks() map[string]int64 {
	m := map[string]int64{}
	for _, p := range g.Procs() {
		m[p.Name] = p.LogSize()
	}
	return m
}

// LogTailsSince returns the last lines every component logged since marks
// (nil: since it started).
func (g *Group) LogTailsSince(marks map[string]int64, lines int) string {
	var b strings.Builder
	for _, p := range g.Procs() {
		s := p.LogSince(marks[p.Name])
		if strings.TrimSpace(s) == "" {
			continue
		}
		fmt.Fprintf(&b, "----- %s (%s) -----\n%s\n", p.Name, p.LogPath, Tail(s, lines))
	}
	return b.String()
}

// WaitReady polls check until it succeeds, p exits, or timeout passes. A
// process that exits is reported with its log's tail.
func WaitReady(ctx context.Context, p *Process, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited (%v) before it was ready; its log:\n%s", p.Name, err, Tail(p.LogSince(0), 40))
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.Name, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// HTTPOK GETs url (with a bearer token, if any) and wants 200.
func HTTPOK(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// FreePorts returns n distinct TCP ports on host that nobody listens on
// right now.
func FreePorts(host string, n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// TestTimeout is go test's -timeout (0 if none). That timeout panics
// without running any cleanup, so a suite that runs processes stops them a
// little before it fires.
func TestTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if d, ok := g.Get().(time.Duration); ok {
			return d
		}
	}
	return 0
}
