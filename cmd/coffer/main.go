// Command coffer is an AWS Secrets Manager and Parameter Store provider for
// the Secrets Store CSI Driver, with tools to validate and try
// SecretProviderClasses locally.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/coffer-csi/coffer/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
