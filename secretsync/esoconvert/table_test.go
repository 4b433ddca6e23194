package esoconvert

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the mapping table of docs/migrating-from-eso.md from Table")

const (
	docsPage     = "../../docs/migrating-from-eso.md"
	tableHeading = "## Field by field\n\n"
)

// TestDocsTableIsTable: the mapping table of docs/migrating-from-eso.md
// is Table, row by row, so the documentation and coffer convert's
// reasons never disagree (go test -update-docs rewrites it).
func TestDocsTableIsTable(t *testing.T) {
	raw, err := os.ReadFile(docsPage)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	i := strings.Index(page, tableHeading)
	if i < 0 {
		t.Fatalf("%s has no %q", docsPage, strings.TrimSpace(tableHeading))
	}
	start := i + len(tableHeading)
	end := start
	for end < len(page) && strings.HasPrefix(page[end:], "|") {
		nl := strings.IndexByte(page[end:], '\n')
		if nl < 0 {
			end = len(page)
			break
		}
		end += nl + 1
	}
	want := Markdown()
	if *updateDocs {
		if err := os.WriteFile(docsPage, []byte(page[:start]+want+page[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got := strings.Split(page[start:end], "\n")
	rows := strings.Split(want, "\n")
	for j := 0; j < len(got) || j < len(rows); j++ {
		var g, w string
		if j < len(got) {
			g = got[j]
		}
		if j < len(rows) {
			w = rows[j]
		}
		if g != w {
			t.Errorf("row %d of the table in %s:\n got: %s\nwant: %s\n(go test ./secretsync/esoconvert -update-docs rewrites it)", j+1, docsPage, g, w)
		}
	}
}

// TestDocsShowTheSeed: docs/migrating-from-eso.md shows the seed-shaped
// ExternalSecret and store as testdata/seed.yaml holds them, and exactly
// what coffer convert prints for them.
func TestDocsShowTheSeed(t *testing.T) {
	page, err := os.ReadFile(docsPage)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var input []string
	for _, line := range strings.Split(string(seed), "\n") {
		if !strings.HasPrefix(line, "#") {
			input = append(input, line)
		}
	}
	for what, text := range map[string]string{"the input": "```yaml\n" + strings.Join(input, "\n") + "```", "the output": "```yaml\n" + seedOutput + "```"} {
		if !strings.Contains(string(page), text) {
			t.Errorf("%s does not show %s of TestSeedExternalSecret:\n%s", docsPage, what, text)
		}
	}
}
