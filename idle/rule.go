package idle

import (
	"time"

	"github.com/computebot/computebot"
)

// verdict is the idle rule's answer for one instance over one window.
type verdict struct {
	Idle bool
	// Complete is false when a period lacks a CPU or a network datapoint.
	Complete     bool
	Periods      int // periods in the window
	CPUPoints    int // periods with a CPU datapoint
	NetPoints    int // periods with both NetworkIn and NetworkOut
	MaxCPU       float64
	NetworkBytes float64 // max per-period NetworkIn+NetworkOut
	// GPU instances: GPU utilization must be low in every period too.
	GPU       bool
	GPUPoints int
	MaxGPU    float64
}

// rule is the idle test: every period of the window has a CPU and a
// network datapoint (missing or partial data never counts as idle), every
// CPU maximum is below CPUBelow and every period's NetworkIn+NetworkOut is
// below NetBelow.
type rule struct {
	CPUBelow, NetBelow, GPUBelow float64
	Period                       time.Duration
}

// evaluate applies the rule to m over [start, end). Datapoints outside the
// window are ignored; a period is counted once.
//
// For an instance with GPUs (gpu), every period must also have a GPU
// datapoint below GPUBelow: a training run at 2 % CPU is not idle, and a
// GPU instance without the agent's GPU metric never counts as idle.
func (r rule) evaluate(m computebot.InstanceMetrics, start, end time.Time, gpu bool) verdict {
	periods := int(end.Sub(start) / r.Period)
	v := verdict{Periods: periods, GPU: gpu}
	slot := func(t time.Time) (int, bool) {
		if t.Before(start) || !t.Before(end) {
			return 0, false
		}
		i := int(t.Sub(start) / r.Period)
		return i, i < periods // a window that is not whole periods ends short
	}
	const (
		hasCPU = 1 << iota
		hasIn
		hasOut
	)
	// Small windows (12 periods for 1 h) fit on the stack.
	var flagsBuf [64]uint8
	var netBuf [64]float64
	flags, net := flagsBuf[:0], netBuf[:0]
	if periods > len(flagsBuf) {
		flags, net = make([]uint8, 0, periods), make([]float64, 0, periods)
	}
	flags, net = flags[:periods], net[:periods]
	active := false
	for _, dp := range m.CPUMax {
		i, ok := slot(dp.Time)
		if !ok || flags[i]&hasCPU != 0 {
			continue
		}
		flags[i] |= hasCPU
		v.CPUPoints++
		if !(dp.Value < r.CPUBelow) { // also catches NaN
			active = true
		}
		if dp.Value > v.MaxCPU || v.CPUPoints == 1 {
			v.MaxCPU = dp.Value
		}
	}
	add := func(dps []computebot.Datapoint, bit uint8) {
		for _, dp := range dps {
			i, ok := slot(dp.Time)
			if !ok || flags[i]&bit != 0 {
				continue
			}
			flags[i] |= bit
			net[i] += dp.Value
		}
	}
	add(m.NetworkIn, hasIn)
	add(m.NetworkOut, hasOut)
	first := true
	for i, f := range flags {
		if f&(hasIn|hasOut) != hasIn|hasOut {
			continue
		}
		v.NetPoints++
		if !(net[i] < r.NetBelow) {
			active = true
		}
		if first || net[i] > v.NetworkBytes {
			v.NetworkBytes, first = net[i], false
		}
	}
	if gpu {
		seen := make([]bool, periods)
		for _, dp := range m.GPUMax {
			i, ok := slot(dp.Time)
			if !ok || seen[i] {
				continue
			}
			seen[i] = true
			v.GPUPoints++
			if !(dp.Value < r.GPUBelow) {
				active = true
			}
			if dp.Value > v.MaxGPU || v.GPUPoints == 1 {
				v.MaxGPU = dp.Value
			}
		}
	}
	v.Complete = periods > 0 && v.CPUPoints == periods && v.NetPoints == periods && (!gpu || v.GPUPoints == periods)
	v.Idle = v.Complete && !active
	return v
}

// cancellation is why a verdict that is not idle cancels a notice (nil
// when it is idle).
func (v verdict) cancellation(window time.Duration) *Cancellation {
	switch {
	case v.Idle:
		return nil
	case !v.Complete:
		c := &Cancellation{Reason: CancelIncomplete, Periods: v.Periods, CPUPeriods: v.CPUPoints, NetPeriods: v.NetPoints, Window: window}
		if v.GPU {
			c.GPU, c.GPUPeriods = true, v.GPUPoints
		}
		return c
	}
	return &Cancellation{Reason: CancelActive, MaxCPU: v.MaxCPU, NetworkBytes: v.NetworkBytes, Window: window, GPU: v.GPU, MaxGPU: v.MaxGPU}
}
