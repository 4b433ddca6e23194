// Package restart rolls opted-in Deployments, StatefulSets and DaemonSets (a
// pod-template annotation, as kubectl rollout restart does) when a value they
// mount through the driver or consume from a Secret coffer syncs changes. It
// runs in coffer-controller sync, never in the DaemonSet: no node agent may restart
// workloads.
package restart

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Triggers of a restart (the metric's trigger label).
const (
	TriggerMount  = "mount"
	TriggerSecret = "secret"
	TriggerBoth   = "both"
)

// PodMount is what one pod of a workload mounts of one followed class now,
// from its SecretProviderClassPodStatus.
type PodMount struct {
	PodUID string
	Class  string
	// Current says the pod was created from the workload's pod template
	// as it is since its last restart by coffer (its restarted-at
	// annotation is the template's). Pods from before the last restart
	// are being replaced: they trigger nothing, whatever they mount.
	Current bool
	// Versions are the mounted objects' versions, by object id.
	Versions map[string]string
}

// SecretInput is a followed Secret that coffer syncs: its content hash
// (coffer's content-hash annotation) identifies its content.
type SecretInput struct {
	Name, Hash string
}

// Inputs are everything a workload mounts or consumes, as observed now.
type Inputs struct {
	Mounts  []PodMount
	Secrets []SecretInput
}

// State is what the controller remembers of one workload between looks at
// it, in memory: the versions each current pod started with (the first
// versions seen of it) and the content of each Secret when the workload
// last started or restarted. A controller that starts anew takes what it
// sees as the baseline: a change made while it was away restarts nothing.
type State struct {
	// started maps podUID/class to the versions first seen of that pod.
	started map[string]map[string]string
	// secrets maps a Secret's name to its hash as last accounted for.
	secrets map[string]string
	// pending is when a change was first seen, not yet restarted for.
	pending time.Time
	// wrote is the restarted-at value coffer last wrote, and before the
	// template's value it replaced: until the controller's copy of the
	// workload shows the write, wrote is the current one.
	wrote, before string
}

// Generation is the restarted-at value pods must carry to be current, given
// the template's value in the controller's (possibly older) copy of the
// workload.
func (s *State) Generation(template string) string {
	if s.wrote != "" && template == s.before {
		return s.wrote
	}
	return template
}

// NewState returns the state of a workload seen for the first time.
func NewState() *State {
	return &State{started: map[string]map[string]string{}, secrets: map[string]string{}}
}

// Decision is what Plan decided.
type Decision struct {
	// Restart: restart the workload now, for Changes, by Trigger.
	Restart bool
	Changes []string
	Trigger string
	// Wake is when to look again though nothing changes (zero: only on a
	// change): the end of the debounce window.
	Wake time.Time
}

// Plan decides, without I/O, whether the workload must restart:
//   - a current pod mounts a version of an object other than the one it
//     started with, or a followed Secret's content differs from the one
//     accounted for; first sights are baselines, never changes;
//   - the first change opens a debounce window; the restart comes at its
//     end, once, for every change seen by then (a sweep that rotates many
//     pods is one restart);
//   - after the restart (Restarted), the pods from before it are no longer
//     current, and the pods it starts mount the new versions from their
//     start: neither triggers anything, so a restart never causes another.
//
// The state forgets pods and Secrets no longer among the inputs, so it is
// bounded by what the workload mounts and consumes now.
func (s *State) Plan(in Inputs, now time.Time, debounce time.Duration) Decision {
	var mounts, secrets []string
	seenPods := make(map[string]bool, len(in.Mounts))
	for _, m := range in.Mounts {
		key := m.PodUID + "/" + m.Class
		seenPods[key] = true
		start, known := s.started[key]
		if !known {
			s.started[key] = copyMap(m.Versions)
			continue
		}
		if !m.Current {
			continue
		}
		for id, v := range m.Versions {
			if old, ok := start[id]; ok && old != v {
				mounts = append(mounts, fmt.Sprintf("secretproviderclass/%s %s@%s", m.Class, id, v))
			}
		}
	}
	for key := range s.started {
		if !seenPods[key] {
			delete(s.started, key)
		}
	}
	seenSecrets := make(map[string]bool, len(in.Secrets))
	for _, sec := range in.Secrets {
		seenSecrets[sec.Name] = true
		old, known := s.secrets[sec.Name]
		switch {
		case !known:
			s.secrets[sec.Name] = sec.Hash
		case old != sec.Hash:
			secrets = append(secrets, "secret/"+sec.Name)
		}
	}
	for name := range s.secrets {
		if !seenSecrets[name] {
			delete(s.secrets, name)
		}
	}
	if len(mounts) == 0 && len(secrets) == 0 {
		// Whatever changed is gone (its pods ended): nothing to do.
		s.pending = time.Time{}
		return Decision{}
	}
	if s.pending.IsZero() {
		s.pending = now
	}
	if due := s.pending.Add(debounce); now.Before(due) {
		return Decision{Wake: due}
	}
	d := Decision{Restart: true, Changes: dedupe(append(mounts, secrets...))}
	switch {
	case len(mounts) > 0 && len(secrets) > 0:
		d.Trigger = TriggerBoth
	case len(mounts) > 0:
		d.Trigger = TriggerMount
	default:
		d.Trigger = TriggerSecret
	}
	return d
}

// Restarted accounts for a restart that Plan decided and the API accepted:
// the Secrets' contents now are those the new pods start with. (The pods
// from before the restart stop being current by their annotation.)
func (s *State) Restarted(in Inputs, before, wrote string) {
	s.pending = time.Time{}
	s.before, s.wrote = before, wrote
	for _, sec := range in.Secrets {
		s.secrets[sec.Name] = sec.Hash
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func dedupe(list []string) []string {
	sort.Strings(list)
	out := list[:0]
	for i, v := range list {
		if i == 0 || v != list[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// maxSummary bounds the restarted-for annotation and the event message.
const maxSummary = 1024

// Summary lists changes within maxSummary bytes: object ids, versions and
// Secret names, never a value.
func Summary(changes []string) string {
	var b strings.Builder
	for i, c := range changes {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		more := fmt.Sprintf(", and %d more", len(changes)-i)
		if b.Len()+len(sep)+len(c) > maxSummary-len(more) {
			b.WriteString(more)
			break
		}
		b.WriteString(sep + c)
	}
	return b.String()
}
