package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// readArchive opens an archive the way `docker load` and `crane push` do
// (its manifest.json), and returns the config and every entry of its layers.
func readArchive(t *testing.T, file string) (*v1.ConfigFile, map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	headers, data := map[string]*tar.Header{}, map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := "/" + strings.TrimSuffix(h.Name, "/")
			headers[p] = h
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[p] = b
		}
		rc.Close()
	}
	return cf, headers, data
}

// TestCofferImage builds coffer's image exactly as `make image` does and
// checks what the Dockerfile promises: two static binaries with their version,
// the nonroot user, the entrypoint and default command, a CA bundle that
// parses, and the OCI labels.
func TestCofferImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer")
	}
	const version = "v9.8.7-imagetest"
	spec, arch, err := BuildCoffer(CofferOptions{Repo: "../..", Version: version, Revision: "0123abcd"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(spec, arch)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "coffer.tar")
	if err := WriteArchive(file, "ghcr.io/coffer-csi/coffer:"+version, img); err != nil {
		t.Fatal(err)
	}
	cf, headers, data := readArchive(t, file)

	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (nonroot)", cf.Config.User)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/usr/local/bin/coffer" {
		t.Errorf("entrypoint %q", got)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "serve" {
		t.Errorf("cmd %q, want serve", got)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.source":   "https://github.com/coffer-csi/coffer",
		"org.opencontainers.image.title":    "coffer",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	for _, path := range []string{CofferBinary, ControllerBinary} {
		bin, ok := data[path]
		if !ok {
			t.Fatalf("no %s in the image", path)
		}
		if m := headers[path].Mode; m&0o111 == 0 {
			t.Errorf("%s: mode %o is not executable", path, m)
		}
		ef, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s is not ELF: %v", path, err)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: the image has no libc (build with CGO_ENABLED=0)", path)
			}
		}
		if !bytes.Contains(bin, []byte(version)) {
			t.Errorf("%s does not carry version %s (ldflags)", path, version)
		}
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[CABundlePath]) {
		t.Errorf("%s holds no certificate", CABundlePath)
	}
	if n := bytes.Count(data[CABundlePath], []byte("BEGIN CERTIFICATE")); n < 50 {
		t.Errorf("%s holds %d certificates, want a full root store", CABundlePath, n)
	}
	if !strings.Contains(string(data["/etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", data["/etc/passwd"])
	}
	if h := headers["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp missing or not sticky and world-writable: %+v", h)
	}
}

func TestLayerHasParentsAndIsReproducible(t *testing.T) {
	spec := Spec{Files: []File{{Path: "/a/b/c.txt", Mode: 0o644, Data: []byte("x")}}, Entrypoint: []string{"/a/b/c.txt"}}
	var digests []v1.Hash
	for range 2 {
		img, err := Build(spec, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("same spec, two digests: %v", digests)
	}
	img, _ := Build(spec, "amd64")
	file := filepath.Join(t.TempDir(), "x.tar")
	if err := WriteArchive(file, "example.com/x:1", img); err != nil {
		t.Fatal(err)
	}
	_, headers, data := readArchive(t, file)
	for _, d := range []string{"/a", "/a/b"} {
		if h := headers[d]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("parent %s missing", d)
		}
	}
	if string(data["/a/b/c.txt"]) != "x" {
		t.Errorf("content %q", data["/a/b/c.txt"])
	}
}

func TestRejects(t *testing.T) {
	if _, err := Build(Spec{Files: []File{{Path: "/d", Dir: true, Data: []byte("x")}}}, "amd64"); err == nil {
		t.Error("a directory with content was accepted")
	}
	img, _ := Build(Spec{}, "amd64")
	if err := WriteArchive(filepath.Join(t.TempDir(), "x.tar"), "Not A Reference", img); err == nil || !strings.Contains(err.Error(), `"Not A Reference"`) {
		t.Errorf("bad reference: %v", err)
	}
	if _, err := Base(filepath.Join(t.TempDir(), "missing.crt")); err == nil || !strings.Contains(err.Error(), "ca-certificates") {
		t.Errorf("missing CA bundle: %v", err)
	}
}

func TestSharedLibraries(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary may be static or not; ldd must not fail on either.
	if _, err := sharedLibraries(self); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/mount"); err != nil {
		t.Skip("no /usr/bin/mount")
	}
	files, err := WithLibraries("/usr/bin/mount")
	if err != nil {
		t.Fatal(err)
	}
	var haveLibc bool
	for _, f := range files {
		haveLibc = haveLibc || strings.HasPrefix(filepath.Base(f.Path), "libc.so")
	}
	if !haveLibc {
		t.Errorf("mount's libraries lack libc: %v", len(files))
	}
}

// TestBuildTagsAreTheMakefiles: the image's binary is built with the tags
// of the one `make build` writes and the benchmark measures.
func TestBuildTagsAreTheMakefiles(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TAGS\s*:=\s*(\S+)$`).FindSubmatch(makefile)
	if m == nil || string(m[1]) != BuildTags {
		t.Errorf("the Makefile's TAGS are %q, hack/image builds with %q", m, BuildTags)
	}
}
