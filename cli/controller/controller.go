// Package controller is what only the controller binary (cmd/coffer-controller)
// links: client-go's Lease election (tools/leaderelection) and event
// recorder (tools/record), given to the sync command as cli.ControllerParts.
// Both bring client-go's clientset and the scheme of every API group, which
// the node's binary, run on every node, leaves out (cmd/coffer:
// TestBinaryLinksNoClientset); the controller runs as one or two replicas,
// where that memory buys client-go's own, widely run election and event
// correlation.
package controller

import (
	"context"
	"io"

	"github.com/coffer-csi/coffer/cli"
)

// Run runs the controller binary's subcommand named by args and returns
// the process exit code, as cli.Run does for the node's binary.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.RunController(ctx, args, stdout, stderr, cli.ControllerParts{Elect: Elect, Events: Events, Consumer: Consumer})
}
