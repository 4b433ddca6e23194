package provider_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	region = "us-east-1"
	canary = "canary-3f9a1c"
)

// sessions is the identity source of one workload, as narrow as the
// provider needs: like auth.Resolver, it reuses one session the AWS fake
// minted until told AWS refused it (Invalidate), and then mints another.
type sessions struct {
	fake *fakeaws.Server
	// refreshErr, when set, fails every resolution after the first.
	refreshErr error

	mu          sync.Mutex
	current     *fakeaws.Identity
	minted      int
	invalidated []string
}

func (s *sessions) Identity(_ context.Context, req auth.Request) (auth.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		if s.minted > 0 && s.refreshErr != nil {
			return auth.Identity{}, s.refreshErr
		}
		s.minted++
		id := fakeaws.AllowAll(fmt.Sprintf("ASIATESTSESSION%04d", s.minted), fmt.Sprintf("%s-key-%d", canary, s.minted))
		id.SessionToken = fmt.Sprintf("%s-token-%d", canary, s.minted)
		id.Expires = time.Now().Add(time.Hour)
		s.fake.AddIdentity(id)
		s.current = &id
	}
	c := s.current
	return auth.Identity{
		Key:           "workload:" + req.Namespace + "/" + req.ServiceAccount,
		CredentialKey: "workload:" + req.Namespace + "/" + req.ServiceAccount + "|session=" + req.PodName,
		Description:   "a test session",
		Credentials:   credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	}, nil
}

func (s *sessions) Invalidate(credKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, credKey)
	s.current = nil
}

// expire makes AWS consider the current session over while the source
// still holds it (clock skew, a session cut short).
func (s *sessions) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := *s.current
	id.Expires = time.Now().Add(-time.Minute)
	s.fake.AddIdentity(id)
}

// revoke makes AWS forget the current session.
func (s *sessions) revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fake.RemoveIdentity(s.current.AccessKeyID)
}

func (s *sessions) counts() (minted int, invalidated []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minted, append([]string(nil), s.invalidated...)
}

// noInvalidation hides Invalidate: an identity source that caches nothing.
type noInvalidation struct{ provider.IdentitySource }

// workload is the pod whose objects the tests read.
var workload = map[string]string{
	spc.AttrSPCName:        "app-secrets",
	spc.AttrPodName:        "app-0",
	spc.AttrPodNamespace:   "team-a",
	spc.AttrPodUID:         "0b7f4f4c-0000-4000-8000-000000000001",
	spc.AttrServiceAccount: "app",
	spc.KeyRegion:          region,
	spc.KeyObjects: `
- {objectName: team/db, objectType: secretsmanager, objectAlias: db}
- {objectName: /team/host, objectType: ssmparameter, objectAlias: host}
`,
}

// readPath is one way into the provider: the driver's Mount, or Secret
// sync's FetchFiles.
type readPath func(t *testing.T, m *provider.Mounter) ([]render.File, error)

var readPaths = map[string]readPath{
	"mount": func(t *testing.T, m *provider.Mounter) ([]render.File, error) {
		res, err := m.Mount(context.Background(), provider.Request{Attributes: attributes(t, nil), Permission: "420"})
		if err != nil {
			return nil, err
		}
		return res.Files, nil
	},
	"sync": func(t *testing.T, m *provider.Mounter) ([]render.File, error) {
		cfg, err := spc.Parse(workload, spc.Options{RequireRegion: true})
		if err != nil {
			t.Fatal(err)
		}
		return m.FetchFiles(context.Background(), cfg)
	},
}

// newMounter returns a Mounter reading the AWS fake through the real SDK,
// with a value of each service seeded.
func newMounter(t *testing.T, fake *fakeaws.Server, url string, ids provider.IdentitySource) *provider.Mounter {
	t.Helper()
	fake.PutSecretString(region, "team/db", canary+"-db")
	fake.PutParameter(region, "/team/host", canary+"-host", "String")
	base := fakeaws.AWSConfig(url, region, "", "", "")
	return &provider.Mounter{
		Identities: ids,
		Clients: func(_ context.Context, id auth.Identity) fetch.Clients {
			return awsapi.NewClients(base, id.Credentials)
		},
		Fetcher: &fetch.Fetcher{},
	}
}

