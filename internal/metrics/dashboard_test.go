package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// describer collects the names of every metric registered with it.
type describer struct{ names map[string]string }

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for desc := range ch {
		if m := fq.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = desc.String()
		}
	}
	return nil
}
func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.Register(c)
	}
}
func (d *describer) Unregister(prometheus.Collector) bool { return false }

func registeredNames() map[string]string {
	d := &describer{names: map[string]string{}}
	New(d, Options{Version: "test", CacheStats: func() CacheStats { return CacheStats{} }})
	NewEventsConsumer(d, "test")
	return d.names
}

// TestDashboardQueriesUseExistingMetrics parses the Grafana dashboard and
// checks every coffer_* series its queries name is one coffer exports.
func TestDashboardQueriesUseExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deployment/grafana/coffer-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	names := registeredNames()
	series := regexp.MustCompile(`coffer_[a-z_]+`)
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	used := 0
	for _, e := range exprs {
		for _, name := range series.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && names[trimmed] != "" {
					base = trimmed
				}
			}
			if _, ok := names[base]; !ok {
				t.Errorf("query %q uses %s, which coffer does not export", e, name)
			}
			used++
		}
	}
	if used < 10 {
		t.Errorf("only %d metric references found; is the dashboard empty?", used)
	}
}

// TestMetricsAreDocumented checks docs/metrics.md names every metric.
func TestMetricsAreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range registeredNames() {
		if strings.HasPrefix(name, "coffer_") && !strings.Contains(string(b), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not document %s", name)
		}
	}
}
