package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one line of a plot: a defense's values by flood rate.
type series struct {
	name   string
	xys    plotter.XYs
	color  int  // index into lineColors: the defense's
	dashed bool // a second line of the same defense
}

// colors of the defenses, in the order of the sweep.
var lineColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// bySweep returns one series per defense, in sweep order, of y(point)
// against the target rate.
func (rep *report) bySweep(y func(point) float64) []series {
	var out []series
	idx := map[string]int{}
	for _, p := range rep.points {
		i, ok := idx[p.Defense]
		if !ok {
			i = len(out)
			idx[p.Defense] = i
			out = append(out, series{name: p.Defense, color: i})
		}
		out[i].xys = append(out[i].xys, plotter.XY{X: float64(p.Rate), Y: y(p)})
	}
	for _, s := range out {
		sort.Slice(s.xys, func(a, b int) bool { return s.xys[a].X < s.xys[b].X })
	}
	return out
}

// rateTicks marks the swept rates on the x axis.
func (rep *report) rateTicks() plot.Ticker {
	seen := map[int]bool{}
	var ticks plot.ConstantTicks
	for _, p := range rep.points {
		if seen[p.Rate] {
			continue
		}
		seen[p.Rate] = true
		label := fmt.Sprintf("%dk", p.Rate/1000)
		if p.Rate < 1000 {
			label = fmt.Sprint(p.Rate)
		}
		ticks = append(ticks, plot.Tick{Value: float64(p.Rate), Label: label})
	}
	return ticks
}

// linePlot draws series on a log-scaled rate axis and saves a PNG.
// The legend goes to the top left unless legendLow.
func (rep *report) linePlot(path, title, ylabel string, ss []series, logY, legendLow bool, ymin, ymax float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "spoofed SYN flood, target rate (packets/s)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = rep.rateTicks()
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = !legendLow
	p.Legend.Left = true
	for _, s := range ss {
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		c := lineColors[s.color%len(lineColors)]
		l.Color, l.Width = c, vg.Points(1.5)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		pts.Color, pts.Shape = c, draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	if ymax > ymin {
		p.Y.Min, p.Y.Max = ymin, ymax
	}
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

// plots writes the sweep's PNGs into dir.
func (rep *report) plots(dir string) error {
	if len(rep.points) == 0 {
		return nil
	}
	success := rep.bySweep(func(p point) float64 { return 100 * p.Load.SuccessRate() })
	if err := rep.linePlot(filepath.Join(dir, successPNG), "Legitimate connections during the flood",
		"successful short connections (%)", success, false, true, 0, 100.5); err != nil {
		return err
	}
	// A log axis needs positive values: a p99 under 10 µs (or none, when
	// nothing connected) is drawn at 10 µs.
	p99 := rep.bySweep(func(p point) float64 { return max(float64(p.Load.ConnectP99)/1e6, 0.01) })
	if err := rep.linePlot(filepath.Join(dir, p99PNG), "Legitimate connect time, p99",
		"connect time p99 (ms, log scale)", p99, true, false, 0, 0); err != nil {
		return err
	}
	synacks := rep.bySweep(func(p point) float64 { return p.SynAckPPS() / 1000 })
	sent := rep.bySweep(func(p point) float64 { return p.SentPPS() / 1000 })
	for i := range sent {
		sent[i].name += ": SYNs sent"
		sent[i].dashed = true
	}
	return rep.linePlot(filepath.Join(dir, synAcksPNG), "SYN-ACKs sent by the defense",
		"thousands per second", append(synacks, sent...), false, false, 0, 0)
}
