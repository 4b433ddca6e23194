// Command manifests writes the plain installer, deployment/coffer.yaml, and
// its copy in the Kustomize base from the Helm chart (make manifests).
// With -check it writes nothing and fails when either file is stale.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	deploy "github.com/coffer-csi/coffer/tests/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "manifests: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	check := flag.Bool("check", false, "fail if the files are stale instead of writing them")
	flag.Parse()
	root, err := deploy.RepoRoot()
	if err != nil {
		return err
	}
	want, err := deploy.Installer(root)
	if err != nil {
		return err
	}
	var stale []string
	for _, rel := range []string{deploy.InstallerPath, deploy.KustomizeBaseInstaller} {
		path := filepath.Join(root, rel)
		if *check {
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				stale = append(stale, rel)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", rel)
	}
	if len(stale) > 0 {
		return fmt.Errorf("stale: %v; run `make manifests`", stale)
	}
	return nil
}
