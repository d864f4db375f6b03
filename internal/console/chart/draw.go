package chart

import (
	"fmt"
	"strings"
	"time"
)

// Size of the chart, in SVG user units.
const (
	chartW, chartH = 900.0, 220.0
	padL, padB     = 44.0, 24.0
	padT, padR     = 10.0, 10.0
)

// Draw draws counts per minute from since as an SVG bar chart. It is
// built from numbers and fixed strings only, so the template may insert it
// unescaped.
func Draw(counts []int, since time.Time) string {
	peak := 1
	for _, n := range counts {
		peak = max(peak, n)
	}
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="Registrations per minute" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH)
	// Axes and the peak's gridline.
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, padT, padL+plotW, padT)
	fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f" text-anchor="end">%d</text>`, padL-4, padT+4, peak)
	fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f" text-anchor="end">0</text>`, padL-4, padT+plotH)
	w := plotW / float64(len(counts))
	for i, n := range counts {
		if n == 0 {
			continue
		}
		h := plotH * float64(n) / float64(peak)
		fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s: %d</title></rect>`,
			padL+float64(i)*w, padT+plotH-h, max(w-0.5, 0.5), h, since.Add(time.Duration(i)*time.Minute).Format("15:04"), n)
	}
	// An hour mark on the time axis.
	for i := 0; i <= len(counts); i += 60 {
		anchor := "middle"
		if i == len(counts) {
			anchor = "end"
		}
		x := padL + float64(i)*w
		fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x, chartH-6, anchor, since.Add(time.Duration(i)*time.Minute).Format("15:04"))
	}
	b.WriteString(`</svg>`)
	return b.String()
}
