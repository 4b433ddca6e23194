package secretsync

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// The engine over provider.Mounter.FetchFiles and the wire-level AWS fake: partial
// results, not-found versus other failures, versions in the hash.
func TestSyncOverProviderFiles(t *testing.T) {
	fake, ts := fakeaws.NewTestServer(t)
	fake.AddIdentity(fakeaws.AllowAll("AKIDSYNC", "sync-secret"))
	fake.PutSecretString("us-east-1", "team/db", `{"username":"app","password":"`+canary+`"}`)
	fake.PutParameter("us-east-1", "/team/host", canary+"-host", "String")
	awsCfg := fakeaws.AWSConfig(ts.URL, "us-east-1", "AKIDSYNC", "sync-secret", "")
	p := &provider.Mounter{
		Identities: auth.NodeCredentials{Credentials: awsCfg.Credentials},
		Clients:    provider.SharedClients(awsapi.NewClientCache(awsCfg, 0)),
		Fetcher:    &fetch.Fetcher{},
	}
	cfg, err := spc.Parse(map[string]string{
		spc.AttrSPCName: testSPC, spc.AttrPodNamespace: testNS, spc.KeyRegion: "us-east-1",
		spc.KeyObjects: `
- {objectName: team/db, objectType: secretsmanager, objectAlias: db, jmesPath: [{path: password, objectAlias: password}]}
- {objectName: /team/host, objectType: ssmparameter, objectAlias: host}
- {objectName: team/missing, objectType: secretsmanager, objectAlias: missing}
`}, spc.Options{RequireRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	decl, err := Parse(`
- {secretName: db, data: [{key: password, objectName: password}, {key: host, objectName: host}]}
- {secretName: gone, deletionPolicy: Delete, data: [{key: x, objectName: missing}]}
- {secretName: mixed, data: [{key: x, objectName: missing}, {key: host, objectName: host}]}
`, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	files, fetchErr := p.FetchFiles(context.Background(), cfg)
	var objErrs fetch.Errors
	if !errors.As(fetchErr, &objErrs) || len(objErrs) != 1 || objErrs[0].Kind != fetch.KindNotFound || objErrs[0].Object.Index != 2 {
		t.Fatalf("Files error = %v", fetchErr)
	}
	if len(files) != 3 {
		t.Fatalf("Files gave %d files, want the 3 of the objects that exist", len(files))
	}
	res := e.engine.Sync(context.Background(), e.owner, decl, files, fetchErr)
	wantResult(t, res[0], true, ReasonCreated)
	wantResult(t, res[1], true, ReasonAbsent)
	wantResult(t, res[2], false, ReasonFetchFailed, "team/missing", "not found")
	if got := data(e.secret("db")); got["password"] != canary || got["host"] != canary+"-host" {
		t.Errorf("db keys %v", slices.Sorted(maps.Keys(got)))
	}
	for _, r := range res {
		if strings.Contains(r.Message, canary) {
			t.Errorf("message holds a value: %s", r.Message)
		}
	}

	// A new version in AWS changes the hash; the same version does not.
	hash := e.secret("db").Annotations[AnnotationContentHash]
	files, _ = p.FetchFiles(context.Background(), cfg)
	if decl[0].Hash(byPath(files)) != hash {
		t.Errorf("hash changed without a new version")
	}
	fake.PutParameter("us-east-1", "/team/host", canary+"-host2", "String")
	files, fetchErr = p.FetchFiles(context.Background(), cfg)
	res = e.engine.Sync(context.Background(), e.owner, decl[:1], files, fetchErr)
	wantResult(t, res[0], true, ReasonUpdated, `key "host" changed`)
	if e.secret("db").Annotations[AnnotationContentHash] == hash {
		t.Errorf("hash unchanged after a new version")
	}
}
