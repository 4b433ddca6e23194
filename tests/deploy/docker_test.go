package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

// There is no Docker daemon here. These tests check the Dockerfile as far as
// possible without one: BuildKit's own linter (the checks of
// `docker build --check`), its structure, the build context .dockerignore
// leaves, and the build stage itself, emulated: its WORKDIR, ARG, COPY and
// RUN instructions run on this machine, so the binary the image would
// contain is built from the same context with the same command, then run.
// With a daemon (docker info succeeds) the image is also built and run.

func dockerfileStages(t testing.TB) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readFile(t, "Dockerfile")))
	if err != nil {
		t.Fatal(err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	return stages, metaArgs
}

// offlineImages answers BuildKit's image lookups without a registry: every
// base image is a linux image for the build platform.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := fmt.Sprintf(`{"architecture":%q,"os":"linux","config":{"Env":["PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}`, runtime.GOARCH)
	return ref, digest.FromString(ref), []byte(cfg), nil
}

// lintDockerfile runs BuildKit's Dockerfile linter, as `docker build
// --check` does, and returns its findings.
func lintDockerfile(t testing.TB, dt []byte) []string {
	t.Helper()
	ctx := context.Background()
	main := llb.Local("context")
	def, err := main.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	smap := llb.NewSourceMap(&main, "Dockerfile", "Dockerfile", dt)
	smap.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: map[string]string{"VERSION": imageVersion}},
		MainContext:  &main,
		SourceMap:    smap,
		MetaResolver: offlineImages{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var findings []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		findings = append(findings, fmt.Sprintf("line %d: %s: %s", line, w.RuleName, w.Detail))
	}
	if res.Error != nil {
		findings = append(findings, "error: "+res.Error.Message)
	}
	return findings
}

func TestDockerfileLint(t *testing.T) {
	if findings := lintDockerfile(t, readFile(t, "Dockerfile")); len(findings) > 0 {
		t.Errorf("BuildKit's linter (docker build --check) reports:\n%s", strings.Join(findings, "\n"))
	}
	// The linter is really running: a Dockerfile with mistakes it knows.
	bad := []byte("FROM golang:1.26 as build\nENV X=$UNDEFINED\nfrom scratch\nCOPY --from=build /x /x\nENTRYPOINT /x\n")
	findings := strings.Join(lintDockerfile(t, bad), "\n")
	for _, rule := range []string{"FromAsCasing", "UndefinedVar", "JSONArgsRecommended"} {
		if !strings.Contains(findings, rule) {
			t.Errorf("the linter did not report %s on a Dockerfile with that mistake; it reported:\n%s", rule, findings)
		}
	}
}

