package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/secretsync"
)

func runValidate(files []string, region string, stdout io.Writer) error {
	bad := 0
	for _, file := range files {
		bad += validateFile(file, region, stdout)
	}
	if bad > 0 {
		return fmt.Errorf("%d SecretProviderClass(es) or file(s) with problems", bad)
	}
	return nil
}

// validateFile prints the verdict on each class in file and returns how
// many failed.
func validateFile(file, region string, w io.Writer) int {
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", file, err)
		return 1
	}
	defer f.Close()
	manifests, err := spc.ReadManifests(f)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", file, err)
		return 1
	}
	if len(manifests) == 0 {
		fmt.Fprintf(w, "%s: no SecretProviderClass or parameters found\n", file)
		return 1
	}
	failed := 0
	for _, m := range manifests {
		cfg, err := m.Check(spc.Options{DefaultRegion: region})
		if raw := m.Parameters[spc.KeySyncSecrets]; err == nil && raw != "" {
			// The Secrets a class declares are checked against the files
			// its objects write, as the sync engine will.
			_, err = secretsync.Parse(raw, cfg)
		}
		var verr *spc.ValidationError
		switch {
		case errors.As(err, &verr):
			failed++
			fmt.Fprintf(w, "%s: %s: %d problem(s)\n", file, m.Describe(), len(verr.Problems))
			for _, p := range verr.Problems {
				fmt.Fprintf(w, "  - %s\n", p)
			}
		case err != nil:
			failed++
			fmt.Fprintf(w, "%s: %s: %v\n", file, m.Describe(), err)
		default:
			note := ""
			if m.Kind != "" && m.Provider != "aws" {
				note = fmt.Sprintf(" (spec.provider is %q: coffer serves it only when started with --provider-name %s)", m.Provider, m.Provider)
			}
			fmt.Fprintf(w, "%s: %s: ok, %d objects, %d files%s\n", file, m.Describe(), len(cfg.Objects), cfg.FileCount(), note)
		}
	}
	return failed
}
