// Command coffer-controller is coffer's controller: it syncs the
// Kubernetes Secrets SecretProviderClasses declare (coffer-controller
// sync), as a Deployment beside the node's coffer DaemonSet, from the same
// image. It links client-go's Lease election and event recorder, which the
// node's binary leaves out (see cli/controller).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/coffer-csi/coffer/cli/controller"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := controller.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