func TestDockerfileStructure(t *testing.T) {
	stages, metaArgs := dockerfileStages(t)
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a final stage, got %d stages", len(stages))
	}
	build, final := stages[0], stages[1]

	// The Go version of the build image is the module's.
	var goVersion string
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" && kv.Value != nil {
				goVersion = *kv.Value
			}
		}
	}
	gomod := string(readFile(t, "go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil || goVersion != m[1] {
		t.Errorf("ARG GO_VERSION=%q, but go.mod says go %v", goVersion, m)
	}
	if build.BaseName != "golang:${GO_VERSION}" || build.Name != "build" {
		t.Errorf("build stage is FROM %s AS %s, want golang:${GO_VERSION} AS build", build.BaseName, build.Name)
	}
	if build.Platform != "$BUILDPLATFORM" {
		t.Errorf("build stage platform %q: want $BUILDPLATFORM (cross-compiles natively for every target)", build.Platform)
	}

	var buildCmd string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			buildCmd = strings.Join(r.CmdLine, " ")
		}
	}
	// The build tags are the Makefile's (TAGS), so the image's binary is
	// the one measured.
	tags := regexp.MustCompile(`(?m)^TAGS\s*:=\s*(\S+)$`).FindSubmatch(readFile(t, "Makefile"))
	if tags == nil {
		t.Fatal("the Makefile sets no TAGS")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-tags " + string(tags[1]), "-X github.com/coffer-csi/coffer/internal/version.Version=${VERSION}", "./cmd/coffer ./cmd/coffer-controller", "GOARCH=${TARGETARCH}"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("the go build RUN lacks %q: %s", want, buildCmd)
		}
	}

	// Final stage: distroless/static (CA certificates, tzdata, passwd, no
	// shell), the binary from the build stage, a numeric non-root user,
	// exec-form entrypoint at the binary.
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static-debian12:") {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static-debian12 (it carries /etc/ssl/certs/ca-certificates.crt)", final.BaseName)
	}
	var user string
	var copied, entrypoint []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "build" {
				t.Errorf("final stage copies from %q: only the build stage's binaries belong in the image", c.From)
			}
			copied = append(copied, c.DestPath)
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT is in shell form; the image has no shell")
			}
			entrypoint = c.CmdLine
		case *instructions.RunCommand:
			t.Error("the final stage runs a command; distroless/static has no shell")
		}
	}
	// The node's binary is the entrypoint; the chart's sync Deployment
	// names the controller's as its command.
	if want := []string{"/usr/local/bin/coffer", "/usr/local/bin/coffer-controller"}; !slices.Equal(copied, want) {
		t.Errorf("the final stage copies %v, want %v", copied, want)
	}
	if len(entrypoint) == 0 || entrypoint[0] != "/usr/local/bin/coffer" {
		t.Errorf("ENTRYPOINT %v does not run the node's binary /usr/local/bin/coffer", entrypoint)
	}
	if !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user) {
		t.Errorf("USER %q: want a numeric non-root uid:gid, so runAsNonRoot can be verified", user)
	}
}

// buildContext copies the files of the repository that .dockerignore lets
// into the build context to dir, and returns their paths.
func buildContext(root, dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		return copyFile(p, filepath.Join(dir, rel))
	})
	return files, err
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// emulateImageBuild runs the Dockerfile's build stage on this machine: the
// build context is what .dockerignore leaves, the stage's filesystem root
// is a directory under dir, ARGs get the values a build for this machine's
// architecture with --build-arg VERSION=version would, and RUN runs with
// /bin/sh. It returns the binaries the final stage copies: their path here
// by their path in the image.
// Instructions it cannot emulate fail it, so the Dockerfile cannot drift
// away from what is checked.
func emulateImageBuild(root, dir, version string) (map[string]string, error) {
	res, err := parser.Parse(bytes.NewReader(mustRead(filepath.Join(root, "Dockerfile"))))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	ctxDir, fsRoot := filepath.Join(dir, "context"), filepath.Join(dir, "rootfs")
	if _, err := buildContext(root, ctxDir); err != nil {
		return nil, err
	}
	args := map[string]string{
		"BUILDPLATFORM": "linux/" + runtime.GOARCH, "TARGETPLATFORM": "linux/" + runtime.GOARCH,
		"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "VERSION": version,
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if _, set := args[kv.Key]; !set && kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	var build *instructions.Stage
	artifacts := map[string]string{} // in the image: in the build stage
	final := stages[len(stages)-1]
	for _, c := range final.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
			if len(cp.SourceContents) > 0 || len(cp.SourcePaths) != 1 {
				return nil, fmt.Errorf("final stage COPY %v: want one source path", cp.SourcePaths)
			}
			for i := range stages {
				if stages[i].Name == cp.From {
					build = &stages[i]
				}
			}
			if build == nil {
				return nil, fmt.Errorf("final stage copies from unknown stage %q", cp.From)
			}
			artifacts[cp.DestPath] = cp.SourcePaths[0]
		}
	}
	if build == nil {
		return nil, fmt.Errorf("the final stage copies nothing from a build stage")
	}
	workdir := "/"
	env := map[string]string{}
	host := func(p string) string { return filepath.Join(fsRoot, filepath.FromSlash(p)) }
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if _, set := args[kv.Key]; !set {
					v := ""
					if kv.Value != nil {
						v = *kv.Value
					}
					args[kv.Key] = v
				}
				env[kv.Key] = args[kv.Key]
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.WorkdirCommand:
			workdir = path.Join(workdir, c.Path)
			if err := os.MkdirAll(host(workdir), 0o755); err != nil {
				return nil, err
			}
		case *instructions.CopyCommand:
			if c.From != "" || len(c.SourceContents) > 0 {
				return nil, fmt.Errorf("build stage: COPY %v not emulated", c.SourcePaths)
			}
			dest := c.DestPath
			if !path.IsAbs(dest) {
				dest = path.Join(workdir, dest)
			}
			for _, src := range c.SourcePaths {
				s := filepath.Join(ctxDir, filepath.FromSlash(src))
				fi, err := os.Stat(s)
				if err != nil {
					return nil, fmt.Errorf("COPY %s: not in the build context (.dockerignore?): %w", src, err)
				}
				if fi.IsDir() {
					err = copyTree(s, host(dest))
				} else {
					err = copyFile(s, filepath.Join(host(dest), filepath.Base(src)))
				}
				if err != nil {
					return nil, err
				}
			}
		case *instructions.RunCommand:
			if !c.PrependShell {
				return nil, fmt.Errorf("build stage: exec-form RUN %v not emulated", c.CmdLine)
			}
			cmd := exec.Command("/bin/sh", "-c", strings.Join(c.CmdLine, " "))
			cmd.Dir = host(workdir)
			cmd.Env = os.Environ()
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("RUN %s: %w\n%s", strings.Join(c.CmdLine, " "), err, out)
			}
		default:
			return nil, fmt.Errorf("build stage: %T not emulated", c)
		}
	}
	bins := map[string]string{}
	for dest, artifact := range artifacts {
		if !path.IsAbs(artifact) || !path.IsAbs(dest) || strings.HasSuffix(dest, "/") {
			return nil, fmt.Errorf("final stage copies %q to %q: want absolute paths, the destination a file", artifact, dest)
		}
		bins[dest] = host(artifact)
	}
	return bins, nil
}

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

