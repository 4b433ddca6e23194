package socket_test

import (
	"os"
	"testing"
	"time"
)

func TestServeDrainsAndRemovesSocket(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "slow", "v")
	h.fake.SetLatency(500 * time.Millisecond)
	// Start a mount, then shut down while it is in flight: it must finish.
	done := make(chan error, 1)
	go func() {
		_, err := h.mount(t, map[string]string{"objects": "- {objectName: slow, objectType: secretsmanager}"})
		done <- err
	}()
	// In flight once the provider counts it (coffer_mounts_in_flight): a
	// gauge has no change to wait on, so this polls it.
	deadline := time.Now().Add(10 * time.Second)
	for sample(t, h.metrics, "coffer_mounts_in_flight", nil) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the mount never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.stop(t)
	if err := <-done; err != nil {
		t.Errorf("in-flight mount failed during shutdown: %v", err)
	}
	if _, err := os.Stat(h.socket); !os.IsNotExist(err) {
		t.Errorf("socket still present after shutdown: %v", err)
	}
}
