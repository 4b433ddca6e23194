package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coffer-csi/coffer/tests/harness"
)

// sweepStaleRuns cleans up after earlier runs that were killed before they
// could (SIGKILL, a crashed machine): their processes died with them
// (Pdeathsig), but tmpfs mounts and directories remain.
func sweepStaleRuns() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "coffer-e2e-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still running (another run, or a reused pid: leave it)
		}
		if err := harness.UnmountUnder(d); err == nil {
			_ = os.RemoveAll(d)
		}
	}
}
