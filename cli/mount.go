package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/wiring"
)

type mountConfig struct {
	spc       string
	name      string
	out       string
	region    string
	timeout   time.Duration
	sets      []string
	evaluator wiring.Evaluator
}

func (c *mountConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.spc, "spc", "", "SecretProviderClass manifest (or parameters file) to mount")
	fs.StringVar(&c.name, "name", "", "which SecretProviderClass in the file, when it holds several")
	fs.StringVar(&c.out, "out", "", "directory to write the files into")
	fs.StringVar(&c.region, "region", os.Getenv("AWS_REGION"), "region when the class names none (default $AWS_REGION)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline for the whole mount")
	// StringArray, not StringSlice: a value may hold commas (objects YAML).
	fs.StringArrayVar(&c.sets, "set", nil, "override a parameter, key=value (repeatable), as a pod's volumeAttributes would")
	registerEvaluator(fs, &c.evaluator, wiring.Defaults().Evaluator)
}

// config is the Config coffer mount builds from: coffer serve's defaults,
// reading AWS with the caller's own credentials, as the node would with
// --insecure-node-credentials.
func (c *mountConfig) config() wiring.Config {
	cfg := wiring.Defaults()
	cfg.NodeCredentials = true
	cfg.Region = c.region
	cfg.Evaluator = c.evaluator
	return cfg
}

func runMount(ctx context.Context, c *mountConfig, stdout io.Writer) error {
	if err := errors.Join(validateEvaluator(c.evaluator)...); err != nil {
		return err
	}
	m, err := pickManifest(c.spc, c.name)
	if err != nil {
		return err
	}
	attrs := map[string]string{spc.AttrSPCName: m.Name}
	for k, v := range m.Parameters {
		attrs[k] = v
	}
	for _, kv := range c.sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: use key=value", kv)
		}
		attrs[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	coffer, err := wiring.New(ctx, c.config())
	if err != nil {
		return err
	}
	defer coffer.Close()
	res, err := coffer.Provider.Mount(ctx, provider.Request{Attributes: encodeAttributes(attrs)})
	if err != nil {
		return err
	}
	if err := writeFiles(c.out, res.Files); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tFILE\tVERSION\tBYTES\tMODE")
	for _, f := range res.Files {
		source := ""
		if f.Object != nil {
			source = f.Object.Name
		} else {
			source = fmt.Sprintf("files[%d] (template)", f.Template.Index)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%04o\n", source, f.Path, f.Version, len(f.Data), f.Mode.Perm())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d files written to %s\n", len(res.Files), c.out)
	return nil
}

func pickManifest(file, name string) (spc.Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return spc.Manifest{}, err
	}
	defer f.Close()
	ms, err := spc.ReadManifests(f)
	if err != nil {
		return spc.Manifest{}, fmt.Errorf("%s: %w", file, err)
	}
	var names []string
	for _, m := range ms {
		if name == "" && len(ms) == 1 || m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	if len(ms) == 0 {
		return spc.Manifest{}, fmt.Errorf("%s: no SecretProviderClass or parameters found", file)
	}
	return spc.Manifest{}, fmt.Errorf("%s holds SecretProviderClasses %s: choose one with --name", file, strings.Join(names, ", "))
}

// writeFiles writes each file under dir with its mode, atomically per file
// (temporary file, then rename), refusing any path that escapes dir.
func writeFiles(dir string, files []render.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	for _, f := range files {
		if err := spc.CheckFilePath(f.Path); err != nil {
			return err
		}
		if d := filepath.Dir(f.Path); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", d, err)
			}
		}
		tmp := f.Path + ".coffer-tmp"
		if err := root.WriteFile(tmp, f.Data, f.Mode.Perm()); err != nil {
			return fmt.Errorf("writing %s: %w", f.Path, err)
		}
		if err := root.Chmod(tmp, f.Mode.Perm()); err != nil {
			return errors.Join(fmt.Errorf("setting the mode of %s: %w", f.Path, err), root.Remove(tmp))
		}
		if err := root.Rename(tmp, f.Path); err != nil {
			return errors.Join(fmt.Errorf("replacing %s: %w", f.Path, err), root.Remove(tmp))
		}
	}
	return nil
}
