// Command workload is the node tier's application image. It prints what a
// pod sees, so the test can check it from inside the container:
//
//	workload read DIR [INTERVAL]  every file under DIR as "FILE <path> <base64 of content>" lines
//	                              between "BEGIN <n>" and "END <n>", again every INTERVAL (0: once,
//	                              then sleep); and writes the first round to the termination message
//	workload env NAME...          the named variables, "ENV <name> <base64 of value>"
//	workload whoami               "UID <uid> GID <gid> ROFS <true|false>"
//
// Values are base64 so a binary file or a newline cannot break the lines.
// It runs as any user with a read-only root filesystem.
package main

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
	// Stay up, as an application does, until the pod is deleted.
	for {
		time.Sleep(time.Hour)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: workload read DIR [INTERVAL] | env NAME... | whoami")
	}
	whoami()
	switch args[0] {
	case "read":
		if len(args) < 2 {
			return fmt.Errorf("read needs a directory")
		}
		interval := time.Duration(0)
		if len(args) > 2 {
			d, err := time.ParseDuration(args[2])
			if err != nil {
				return err
			}
			interval = d
		}
		for round := 1; ; round++ {
			out, err := readAll(args[1], round)
			if err != nil {
				return err
			}
			fmt.Print(out)
			if round == 1 {
				// kubelet reads it when the container ends; best effort.
				_ = os.WriteFile("/dev/termination-log", []byte(out), 0o644)
			}
			if interval == 0 {
				return nil
			}
			time.Sleep(interval)
		}
	case "env":
		for _, n := range args[1:] {
			fmt.Printf("ENV %s %s\n", n, base64.StdEncoding.EncodeToString([]byte(os.Getenv(n))))
		}
		return nil
	case "whoami":
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// whoami prints the user and whether the root filesystem is mounted
// read-only (from the mount table: a non-root user cannot write to / either
// way, so trying proves nothing).
func whoami() {
	rofs := false
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 5 && f[4] == "/" {
				rofs = slices.Contains(strings.Split(f[5], ","), "ro")
			}
		}
	}
	fmt.Printf("UID %d GID %d ROFS %t\n", os.Getuid(), os.Getgid(), rofs)
}

func readAll(dir string, round int) (string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The driver writes each file through an atomic writer: the names
		// are links into a hidden ..data directory. Read what the names
		// point to, never the hidden entries themselves.
		if strings.HasPrefix(d.Name(), "..") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	var b strings.Builder
	fmt.Fprintf(&b, "BEGIN %d\n", round)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "FILE %s %s\n", rel, base64.StdEncoding.EncodeToString(data))
	}
	fmt.Fprintf(&b, "END %d\n", round)
	return b.String(), nil
}
