package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/coffer-csi/coffer/secretsync/esoconvert"
)

// convertConfig holds coffer convert's flags.
type convertConfig struct {
	files          []string
	out            string
	namespace      string
	serviceAccount string
}

func newConvertCommand(stdout, stderr io.Writer) *cobra.Command {
	var c convertConfig
	cmd := &cobra.Command{
		Use:   "convert -f FILE [-f FILE]... [flags]",
		Short: "Convert External Secrets Operator manifests (AWS) into SecretProviderClasses with syncSecrets",
		Long: `Reads ExternalSecret, SecretStore and ClusterSecretStore manifests for ESO's AWS provider
(external-secrets.io/v1beta1 and v1, also as the items of kubectl get -o yaml's List; other
kinds are skipped) and prints one SecretProviderClass
per ExternalSecret, declaring the same Secret with syncSecrets. Each ExternalSecret's store is
taken from the same input, by kind and name. Every class printed passes coffer validate.

For every field it cannot carry over it prints, on stderr,
  DROPPED <kind>/<name> <field>: <why, and what to do instead>
and where a field is carried with a difference worth knowing,
  NOTE <kind>/<name> <field>: <the difference>
It still prints what converts. Exit status: 0 when everything was carried over, 2 when any
field was dropped (or the command line is wrong), 1 when the input cannot be read.`,
		Example: `  coffer convert -f externalsecret.yaml -f secretstore.yaml > secretproviderclass.yaml

  # From the cluster, read as the ServiceAccount app where the store names none
  kubectl get externalsecrets,secretstores -n team-a -o yaml | coffer convert -f - --service-account app

  # Into a file, for manifests that name no namespace
  coffer convert -f externalsecrets.yaml -f stores.yaml -o spc.yaml --namespace team-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(c.files) == 0 {
				return fmt.Errorf("name the manifests with -f FILE (or -f - for standard input)")
			}
			return runConvert(&c, cmd.InOrStdin(), stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&c.files, "filename", "f", nil, "a file of ESO manifests, - for standard input (repeatable)")
	fs.StringVarP(&c.out, "output", "o", "", "write the SecretProviderClasses to this file instead of standard output")
	fs.StringVarP(&c.namespace, "namespace", "n", "", "namespace of the manifests that name none")
	fs.StringVar(&c.serviceAccount, "service-account", "", "serviceAccountName of the Secrets whose store names no ServiceAccount of their namespace")
	return cmd
}

func runConvert(c *convertConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	input, err := readConvertInput(c.files, stdin)
	if err != nil {
		return failed(err)
	}
	res, err := esoconvert.Convert(input, esoconvert.Options{Namespace: c.namespace, ServiceAccount: c.serviceAccount})
	if err != nil {
		return failed(err)
	}
	for _, l := range res.Lines {
		fmt.Fprintln(stderr, l)
	}
	if res.MoreLines > 0 {
		fmt.Fprintf(stderr, "... and %d more lines (at most %d are printed)\n", res.MoreLines, esoconvert.MaxLines)
	}
	if c.out != "" {
		if err := os.WriteFile(c.out, res.YAML, 0o644); err != nil {
			return failed(err)
		}
	} else if _, err := stdout.Write(res.YAML); err != nil {
		return failed(err)
	}
	if res.Dropped() {
		return &commandError{fmt.Errorf("fields not carried over (the DROPPED lines); %d SecretProviderClass(es) written", res.Classes), 2}
	}
	return nil
}

// readConvertInput reads every file (- is stdin) into one input, each a
// YAML document stream of its own, reading no more than the converter's
// limit.
func readConvertInput(files []string, stdin io.Reader) ([]byte, error) {
	var all []byte
	for _, f := range files {
		b, err := readLimited(f, stdin, esoconvert.MaxInputBytes-len(all)+1)
		if err != nil {
			return nil, err
		}
		if len(all)+len(b) > esoconvert.MaxInputBytes {
			return nil, fmt.Errorf("the input is over %d bytes; convert the manifests in several runs", esoconvert.MaxInputBytes)
		}
		all = append(append(all, "\n---\n"...), b...)
	}
	return all, nil
}

// readLimited reads at most limit bytes of file f (- is stdin).
func readLimited(f string, stdin io.Reader, limit int) ([]byte, error) {
	r := stdin
	if f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	return b, nil
}
