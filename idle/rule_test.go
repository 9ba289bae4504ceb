package idle

import (
	"math"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

func TestRule(t *testing.T) {
	const period = 5 * time.Minute
	end := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	start := end.Add(-time.Hour)
	r := rule{CPUBelow: 5, NetBelow: 5e6, Period: period}

	// series returns n datapoints from start, value v, with set overriding
	// single indexes.
	series := func(n int, v float64, set map[int]float64) []computebot.Datapoint {
		var out []computebot.Datapoint
		for i := range n {
			val := v
			if x, ok := set[i]; ok {
				val = x
			}
			out = append(out, computebot.Datapoint{Time: start.Add(time.Duration(i) * period), Value: val})
		}
		return out
	}
	full := func(cpu, in, out float64) computebot.InstanceMetrics {
		return computebot.InstanceMetrics{CPUMax: series(12, cpu, nil), NetworkIn: series(12, in, nil), NetworkOut: series(12, out, nil)}
	}
	tests := []struct {
		name     string
		m        computebot.InstanceMetrics
		idle     bool
		complete bool
		maxCPU   float64
		net      float64
	}{
		{"idle", full(1.2, 100e3, 200e3), true, true, 1.2, 300e3},
		{"no data at all", computebot.InstanceMetrics{}, false, false, 0, 0},
		{"partial CPU (11 of 12)", computebot.InstanceMetrics{CPUMax: series(11, 1, nil), NetworkIn: series(12, 1, nil), NetworkOut: series(12, 1, nil)}, false, false, 1, 2},
		{"partial network in", computebot.InstanceMetrics{CPUMax: series(12, 1, nil), NetworkIn: series(11, 1, nil), NetworkOut: series(12, 1, nil)}, false, false, 1, 2},
		{"network out missing", computebot.InstanceMetrics{CPUMax: series(12, 1, nil), NetworkIn: series(12, 1, nil)}, false, false, 1, 0},
		{"one high CPU point", computebot.InstanceMetrics{CPUMax: series(12, 1, map[int]float64{7: 80}), NetworkIn: series(12, 1, nil), NetworkOut: series(12, 1, nil)}, false, true, 80, 2},
		{"CPU exactly at the threshold", full(5, 1, 1), false, true, 5, 2},
		{"CPU just below the threshold", full(4.99, 1, 1), true, true, 4.99, 2},
		{"low CPU, high network (a download)", full(0.5, 40e6, 1e6), false, true, 0.5, 41e6},
		{"in and out each below, sum not", full(0.5, 3e6, 3e6), false, true, 0.5, 6e6},
		{"one busy network period", computebot.InstanceMetrics{CPUMax: series(12, 1, nil), NetworkIn: series(12, 1e3, map[int]float64{11: 9e6}), NetworkOut: series(12, 1e3, nil)}, false, true, 1, 9e6 + 1e3},
		{"NaN CPU", computebot.InstanceMetrics{CPUMax: series(12, 1, map[int]float64{3: math.NaN()}), NetworkIn: series(12, 1, nil), NetworkOut: series(12, 1, nil)}, false, true, 1, 2},
		{"duplicate timestamps do not fill a gap", computebot.InstanceMetrics{
			CPUMax:    append(series(11, 1, nil), computebot.Datapoint{Time: start, Value: 1}),
			NetworkIn: series(12, 1, nil), NetworkOut: series(12, 1, nil)}, false, false, 1, 2},
		{"points outside the window are ignored", computebot.InstanceMetrics{
			CPUMax: append(series(11, 1, nil),
				computebot.Datapoint{Time: start.Add(-period), Value: 1},
				computebot.Datapoint{Time: end, Value: 90}),
			NetworkIn: series(12, 1, nil), NetworkOut: series(12, 1, nil)}, false, false, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := r.evaluate(tt.m, start, end, false)
			if v.Idle != tt.idle || v.Complete != tt.complete || v.Periods != 12 {
				t.Fatalf("evaluate = %+v; want idle %v, complete %v, 12 periods", v, tt.idle, tt.complete)
			}
			if v.MaxCPU != tt.maxCPU || v.NetworkBytes != tt.net {
				t.Errorf("evidence: max CPU %v, network %v; want %v, %v", v.MaxCPU, v.NetworkBytes, tt.maxCPU, tt.net)
			}
		})
	}
}

