package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coffer-csi/coffer/hack/image"
	"github.com/coffer-csi/coffer/tests/harness"
)

// Image references. The driver's images carry the references its chart
// names by default, so the chart installs them with its own image values;
// the node has no registry, and kubelet finds them already present
// (pullPolicy IfNotPresent).
const (
	pauseRef    = "coffer.local/pause:1"
	workloadRef = "coffer.local/workload:1"
	driverRef   = "registry.k8s.io/csi-secrets-store/driver:v1.6.0"
	crdsRef     = "registry.k8s.io/csi-secrets-store/driver-crds:v1.6.0"
	cofferRepo  = "ghcr.io/coffer-csi/coffer"
	// awsEndpointRef stands where AWS's public endpoints stand, for a
	// provider that takes no endpoint settings (images/awsendpoint).
	awsEndpointRef = "coffer.local/aws-endpoint:1"
	// ascpRepo is the image AWS's chart names by default.
	ascpRepo = "public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws"
	ascpBin  = "/bin/secrets-store-csi-driver-provider-aws"
)

// awsNames are the names the AWS endpoint's certificate holds: every
// regional endpoint of the node's region (secretsmanager, ssm, sts) and
// STS's global one.
var awsNames = []string{"*." + nodeRegion + ".amazonaws.com", "sts.amazonaws.com"}

func registrarRef(v string) string {
	return "registry.k8s.io/sig-storage/csi-node-driver-registrar:" + v
}
func livenessRef(v string) string { return "registry.k8s.io/sig-storage/livenessprobe:" + v }

type nodeImage struct {
	ref  string
	spec func() (image.Spec, error)
}

// buildImages writes every image the node runs, except coffer's (from
// `make image`), as archives under images/.
func (c *cluster) buildImages(ctx context.Context) error {
	goBin := func(pkg string) (image.File, error) {
		out := c.path("images", filepath.Base(pkg))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return image.File{}, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return image.FromHost(out, "/"+filepath.Base(pkg))
	}
	static := func(src, dst string, entry ...string) func() (image.Spec, error) {
		return func() (image.Spec, error) {
			f, err := image.FromHost(src, dst)
			if err != nil {
				return image.Spec{}, err
			}
			return image.Spec{Files: []image.File{f, {Path: "/tmp", Dir: true, Mode: 0o1777}}, Entrypoint: append([]string{dst}, entry...)}, nil
		}
	}
	images := []nodeImage{
		{pauseRef, func() (image.Spec, error) {
			f, err := goBin("./images/pause")
			return image.Spec{Files: []image.File{f}, Entrypoint: []string{"/pause"}}, err
		}},
		{workloadRef, func() (image.Spec, error) {
			f, err := goBin("./images/workload")
			if err != nil {
				return image.Spec{}, err
			}
			base, err := image.Base("")
			return image.Spec{Files: append(base, f), Entrypoint: []string{"/workload"}}, err
		}},
		// The driver mounts each volume's tmpfs with mount(8), as its
		// own image does (util-linux): this machine's, with its libraries.
		{driverRef, func() (image.Spec, error) {
			files, err := image.WithLibraries(c.bins.driver, "/usr/bin/mount", "/usr/bin/umount")
			if err != nil {
				return image.Spec{}, err
			}
			relocate(files, c.bins.driver, "/secrets-store-csi-driver")
			files = append(files, image.File{Path: "/tmp", Dir: true, Mode: 0o1777})
			return image.Spec{Files: files, Entrypoint: []string{"/secrets-store-csi-driver"}}, nil
		}},
		// The chart's CRD hook Job runs `kubectl apply -f crds/` in it.
		{crdsRef, func() (image.Spec, error) {
			// kubectl as built here, with its libraries if it has any.
			files, err := image.WithLibraries(c.bins.kubectl)
			if err != nil {
				return image.Spec{}, err
			}
			relocate(files, c.bins.kubectl, "/kubectl")
			files = append(files, image.File{Path: "/tmp", Dir: true, Mode: 0o1777})
			crds, err := filepath.Glob(filepath.Join(c.bins.repo, "deployment/charts/coffer/charts/secrets-store-csi-driver/crds/*.yaml"))
			if err != nil || len(crds) == 0 {
				return image.Spec{}, fmt.Errorf("the driver chart's CRDs: %v", err)
			}
			for _, p := range crds {
				f, err := image.FromHost(p, "/crds/"+filepath.Base(p))
				if err != nil {
					return image.Spec{}, err
				}
				files = append(files, f)
			}
			return image.Spec{Files: files, Entrypoint: []string{"/kubectl"}, WorkingDir: "/", Env: []string{"HOME=/tmp"}}, nil
		}},
		{awsEndpointRef, func() (image.Spec, error) {
			f, err := goBin("./images/awsendpoint")
			return image.Spec{Files: []image.File{f}, Entrypoint: []string{"/awsendpoint"}}, err
		}},
		// AWS's provider as its own image ships it (a static binary at
		// ascpBin, a CA bundle, running as root), its bundle holding the
		// AWS endpoint's CA besides the machine's.
		{ascpRepo + ":" + c.bins.ascpVersion, func() (image.Spec, error) {
			ca, err := harness.WriteServingCert(c.path("pki", "aws-endpoint.crt"), c.path("pki", "aws-endpoint.key"), "aws-endpoint", nil, awsNames)
			if err != nil {
				return image.Spec{}, err
			}
			files, err := image.Base("")
			if err != nil {
				return image.Spec{}, err
			}
			for i := range files {
				if files[i].Path == image.CABundlePath {
					files[i].Data = append(append(files[i].Data, '\n'), ca...)
				}
			}
			bin, err := image.FromHost(c.bins.ascp, ascpBin)
			return image.Spec{Files: append(files, bin), Entrypoint: []string{ascpBin}}, err
		}},
		{registrarRef(c.bins.registrarVersion), static(c.bins.registrar, "/csi-node-driver-registrar")},
		{livenessRef(c.bins.livenessVersion), static(c.bins.livenessprobe, "/livenessprobe")},
	}
	for _, im := range images {
		spec, err := im.spec()
		if err != nil {
			return fmt.Errorf("image %s: %w", im.ref, err)
		}
		img, err := image.Build(spec, runtime.GOARCH)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.ref, err)
		}
		if err := image.WriteArchive(c.path("images", archiveName(im.ref)), im.ref, img); err != nil {
			return err
		}
	}
	return nil
}

// relocate puts the host file from at path to in the image.
func relocate(files []image.File, from, to string) {
	for i := range files {
		if files[i].Path == from {
			files[i].Path = to
		}
	}
}

func archiveName(ref string) string {
	return strings.NewReplacer("/", "_", ":", "_").Replace(ref) + ".tar"
}

// importImages loads every archive into containerd's k8s.io namespace,
// where kubelet's images live, as `ctr images import` does for users
// without a registry.
func (c *cluster) importImages(ctx context.Context) error {
	archives, err := filepath.Glob(c.path("images", "*.tar"))
	if err != nil {
		return err
	}
	return c.ctrImport(ctx, append(archives, c.bins.cofferImage)...)
}

func (c *cluster) ctrImport(ctx context.Context, archives ...string) error {
	for _, a := range archives {
		out, err := exec.CommandContext(ctx, c.bins.ctr, "-a", c.containerdSock, "-n", "k8s.io", "images", "import", a).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %w\n%s", a, err, out)
		}
	}
	return nil
}
