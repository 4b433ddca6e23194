package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/internal/version"
)

// The command tree and its help texts, in one place: each subcommand's
// flags are registered by its config (serve.go, sync.go, ...) and its work
// is a run function returning an error.

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := newRoot(stdout, stderr, &cobra.Command{
		Use:   "coffer",
		Short: "AWS Secrets Manager and Parameter Store for the Secrets Store CSI Driver",
		Long: `coffer: AWS Secrets Manager and Parameter Store for the Secrets Store CSI Driver.

It runs on every node as a provider plugin of the driver (coffer serve), checks and
tries SecretProviderClasses on your machine (coffer validate, coffer mount), and turns
External Secrets Operator manifests into SecretProviderClasses (coffer convert). The
Kubernetes Secrets that SecretProviderClasses declare are synced without pods by the
controller binary in the same image (coffer-controller sync).`,
		Example: `  # Check a SecretProviderClass before applying it
  coffer validate secretproviderclass.yaml

  # Fetch its objects with your own AWS credentials and look at the files
  coffer mount --spc secretproviderclass.yaml --out ./mnt

  # Turn ExternalSecret and SecretStore manifests into SecretProviderClasses
  coffer convert -f externalsecret.yaml -f secretstore.yaml

  # The DaemonSet's command
  coffer serve --provider-dir /var/run/secrets-store-csi-providers`,
	})
	serve := newServeCommand(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		// "coffer --provider-dir ..." served before coffer had commands.
		var unknown *pflag.NotExistError
		if errors.As(err, &unknown) && serve.Flags().Lookup(unknown.GetSpecifiedName()) != nil {
			return fmt.Errorf("%w: it is a flag of serve; start the server with coffer serve [flags]", err)
		}
		return err
	})
	root.AddCommand(
		serve,
		movedSyncCommand(),
		newValidateCommand(stdout),
		newMountCommand(stdout),
		newConvertCommand(stdout, stderr),
		newEvaluatorCommand(),
		newVersionCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	}
}

// movedSyncCommand answers "coffer sync", which the controller binary now
// runs, with where it went: users' args change only in the binary's name.
func movedSyncCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "sync",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return failed(errors.New("the sync controller is the coffer-controller binary (in the same image): run coffer-controller sync with the same flags"))
		},
	}
}

// newControllerRootCommand is the controller binary's command tree: the
// sync controller, and the evaluator worker provider/render/isolate
// re-executes (/proc/self/exe evaluator).
func newControllerRootCommand(stdout, stderr io.Writer, parts ControllerParts) *cobra.Command {
	root := newRoot(stdout, stderr, &cobra.Command{
		Use:   "coffer-controller",
		Short: "Sync the Kubernetes Secrets SecretProviderClasses declare (coffer's controller)",
		Long: `coffer-controller: the controller of coffer, in the same image as the node's coffer binary.

It syncs the Kubernetes Secrets that SecretProviderClasses declare in syncSecrets,
without pods (coffer-controller sync), as a Deployment of one or two replicas that
elect a leader with client-go's Lease election; and it consumes AWS's change events
into the change ledger the nodes watch (coffer-controller events), another such
Deployment with its own Lease.`,
		Example: `  coffer-controller sync --provider-name aws`,
	})
	root.AddCommand(newSyncCommand(stderr, parts), newEventsCommand(stderr, parts), newEvaluatorCommand(), newVersionCommand())
	return root
}

// newRoot completes a binary's root command as both binaries share it:
// without a subcommand it prints its help (a server starts only when
// asked for, as the DaemonSet does with "coffer serve"), --version without
// the -v shorthand (which Kubernetes tools use for verbosity) prints the
// bare version as "version" does, and errors are left to execute.
func newRoot(stdout, stderr io.Writer, root *cobra.Command) *cobra.Command {
	root.Version = version.Version
	root.Args = rootArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Flags().Bool("version", false, "print the version")
	root.SetVersionTemplate("{{.Version}}\n")
	return root
}

// rootArgs: any word that is not a subcommand is an unknown command (the
// root is runnable, to print help, so cobra's own check does not apply).
func rootArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		suggest := ""
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			suggest = fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return fmt.Errorf("unknown command %q%s", args[0], suggest)
	}
	return nil
}

func newServeCommand(stderr io.Writer) *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve the provider on its Unix socket (the DaemonSet's command)",
		Long: `Serves the Secrets Store CSI Driver's provider API on <provider-dir>/<provider-name>.sock.
Each Mount reads the pod's objects from AWS as the pod's own workload identity (IRSA or
EKS Pod Identity) and returns the files; nothing is written to disk. Runs until SIGTERM,
then lets in-flight Mounts finish (--shutdown-timeout) and removes the socket.`,
		Example: `  # As the DaemonSet runs it (NODE_NAME from the downward API)
  coffer serve --provider-dir /var/run/secrets-store-csi-providers --provider-name aws

  # With metrics and probes, values cached for 30s
  coffer serve --metrics-addr :8080 --health-addr :8081 --cache-ttl 30s

  # Also sync the Kubernetes Secrets classes declare in syncSecrets, after each mount
  coffer serve --sync-secrets`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return failed(runServe(cmd.Context(), &c, stderr))
		},
	}
	c.register(cmd.Flags())
	return cmd
}

