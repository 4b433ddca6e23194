package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-csi/coffer/tests/harness"
)

func (c *cluster) startCoffer(ctx context.Context) error {
	args := []string{"serve",
		"--provider-dir=" + c.providerDir,
		"--kubeconfig=" + c.cofferKubeconfig,
		"--node-name=" + nodeName,
		// No default region: classes that name none use the node's label,
		// as in a cluster where the DaemonSet does not set one.
		"--region=",
		"--log-level=debug",
		"--mount-timeout=20s",
		"--max-staleness=" + cofferCacheTTL.String(),
		// The machine has no EKS Pod Identity agent: both of its addresses
		// point at the fake's agent on loopback, so nothing leaves the host.
		"--pod-identity-agent-ipv4-url=" + c.agentURL,
		"--pod-identity-agent-ipv6-url=" + c.agentURL,
		"--pod-identity-timeout=2s",
		// Secret sync after each mount (scenario_sync_test.go).
		"--sync-secrets",
		// SecretsRotated pod events (scenario_rollout_test.go).
		"--rotation-events",
		// Change events (scenario_events_test.go); the ledger covers
		// eventsRegion only, which no other scenario uses.
		"--events-ledger=" + cofferNamespace + "/" + ledgerName,
		"--event-clock-skew=" + eventsSkew.String(),
	}
	var err error
	c.coffer, err = c.spawn("coffer", c.bins.coffer, c.awsEnv(), args...)
	if err != nil {
		return err
	}
	return c.waitCofferSocket(ctx)
}

// restartCoffer stops coffer (SIGTERM, as a DaemonSet rollout does) and
// starts it again with the same flags; the driver keeps running.
func (c *cluster) restartCoffer(ctx context.Context) error {
	c.coffer.Stop(25 * time.Second)
	if exited, err := c.coffer.Exited(); !exited || err != nil {
		return fmt.Errorf("coffer did not exit cleanly on SIGTERM: exited=%v err=%v", exited, err)
	}
	if _, err := os.Stat(filepath.Join(c.providerDir, "aws.sock")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("coffer left its socket behind after SIGTERM (stat: %v)", err)
	}
	if err := c.coffer.Start(); err != nil {
		return err
	}
	return c.waitCofferSocket(ctx)
}

func (c *cluster) waitCofferSocket(ctx context.Context) error {
	sock := filepath.Join(c.providerDir, "aws.sock")
	return harness.WaitReady(ctx, c.coffer, time.Minute, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

func (c *cluster) startDriver(ctx context.Context) error {
	var err error
	c.driver, err = c.spawn("secrets-store-csi-driver", c.bins.driver, []string{"KUBECONFIG=" + c.adminKubeconfig},
		"--endpoint=unix://"+c.driverSocket,
		"--nodeid="+nodeName,
		"--provider-volume="+c.providerDir,
		"--additional-provider-volume-paths="+c.providerDir,
		"--metrics-addr=0", // no metrics listener
		"--enable-secret-rotation=true",
		"--rotation-poll-interval="+rotationPoll.String(),
		"-v=2",
	)
	if err != nil {
		return err
	}
	c.csiConn, err = grpc.NewClient("unix://"+c.driverSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.node = csi.NewNodeClient(c.csiConn)
	ids := csi.NewIdentityClient(c.csiConn)
	return harness.WaitReady(ctx, c.driver, time.Minute, func(ctx context.Context) error {
		if _, err := os.Stat(c.driverSocket); err != nil {
			return err
		}
		info, err := ids.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		if err != nil {
			return err
		}
		if info.GetName() != driverName {
			return fmt.Errorf("driver says it is %q", info.GetName())
		}
		_, err = ids.Probe(ctx, &csi.ProbeRequest{})
		return err
	})
}
