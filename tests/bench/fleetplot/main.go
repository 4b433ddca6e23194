// Command fleetplot draws the fleet simulation's calls per second against
// node count, one panel per AWS API, with the account quota drawn in
// (make bench-fleet runs it on tests/bench/fleet.json).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

type run struct {
	Subject          string             `json:"subject"`
	Nodes            int                `json:"nodes"`
	HigherThroughput bool               `json:"higherThroughput"`
	Aligned          bool               `json:"aligned"`
	CallsPerSecond   map[string]float64 `json:"callsPerSecond"`
}

// eventRun is a run with change events (only what is drawn).
type eventRun struct {
	Subject  string `json:"subject"`
	Pipeline struct {
		Name string `json:"name"`
	} `json:"pipeline"`
	Nodes            int                `json:"nodes"`
	HigherThroughput bool               `json:"higherThroughput"`
	Aligned          bool               `json:"aligned"`
	MaxAgeS          float64            `json:"maxAgeS"`
	CallsPerSecond   map[string]float64 `json:"callsPerSecond"`
}

type report struct {
	Commit    string             `json:"commit"`
	Quotas    map[string]float64 `json:"quotas"`
	Runs      []run              `json:"runs"`
	EventRuns []eventRun         `json:"eventRuns"`
}

// eventsSubject names the healthy runs with change events as runs of their
// own subject, by max age ("coffer-events-15m"), so that series can match
// them; the other pipelines are not drawn.
func eventsSubject(e eventRun) (run, bool) {
	if e.Subject != "coffer-events" || e.Pipeline.Name != "healthy" {
		return run{}, false
	}
	return run{Subject: fmt.Sprintf("coffer-events-%.0fm", e.MaxAgeS/60), Nodes: e.Nodes, HigherThroughput: e.HigherThroughput, Aligned: e.Aligned, CallsPerSecond: e.CallsPerSecond}, true
}

// panels are the APIs drawn, with the quota lines of each.
var panels = []struct {
	api    string
	quotas []string // keys of report.Quotas
}{
	{"BatchGetSecretValue", []string{"BatchGetSecretValue"}},
	{"GetSecretValue", []string{"GetSecretValue"}},
	{"DescribeSecret", []string{"DescribeSecret"}},
	{"GetParameters", []string{"GetParameters", "GetParameters (higher throughput)"}},
	{"AssumeRoleWithWebIdentity", nil}, // STS: no quota in the table
}

var series = []struct {
	label string
	match func(run) bool
	color color.Color
}{
	{"coffer, standard throughput, sweeps aligned", func(r run) bool { return r.Subject == "coffer" && !r.HigherThroughput && r.Aligned }, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
	{"coffer, standard throughput, sweeps at random phases", func(r run) bool { return r.Subject == "coffer" && !r.HigherThroughput && !r.Aligned }, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}},
	{"coffer, higher throughput, sweeps aligned", func(r run) bool { return r.Subject == "coffer" && r.HigherThroughput }, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
	{"AWS provider (model), sweeps aligned", func(r run) bool { return r.Subject == "ascp-model" }, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
	{"coffer with change events (max age 15 min), sweeps aligned", func(r run) bool { return r.Subject == "coffer-events-15m" && r.Aligned }, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}},
	{"coffer with change events (max age 15 min), random phases", func(r run) bool { return r.Subject == "coffer-events-15m" && !r.Aligned }, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}},
	{"coffer with change events (max age 30 min), sweeps aligned", func(r run) bool { return r.Subject == "coffer-events-30m" && r.Aligned }, color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff}},
	{"coffer with change events (max age 30 min), random phases", func(r run) bool { return r.Subject == "coffer-events-30m" && !r.Aligned }, color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff}},
}

// floor is where the log scale starts: 0 calls are drawn on it.
const floor = 0.1

func main() {
	in := flag.String("in", "fleet.json", "fleet report (JSON)")
	out := flag.String("out", "fleet.png", "PNG to write")
	flag.Parse()
	if err := draw2(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "fleetplot:", err)
		os.Exit(1)
	}
}

func draw2(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	// The first healthy run of each size and phase: later ones of the same
	// max age vary something else (the account's announcement rate).
	drawn := map[string]bool{}
	for _, e := range r.EventRuns {
		ru, ok := eventsSubject(e)
		key := fmt.Sprint(ru.Subject, ru.Nodes, ru.Aligned)
		if ok && !drawn[key] {
			drawn[key] = true
			r.Runs = append(r.Runs, ru)
		}
	}
	const w, h = 12 * vg.Inch, 13 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	maxNodes := 0
	for _, ru := range r.Runs {
		maxNodes = max(maxNodes, ru.Nodes)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.api + " calls per second, account-wide (throttled included)"
		p.X.Label.Text = "nodes"
		p.Y.Label.Text = "calls per second (log)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top = false
		p.Legend.Left = false
		p.Add(plotter.NewGrid())
		for _, s := range series {
			var pts plotter.XYs
			for _, ru := range r.Runs {
				if s.match(ru) {
					pts = append(pts, plotter.XY{X: float64(ru.Nodes), Y: max(floor, ru.CallsPerSecond[pn.api])})
				}
			}
			if len(pts) == 0 {
				continue
			}
			sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color, sc.Color = s.color, s.color
			p.Add(l, sc)
			p.Legend.Add(s.label, l, sc)
		}
		for j, q := range pn.quotas {
			v, ok := r.Quotas[q]
			if !ok {
				continue
			}
			ql, err := plotter.NewLine(plotter.XYs{{X: 0, Y: v}, {X: float64(maxNodes), Y: v}})
			if err != nil {
				return err
			}
			ql.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			ql.Width = vg.Points(1.5)
			ql.Color = color.Gray{Y: uint8(40 + 80*j)}
			p.Add(ql)
			p.Legend.Add(fmt.Sprintf("quota %s: %g/s", q, v), ql)
		}
		p.X.Min = 0
		p.Y.Min = floor
		p.Y.Max = max(p.Y.Max, 100)
		p.Draw(tiles.At(dc, i%2, i/2))
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
