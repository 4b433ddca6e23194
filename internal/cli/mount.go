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

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// stringsFlag collects repeated key=value flags.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runMount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mount", stderr)
	spcFile := fs.String("spc", "", "SecretProviderClass manifest (or parameters file) to mount")
	name := fs.String("name", "", "which SecretProviderClass in the file, when it holds several")
	out := fs.String("out", "", "directory to write the files into")
	region := fs.String("region", os.Getenv("AWS_REGION"), "region when the class names none (default $AWS_REGION)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the whole mount")
	var sets stringsFlag
	fs.Var(&sets, "set", "override a parameter, key=value (repeatable), as a pod's volumeAttributes would")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: coffer mount --spc FILE --out DIR [flags]\n\nFetches every object with your local AWS credentials (the SDK's default chain) and\nwrites the files as the driver would, printing object, file, version and size\n(never values).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *spcFile == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	m, err := pickManifest(*spcFile, *name)
	if err != nil {
		return err
	}
	attrs := map[string]string{spc.AttrSPCName: m.Name}
	for k, v := range m.Parameters {
		attrs[k] = v
	}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: use key=value", kv)
		}
		attrs[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	awsCfg, err := awsapi.LoadConfig(ctx, awsapi.Settings{})
	if err != nil {
		return err
	}
	p := &provider.Provider{
		Identities: auth.NodeCredentials{Credentials: awsCfg.Credentials},
		Clients: func(_ context.Context, id auth.Identity) fetch.Clients {
			return awsapi.NewClients(awsCfg, id.Credentials)
		},
		Fetcher: &fetch.Fetcher{},
		Region:  provider.StaticRegion(*region),
	}
	res, err := p.Mount(ctx, provider.Request{Attributes: encodeAttributes(attrs)})
	if err != nil {
		return err
	}
	if err := writeFiles(*out, res.Files); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tFILE\tVERSION\tBYTES\tMODE")
	for _, f := range res.Files {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%04o\n", f.Object.Name, f.Path, f.Version, len(f.Data), f.Mode.Perm())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d files written to %s\n", len(res.Files), *out)
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
