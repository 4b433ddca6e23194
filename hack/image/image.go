// Package image builds container images from files on this machine, with no
// Docker daemon and no registry: a single layer of files, a config (user,
// entrypoint, labels) and a docker-archive tarball that `docker load`,
// `ctr images import`, `skopeo copy docker-archive:` and `crane push` all
// accept. It is what `make image` uses for coffer's image, and what the node
// tier (tests/node) uses for every image its node runs.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one entry of the image's layer. Dir entries have no Data.
type File struct {
	Path     string // absolute, inside the image
	Mode     int64  // permission bits
	Dir      bool
	Data     []byte
	UID, GID int
}

// Spec is an image: its files (one layer) and its config.
type Spec struct {
	Files      []File
	Entrypoint []string
	Cmd        []string
	User       string // "65532:65532"
	Env        []string
	Labels     map[string]string
	WorkingDir string
}

// epoch is every entry's and the config's time: the same input gives the
// same image digest.
var epoch = time.Unix(0, 0).UTC()

// Build returns the image of s (linux/amd64 or the build machine's arch).
func Build(s Spec, arch string) (v1.Image, error) {
	layerTar, err := layerBytes(s.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Cmd = s.Cmd
	cf.Config.User = s.User
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, s.Env...)
	cf.Config.Labels = s.Labels
	cf.Config.WorkingDir = s.WorkingDir
	return mutate.ConfigFile(img, cf)
}

// layerBytes writes the files as a tar stream, parents first, each
// directory the files need included even if not listed.
func layerBytes(files []File) ([]byte, error) {
	byPath := map[string]File{}
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if p == "/" {
			continue
		}
		f.Path = p
		byPath[p] = f
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Dir: true, Mode: 0o755}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := byPath[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Dir {
			if f.Data != nil {
				return nil, fmt.Errorf("image: %s is a directory with content", p)
			}
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive writes img as a docker-archive tarball tagged ref (e.g.
// ghcr.io/coffer-csi/coffer:v0.1.0), via a temporary file so a reader never
// sees half an archive.
func WriteArchive(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}

// FromHost reads a file of this machine into the image at the same path
// (or at dst, if not empty), keeping its permission bits.
func FromHost(src, dst string) (File, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return File{}, err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return File{}, err
	}
	if dst == "" {
		dst = src
	}
	return File{Path: dst, Mode: int64(fi.Mode().Perm()), Data: data}, nil
}

// WithLibraries returns the host's executables at their paths plus every
// shared library they load (as ldd lists them), for images that must run a
// dynamically linked program of this machine, such as util-linux's mount.
// A static executable needs none.
func WithLibraries(executables ...string) ([]File, error) {
	seen := map[string]bool{}
	var files []File
	add := func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		f, err := FromHost(p, "")
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	}
	for _, exe := range executables {
		if err := add(exe); err != nil {
			return nil, err
		}
		libs, err := sharedLibraries(exe)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := add(l); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// sharedLibraries parses ldd's output: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
// and "/lib64/ld-linux-x86-64.so.2 (0x...)".
func sharedLibraries(exe string) ([]string, error) {
	out, err := exec.Command("ldd", exe).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", exe, err, strings.TrimSpace(string(out)))
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[1] == "=>" && filepath.IsAbs(fields[2]):
			libs = append(libs, fields[2])
		case len(fields) >= 1 && filepath.IsAbs(fields[0]):
			libs = append(libs, fields[0])
		}
	}
	return libs, nil
}
