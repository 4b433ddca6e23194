package cli

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/rotationevent"
)

// enableRotationEvents makes p record SecretsRotated events on pods whose
// remount changed a version (coffer serve --rotation-events), after
// whatever AfterMount already does. The recorder's writer runs until ctx
// ends.
func enableRotationEvents(ctx context.Context, p *provider.Mounter, kubeconfig, nodeName string, log *slog.Logger) error {
	kc, err := kubeClient(kubeconfig)
	if err != nil {
		return err
	}
	rec := rotationevent.New(func(ctx context.Context, ev *corev1.Event) error {
		_, err := kc.Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
		return err
	}, rotationevent.Options{Host: nodeName, Logger: log, OnOutcome: p.Metrics.RotationEvent})
	go rec.Run(ctx)
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