func TestRuleLongWindow(t *testing.T) {
	// 24 h of 5-minute periods: more than the stack buffer.
	end := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	start := end.Add(-24 * time.Hour)
	r := rule{CPUBelow: 5, NetBelow: 5e6, Period: 5 * time.Minute}
	var m computebot.InstanceMetrics
	for t := start; t.Before(end); t = t.Add(5 * time.Minute) {
		p := computebot.Datapoint{Time: t, Value: 1}
		m.CPUMax, m.NetworkIn, m.NetworkOut = append(m.CPUMax, p), append(m.NetworkIn, p), append(m.NetworkOut, p)
	}
	if v := r.evaluate(m, start, end, false); !v.Idle || v.Periods != 288 {
		t.Fatalf("evaluate = %+v", v)
	}
	m.CPUMax = m.CPUMax[1:]
	if v := r.evaluate(m, start, end, false); v.Idle || v.CPUPoints != 287 {
		t.Fatalf("with one CPU point missing: %+v", v)
	}
}

func TestVerdictCancellation(t *testing.T) {
	if c := (verdict{Idle: true, Complete: true, Periods: 12}).cancellation(time.Hour); c != nil {
		t.Errorf("idle verdict cancels: %+v", c)
	}
	v := verdict{Complete: false, Periods: 12, CPUPoints: 9, NetPoints: 12}
	want := Cancellation{Reason: CancelIncomplete, Periods: 12, CPUPeriods: 9, NetPeriods: 12, Window: time.Hour}
	if c := v.cancellation(time.Hour); c == nil || *c != want {
		t.Errorf("incomplete: %+v, want %+v", c, want)
	}
	v = verdict{Complete: true, Periods: 12, MaxCPU: 43, NetworkBytes: 120.5e6}
	want = Cancellation{Reason: CancelActive, MaxCPU: 43, NetworkBytes: 120.5e6, Window: time.Hour}
	if c := v.cancellation(time.Hour); c == nil || *c != want {
		t.Errorf("active: %+v, want %+v", c, want)
	}
}

// A window that is not a whole number of periods (New refuses one, but
// evaluate must not index past its buffer).
func TestRuleShortWindow(t *testing.T) {
	end := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	start := end.Add(-7 * time.Minute)
	r := rule{CPUBelow: 5, NetBelow: 5e6, Period: 5 * time.Minute}
	p := []computebot.Datapoint{{Time: start.Add(time.Minute), Value: 1}, {Time: start.Add(6 * time.Minute), Value: 1}}
	if v := r.evaluate(computebot.InstanceMetrics{CPUMax: p, NetworkIn: p, NetworkOut: p}, start, end, false); v.Periods != 1 || !v.Idle {
		t.Errorf("evaluate = %+v", v)
	}
}

func TestThreadTS(t *testing.T) {
	n := Notice{RequestChannel: "C1", RequestThread: "1.1", Channel: "C1", TS: "2.2"}
	if n.ThreadTS() != "1.1" {
		t.Errorf("in the request thread: %q", n.ThreadTS())
	}
	n.Channel = "D1" // fell back to a DM
	if n.ThreadTS() != "2.2" {
		t.Errorf("in a DM: %q", n.ThreadTS())
	}
}

// TestRuleGPU: on a GPU type, GPU utilization must be low in every period
// too; missing GPU data never counts as idle.
func TestRuleGPU(t *testing.T) {
	const period = 5 * time.Minute
	end := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	start := end.Add(-time.Hour)
	r := rule{CPUBelow: 5, NetBelow: 5e6, GPUBelow: 5, Period: period}
	series := func(n int, v float64) []computebot.Datapoint {
		var out []computebot.Datapoint
		for i := range n {
			out = append(out, computebot.Datapoint{Time: start.Add(time.Duration(i) * period), Value: v})
		}
		return out
	}
	low := func(gpu []computebot.Datapoint) computebot.InstanceMetrics {
		return computebot.InstanceMetrics{CPUMax: series(12, 2), NetworkIn: series(12, 1e3), NetworkOut: series(12, 1e3), GPUMax: gpu}
	}
	for _, tc := range []struct {
		name     string
		m        computebot.InstanceMetrics
		gpu      bool
		idle     bool
		complete bool
	}{
		{"training at 2 % CPU, 97 % GPU", low(series(12, 97)), true, false, true},
		{"GPU idle too", low(series(12, 0.5)), true, true, true},
		{"no GPU data", low(nil), true, false, false},
		{"GPU data for 11 of 12 periods", low(series(11, 0.5)), true, false, false},
		{"not a GPU type: GPU data ignored", low(series(12, 97)), false, true, true},
	} {
		v := r.evaluate(tc.m, start, end, tc.gpu)
		if v.Idle != tc.idle || v.Complete != tc.complete {
			t.Errorf("%s: idle %v complete %v, want %v %v (%+v)", tc.name, v.Idle, v.Complete, tc.idle, tc.complete, v)
		}
	}
}
