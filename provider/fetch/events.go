package fetch

import (
	"context"
	"time"

	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/provider/spc"
)

type rolesKey struct{}

// WithRoles returns a context whose Fetch calls may answer from the cache
// by the change ledger's rule (Fetcher.Changes), for an identity with the
// given IAM roles (auth.Identity.Roles): without them, a change to the
// role could not be seen, and nothing is answered by the rule.
func WithRoles(ctx context.Context, roles []string) context.Context {
	return context.WithValue(ctx, rolesKey{}, roles)
}

func rolesOf(ctx context.Context) []string {
	roles, _ := ctx.Value(rolesKey{}).([]string)
	return roles
}

// unchanged returns the cached value of key when the change ledger's rule
// lets it answer this mount (see Fetcher.Changes), and tells
// OnEventVerdict what the rule said.
func (f *Fetcher) unchanged(ctx context.Context, key, region string, o *spc.Object, t spc.Target) (cache.Entry, bool) {
	roles := rolesOf(ctx)
	if f.Changes == nil || len(roles) == 0 {
		return cache.Entry{}, false
	}
	e, ok := f.Cache.Last(key, time.Time{})
	if !ok {
		return cache.Entry{}, false
	}
	v := f.Changes.Check(e.Position, e.At, subjects(roles, region, o, t))
	if f.OnEventVerdict != nil {
		f.OnEventVerdict(v)
	}
	return e, v == changes.Unchanged
}

// subjects are what a cached value of o depends on: every reading of the
// object's name (an unqualified name is in the account of the role that
// reads) and the identity's roles. Nil object subjects (a path or filter
// object, whose members a change can add to; an unknown account) make
// the rule decline.
func subjects(roles []string, region string, o *spc.Object, t spc.Target) []changes.Subject {
	if o.Bulk() {
		return nil
	}
	account := changes.RoleAccount(roles[len(roles)-1])
	var out []changes.Subject
	switch o.Type {
	case spc.SecretsManager:
		out = changes.Secrets(account, region, t.Name)
	case spc.ParameterStore:
		out = changes.Parameter(account, region, t.Name)
	}
	if out == nil {
		return nil
	}
	for _, r := range roles {
		rs := changes.Role("", r)
		if rs == nil {
			return nil
		}
		out = append(out, rs...)
	}
	return out
}
