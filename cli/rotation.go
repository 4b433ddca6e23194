package cli

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/rotationevent"
)

// enableRotationEvents makes p record SecretsRotated events on pods whose
// remount changed a version (coffer serve --rotation-events), after
// whatever AfterMount already does. The events are written until ctx ends,
// then what is queued for a few seconds more.
func enableRotationEvents(ctx context.Context, p *provider.Mounter, kubeconfig, nodeName string, log *slog.Logger) error {
	kc, err := kubeClient(kubeconfig)
	if err != nil {
		return err
	}
	events := kube.NewRecorder(kc, kc.Scheme(), kube.RecorderOptions{
		Source:  corev1.EventSource{Component: "coffer", Host: nodeName},
		Logger:  log,
		Outcome: p.Metrics.RotationEvent,
		// The DaemonSet may create events, not patch them.
		CreateOnly: true,
	})
	go func() {
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		events.Shutdown(stop)
	}()
	rec := rotationevent.New(events, rotationevent.Options{
		Logger:        log,
		OnRateLimited: func() { p.Metrics.RotationEvent(kube.OutcomeRateLimited) },
	})
	next := p.AfterMount
	p.AfterMount = func(ctx context.Context, m provider.Mounted) {
		if next != nil {
			next(ctx, m)
		}
		versions := make([]rotationevent.Version, len(m.Files))
		for i, f := range m.Files {
			versions[i] = rotationevent.Version{ID: f.Path, Version: f.Version}
		}
		pod := m.Config.Pod
		rec.Observe(rotationevent.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, Class: m.Config.Name}, m.CurrentVersions, versions)
	}
	log.Info("SecretsRotated pod events enabled")
	return nil
}
