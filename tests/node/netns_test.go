package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-csi/coffer/tests/harness"
)

// The node's addresses, inside the suite's own network namespace only.
// 198.18.0.0/15 is reserved for network tests (RFC 2544): not a private
// range of any real network.
const (
	nodeIP     = "198.18.0.1"    // the node's InternalIP: kubelet, the apiserver, the AWS fake
	serviceIP  = "198.19.0.1"    // the kubernetes Service's ClusterIP, local on the node
	serviceNet = "198.19.0.0/24" // --service-cluster-ip-range
	podNet     = "198.18.1.0/24" // the CNI bridge's pods
	podGW      = "198.18.1.1"
)

// Environment of the suite's process inside the namespace.
const (
	envInner = "COFFER_NODE_NETNS" // the namespace's name: set only inside it
	envRoot  = "COFFER_NODE_ROOT"  // the run's directory
)

// supervise is the suite's outer process: it creates the run's directory
// and network namespace, runs the suite again inside the namespace, and
// whatever happens to it (success, failure, a signal, a crash) stops what
// is left of the node, unmounts everything and deletes the namespaces.
func supervise() int {
	root, err := os.MkdirTemp("", "coffer-node-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "node: FAIL:", err)
		return 1
	}
	ns := fmt.Sprintf("coffer-node-%d", os.Getpid())
	before := netnsNames()
	defer func() {
		if err := cleanup(root, ns, before); err != nil {
			fmt.Fprintln(os.Stderr, "node: cleanup:", err)
		}
	}()
	if err := createNetns(ns); err != nil {
		fmt.Fprintln(os.Stderr, "node: FAIL: network namespace:", err)
		return 1
	}
	args := append([]string{"--net=/run/netns/" + ns, "--", os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInner+"="+ns, envRoot+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "node: FAIL:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			// The inner suite tears down on its own; the deferred cleanup
			// catches whatever it could not.
			_ = cmd.Process.Signal(s)
			go func() {
				time.Sleep(60 * time.Second)
				_ = cmd.Process.Kill()
			}()
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return max(ee.ExitCode(), 1)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "node: FAIL:", err)
				return 1
			}
			return 0
		}
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func createNetns(ns string) error {
	steps := [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		// On the namespace's loopback: local addresses, which the pods
		// reach through the bridge like any address of the node.
		{"-n", ns, "addr", "add", nodeIP + "/32", "dev", "lo"},
		{"-n", ns, "addr", "add", serviceIP + "/32", "dev", "lo"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// netnsNames lists the named network namespaces (containerd names each pod
// sandbox's cni-<id>).
func netnsNames() map[string]bool {
	m := map[string]bool{}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

func netnsInode(path string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// cleanup kills every process left in the run's namespaces (the node's
// and each pod's: containerd's shims, containers), unmounts everything
// under the run's directory and the pods' namespaces, deletes the
// namespaces (with them the CNI bridge and every veth) and the directory.
func cleanup(root, ns string, before map[string]bool) error {
	var errs []error
	var created []string
	for n := range netnsNames() {
		if !before[n] && (n == ns || strings.HasPrefix(n, "cni-")) {
			created = append(created, n)
		}
	}
	inodes := map[uint64]bool{}
	for _, n := range created {
		if ino, ok := netnsInode("/run/netns/" + n); ok {
			inodes[ino] = true
		}
	}
	for range 3 {
		if killIn(inodes) == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if err := harness.UnmountUnder(root); err != nil {
		errs = append(errs, err)
	}
	for _, n := range created {
		if err := ip("netns", "delete", n); err != nil {
			errs = append(errs, err)
		}
	}
	if os.Getenv("NODE_KEEP") == "" {
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killIn SIGKILLs every process whose network namespace is one of inodes,
// and returns how many it found.
func killIn(inodes map[uint64]bool) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		ino, ok := netnsInode(filepath.Join("/proc", e.Name(), "ns", "net"))
		if ok && inodes[ino] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}
