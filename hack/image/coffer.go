package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// CofferBinary is where coffer's image has the node's binary, its
// entrypoint, as in the Dockerfile.
const CofferBinary = "/usr/local/bin/coffer"

// ControllerBinary is where coffer's image has the controller's binary,
// which the chart's sync Deployment runs as its command.
const ControllerBinary = "/usr/local/bin/coffer-controller"

// BuildTags are the Go build tags of coffer's binary, as the Makefile's
// TAGS and the Dockerfile give them.
const BuildTags = "grpcnotrace"

// CofferOptions say what coffer's image is built from.
type CofferOptions struct {
	Repo     string // the repository's root (the main module)
	Version  string // stamped into the binary and the labels
	Revision string // the git commit, for the labels; may be empty
	CABundle string // "" for the build machine's (Debian's ca-certificates)
	GOARCH   string // "" for the build machine's
}

// BuildCoffer builds coffer's two binaries from source as the Dockerfile's
// build stage does (static, -trimpath, version stamped) and returns the
// image's spec:
// what distroless/static:nonroot plus the Dockerfile's last stage give.
func BuildCoffer(o CofferOptions) (Spec, string, error) {
	arch := o.GOARCH
	if arch == "" {
		arch = runtime.GOARCH
	}
	tmp, err := os.MkdirTemp("", "coffer-image-")
	if err != nil {
		return Spec{}, "", err
	}
	defer os.RemoveAll(tmp)
	files, err := Base(o.CABundle)
	if err != nil {
		return Spec{}, "", err
	}
	for _, b := range []struct{ pkg, path string }{{"./cmd/coffer", CofferBinary}, {"./cmd/coffer-controller", ControllerBinary}} {
		bin := filepath.Join(tmp, filepath.Base(b.path))
		cmd := exec.Command("go", "build", "-trimpath", "-tags", BuildTags,
			"-ldflags", "-s -w -X github.com/coffer-csi/coffer/internal/version.Version="+o.Version,
			"-o", bin, b.pkg)
		cmd.Dir = o.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return Spec{}, "", fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return Spec{}, "", err
		}
		files = append(files, File{Path: b.path, Mode: 0o755, Data: data})
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "coffer",
		"org.opencontainers.image.description": "AWS Secrets Manager and SSM Parameter Store provider for the Secrets Store CSI Driver",
		"org.opencontainers.image.source":      "https://github.com/coffer-csi/coffer",
		"org.opencontainers.image.version":     o.Version,
	}
	if o.Revision != "" {
		labels["org.opencontainers.image.revision"] = o.Revision
	}
	return Spec{
		Files:      files,
		User:       NonrootUser,
		Entrypoint: []string{CofferBinary},
		Cmd:        []string{"serve"},
		Labels:     labels,
	}, arch, nil
}