func newSyncCommand(stderr io.Writer, parts ControllerParts) *cobra.Command {
	var c syncConfig
	cmd := &cobra.Command{
		Use:   "sync [flags]",
		Short: "Sync the Kubernetes Secrets SecretProviderClasses declare (syncSecrets), without pods",
		Long: `Syncs the Kubernetes Secrets that SecretProviderClasses declare in syncSecrets, without
pods: each entry is read from AWS as its serviceAccountName, every refreshInterval and
whenever the class changes. Run it as a Deployment; replicas elect a leader.`,
		Example: `  # In the cluster, as the chart's Deployment runs it
  coffer-controller sync --provider-name aws

  # From your machine against a test cluster, one namespace, no leader election
  coffer-controller sync --kubeconfig ~/.kube/config --namespace team-a --leader-elect=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return failed(runSync(cmd.Context(), &c, parts, stderr))
		},
	}
	c.register(cmd.Flags())
	return cmd
}

func newEventsCommand(stderr io.Writer, parts ControllerParts) *cobra.Command {
	var c eventsConfig
	cmd := &cobra.Command{
		Use:   "events --queue-url URL [flags]",
		Short: "Consume AWS's change events into the change ledger the nodes watch",
		Long: `Long-polls the SQS queue that EventBridge rules fill with AWS's change events (Parameter
Store changes; Secrets Manager and IAM calls through CloudTrail) and publishes what changed,
names and roles but never a value, as the change ledger in a ConfigMap that every node
(coffer serve --events-ledger) watches. A canary writes a fresh nonce into the description of
its parameter and secret every --canary-interval and proves the pipeline live when both
announcements come back. Run it as a Deployment; replicas elect a leader.`,
		Example: `  # In the cluster, as the chart's Deployment runs it
  coffer-controller events --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/coffer-events

  # From your machine against a test cluster, without leader election
  coffer-controller events --kubeconfig ~/.kube/config --ledger-namespace coffer --leader-elect=false \
    --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/coffer-events`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return failed(runEvents(cmd.Context(), &c, parts, stderr))
		},
	}
	c.register(cmd.Flags())
	return cmd
}

func newValidateCommand(stdout io.Writer) *cobra.Command {
	var region string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check SecretProviderClass manifests or parameter files, listing every problem",
		Long: `Checks SecretProviderClass manifests (other kinds in the files are skipped) or bare
parameter maps exactly as a mount would, and lists every problem. Exits 1 when any is found.`,
		Example: `  coffer validate secretproviderclass.yaml
  coffer validate deploy/*.yaml --region eu-west-1`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("name at least one FILE to check")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return failed(runValidate(args, region, stdout))
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "region to check ARNs against when a class names none")
	return cmd
}

func newMountCommand(stdout io.Writer) *cobra.Command {
	var c mountConfig
	cmd := &cobra.Command{
		Use:   "mount --spc FILE --out DIR [flags]",
		Short: "Fetch a SecretProviderClass's objects with your local AWS credentials and write the files",
		Long: `Fetches every object with your local AWS credentials (the SDK's default chain) and
writes the files as the driver would, each atomically with its mode, printing object,
file, version and size (never values). A failed mount writes nothing.`,
		Example: `  coffer mount --spc secretproviderclass.yaml --out ./mnt

  # One class of several in the file, in another region
  coffer mount --spc classes.yaml --name app --out ./mnt --set region=eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return failed(runMount(cmd.Context(), &c, stdout))
		},
	}
	c.register(cmd.Flags())
	for _, name := range []string{"spc", "out"} {
		if err := cmd.MarkFlagRequired(name); err != nil {
			panic(err) // registered just above
		}
	}
	return cmd
}

// CommandFlags returns the flags of the subcommand name ("serve" of coffer,
// "sync" of coffer-controller, ...) exactly as the command line parses
// them, or nil for no such command. docs/ checks its flag tables against
// them.
func CommandFlags(name string) *pflag.FlagSet {
	roots := []*cobra.Command{newRootCommand(io.Discard, io.Discard), newControllerRootCommand(io.Discard, io.Discard, ControllerParts{})}
	for _, root := range roots {
		for _, cmd := range root.Commands() {
			if cmd.Name() == name && !cmd.Hidden {
				return cmd.Flags()
			}
		}
	}
	return nil
}
