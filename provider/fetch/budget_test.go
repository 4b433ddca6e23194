package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestBytesPerFetchAreBounded: a Fetch stops reading once its values pass
// MaxBytes, while paging a path or filter object and between objects, and
// fails naming the largest objects.
func TestBytesPerFetchAreBounded(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t)
	big := strings.Repeat("x", 4<<10)
	for i := range 100 { // 400 KiB under /big, 10 pages
		e.fake.PutParameter(region, fmt.Sprintf("/big/p%03d", i), big, "String")
	}
	for i := range 30 { // 120 KiB of secrets, two filter pages
		e.fake.PutSecretString(region, fmt.Sprintf("bulk-%02d", i), big)
	}
	for i := range 40 { // 40 secrets of 4 KiB: 160 KiB, two batches
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), big)
	}
	clients := e.clients(fakeaws.AllowAll("AKIDB", "kb"))
	tests := map[string]struct {
		objects   string
		wantLarge string
		maxPages  int // GetParametersByPath or filtered BatchGetSecretValue calls
	}{
		"path":      {"- {path: /big, objectAlias: big}", "objects[0] (/big) more than 65536 bytes", 2 * (limit / (10 * len(big)))},
		"filters":   {"- {objectAlias: b, objectType: secretsmanager, filters: [{key: name, values: [bulk-]}]}", "more than 65536 bytes", 1},
		"objects":   {secretObjects(40, "s"), "objects[", 0},
		"path last": {secretObjects(20, "s") + "- {path: /big, objectAlias: big}", "(/big)", -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.fake.Count(fakeaws.ServiceSSM, "GetParametersByPath") + e.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue")
			f := &fetch.Fetcher{MaxBytes: limit, Concurrency: 1}
			_, err := f.Fetch(context.Background(), config(t, tc.objects), clients, "id-b")
			var be *fetch.BudgetError
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.wantLarge) || !strings.Contains(err.Error(), "more than 65536 bytes of values") {
				t.Fatalf("Fetch = %v, want a budget error naming %q", err, tc.wantLarge)
			}
			pages := e.fake.Count(fakeaws.ServiceSSM, "GetParametersByPath") + e.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue") - before
			if tc.maxPages > 0 && pages > tc.maxPages {
				t.Errorf("%d pages read, want at most %d: paging must stop at the budget", pages, tc.maxPages)
			}
		})
	}
	t.Run("under the budget", func(t *testing.T) {
		f := &fetch.Fetcher{MaxBytes: limit}
		if _, err := f.Fetch(context.Background(), config(t, secretObjects(10, "s")), clients, "id-b"); err != nil {
			t.Fatal(err)
		}
	})
}
