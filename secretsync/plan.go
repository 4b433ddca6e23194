package secretsync

import (
	"context"
	"errors"
	"time"

	"github.com/coffer-csi/coffer/provider/spc"
)

// loadDeclaration reads a class's parameters as the workload whose pod
// attributes are pod would see them (the driver's attributes only: the
// class's own parameters always win), then its syncSecrets. A class that
// cannot be read fails as a whole, with the Result that says why.
func loadDeclaration(ctx context.Context, owner *SPC, pod map[string]string, opts ConfigOptions) (*spc.Config, []*Secret, *Result) {
	cfg, err := owner.Config(ctx, pod, opts)
	if err != nil {
		r := failedWith("", declarationReason(err), "syncSecrets not synced: the SecretProviderClass's parameters", err)
		return nil, nil, &r
	}
	decl, err := Parse(owner.Parameters[spc.KeySyncSecrets], cfg)
	if err != nil {
		r := failedWith("", ReasonInvalidDeclaration, "syncSecrets not synced", err)
		return nil, nil, &r
	}
	return cfg, decl, nil
}

// declarationReason tells a class that cannot be parsed from a failure to
// look up a default (the node's region).
func declarationReason(err error) string {
	var verr *spc.ValidationError
	if errors.As(err, &verr) {
		return ReasonInvalidDeclaration
	}
	return ReasonFetchFailed
}

// syncPlan is what one sync of a class does: no I/O, only the decision.
type syncPlan struct {
	// groups are the entries to sync, by ServiceAccount, in the order of
	// the declaration: entries that read AWS as the same ServiceAccount
	// share one identity and one fetch.
	groups []accountGroup
	// unowned are the entries that name no serviceAccountName: no one
	// syncs them (ReasonNoServiceAccount).
	unowned []*Secret
}

type accountGroup struct {
	serviceAccount string
	secrets        []*Secret
}

// secretsOf returns the entries to sync as ServiceAccount sa.
func (p syncPlan) secretsOf(sa string) []*Secret {
	for _, g := range p.groups {
		if g.serviceAccount == sa {
			return g.secrets
		}
	}
	return nil
}

// planSync selects the entries of decl that are due at now and groups them
// by ServiceAccount. due is when each entry was last scheduled: a time
// after now is not yet due, a zero time means only when the declaration
// changes, and an entry absent from due (never synced, or failed) is due
// now. With a nil due, every entry is due.
func planSync(decl []*Secret, due map[string]time.Time, now time.Time) syncPlan {
	var p syncPlan
	index := map[string]int{}
	for _, s := range decl {
		if s.ServiceAccountName == "" {
			p.unowned = append(p.unowned, s)
			continue
		}
		if t, seen := due[s.Name]; seen && (t.IsZero() || t.After(now)) {
			continue
		}
		i, seen := index[s.ServiceAccountName]
		if !seen {
			i = len(p.groups)
			index[s.ServiceAccountName] = i
			p.groups = append(p.groups, accountGroup{serviceAccount: s.ServiceAccountName})
		}
		p.groups[i].secrets = append(p.groups[i].secrets, s)
	}
	return p
}

// outcome is whether a synced entry is ready.
type outcome struct {
	secret *Secret
	ready  bool
}

// schedule is when a class's entries are due after a sync.
type schedule struct {
	// due is when each entry must be synced next (see planSync).
	due map[string]time.Time
	// wake is the earliest due time (zero: only when the class changes).
	wake time.Time
	// retry says an entry failed: the class is retried with backoff,
	// capped at retryWithin, the shortest refreshInterval of the entries
	// that failed (0: no cap).
	retry       bool
	retryWithin time.Duration
}

// reschedule computes when the entries of decl are due after synced were
// synced at now, from prev, when they were due before: an entry that
// failed is due again at once (with the class's backoff), one that is
// ready after its refreshInterval (or, with 0, only when the declaration
// changes). Entries no longer declared are dropped.
func reschedule(decl []*Secret, prev map[string]time.Time, synced []outcome, now time.Time) schedule {
	s := schedule{due: map[string]time.Time{}}
	for _, d := range decl {
		if t, ok := prev[d.Name]; ok {
			s.due[d.Name] = t
		}
	}
	for _, o := range synced {
		name, interval := o.secret.Name, o.secret.RefreshInterval
		switch {
		case !o.ready:
			s.retry = true
			delete(s.due, name)
			if interval > 0 && (s.retryWithin == 0 || interval < s.retryWithin) {
				s.retryWithin = interval
			}
		case interval == 0:
			s.due[name] = time.Time{}
		default:
			s.due[name] = now.Add(interval)
		}
	}
	for _, t := range s.due {
		if !t.IsZero() && (s.wake.IsZero() || t.Before(s.wake)) {
			s.wake = t
		}
	}
	return s
}