func TestDockerBuildContext(t *testing.T) {
	dir := t.TempDir()
	files, err := buildContext(repoRoot(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, f := range files {
		set[f] = true
		for _, bad := range []string{".git/", "bin/", "tests/", "deployment/", "demo-out/"} {
			if strings.HasPrefix(f, bad) {
				t.Errorf("%s is in the build context", f)
			}
		}
		if strings.HasSuffix(f, "_test.go") || strings.Contains(f, "/testdata/") {
			t.Errorf("%s is in the build context", f)
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd/coffer/main.go", "cmd/coffer-controller/main.go"} {
		if !set[need] {
			t.Errorf("%s is not in the build context", need)
		}
	}
}

// TestImageBinary builds coffer as the image's build stage does and runs
// it: static, version stamped.
func TestImageBinary(t *testing.T) {
	bin := cofferBinary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("coffer version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != imageVersion {
		t.Errorf("coffer version = %q, want the VERSION build argument %q", got, imageVersion)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): distroless/static has no libc", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s -w (as the Makefile builds) keeps the image small")
	}
}

// TestDockerImage builds and runs the image when a Docker daemon answers.
func TestDockerImage(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker client")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon (docker info: %v): the Dockerfile is linted and its build stage emulated instead\n%s", err, lastLine(out))
	}
	tag := "coffer-deploytest:" + strings.ToLower(t.Name())
	build := exec.Command("docker", "build", "--build-arg", "VERSION="+imageVersion, "-t", tag, ".")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	defer exec.Command("docker", "rmi", tag).Run()
	out, err := exec.Command("docker", "run", "--rm", "--read-only", "--cap-drop=ALL", tag, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != imageVersion {
		t.Errorf("docker run %s version: %v: %q", tag, err, out)
	}
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndex(s, "\n")+1:]
}