// Credentials AWS refuses are dropped and obtained anew once, on every path
// into the provider: Secret sync must not keep using refused credentials
// until they expire.
func TestRefusedCredentialsRefreshedOnce(t *testing.T) {
	denied := &auth.Error{Reason: auth.ReasonDenied, Msg: "STS refused to issue credentials for the role"}
	tests := map[string]struct {
		refuse       func(s *sessions, fake *fakeaws.Server)
		invalidates  bool  // the source can drop credentials
		refreshErr   error // the refresh fails
		wantClass    string
		wantMinted   int
		wantDropped  int
		wantInErrors string
	}{
		"session expired early": {
			refuse:      func(s *sessions, _ *fakeaws.Server) { s.expire() },
			invalidates: true, wantMinted: 2, wantDropped: 1,
		},
		"session revoked": {
			refuse:      func(s *sessions, _ *fakeaws.Server) { s.revoke() },
			invalidates: true, wantMinted: 2, wantDropped: 1,
		},
		"refused every time: one refresh, not a loop": {
			refuse: func(_ *sessions, fake *fakeaws.Server) {
				fake.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultError, Code: "ExpiredTokenException", Message: "The security token included in the request is expired"})
			},
			invalidates: true, wantMinted: 2, wantDropped: 1,
			wantClass: string(fetch.KindCredentials), wantInErrors: "AWS refused the credentials",
		},
		"the refresh fails": {
			refuse:      func(s *sessions, _ *fakeaws.Server) { s.expire() },
			invalidates: true, refreshErr: denied, wantMinted: 1, wantDropped: 1,
			wantClass: "identity_" + auth.ReasonDenied, wantInErrors: denied.Msg,
		},
		"a source that caches nothing is not asked to drop": {
			refuse:    func(s *sessions, _ *fakeaws.Server) { s.expire() },
			wantClass: string(fetch.KindCredentials), wantMinted: 1, wantInErrors: "AWS refused the credentials",
		},
	}
	for pathName, read := range readPaths {
		for name, tc := range tests {
			t.Run(pathName+"/"+name, func(t *testing.T) {
				fake, ts := fakeaws.NewTestServer(t)
				src := &sessions{fake: fake, refreshErr: tc.refreshErr}
				var ids provider.IdentitySource = src
				if !tc.invalidates {
					ids = noInvalidation{src}
				}
				m := newMounter(t, fake, ts.URL, ids)
				if _, err := read(t, m); err != nil {
					t.Fatalf("first read: %v", err)
				}
				tc.refuse(src, fake)
				files, err := read(t, m)
				minted, dropped := src.counts()
				if minted != tc.wantMinted || len(dropped) != tc.wantDropped {
					t.Errorf("sessions minted %d, dropped %d; want %d and %d", minted, len(dropped), tc.wantMinted, tc.wantDropped)
				}
				for _, key := range dropped {
					if key != "workload:team-a/app|session=app-0" {
						t.Errorf("dropped %q, not the refused credentials' key", key)
					}
				}
				if got := provider.ErrorClass(err); got != tc.wantClass {
					t.Fatalf("error class %q, want %q (error: %v)", got, tc.wantClass, err)
				}
				if err != nil {
					if !strings.Contains(err.Error(), tc.wantInErrors) {
						t.Errorf("error %q does not say %q", err, tc.wantInErrors)
					}
					if strings.Contains(err.Error(), canary) {
						t.Errorf("error holds a credential or value: %v", err)
					}
					return
				}
				got := map[string]string{}
				for _, f := range files {
					got[f.Path] = string(f.Data)
				}
				if len(got) != 2 || got["db"] != canary+"-db" || got["host"] != canary+"-host" {
					t.Errorf("files after the refresh: %d (%v)", len(files), slices.Sorted(maps.Keys(got)))
				}
			})
		}
	}
}
