package hpasim

import "math"

// proposal computes one metric's replica proposal the way the controller's
// replica calculator does (pkg/controller/podautoscaler/replica_calculator.go).
func proposal(m Metric, o Observation, tol float64) Proposal {
	p := Proposal{Metric: m.Name}
	var (
		n   int
		err string
	)
	switch m.Type {
	case Resource:
		n, err = plainReplicas(m, o, tol, true)
	case Pods:
		n, err = plainReplicas(m, o, tol, false)
	case External:
		n, err = externalReplicas(m, o, tol)
	}
	p.Replicas, p.Err = n, err
	return p
}

// plainReplicas is GetResourceReplicas (cpu true, values are percentages of
// equal requests) and calcPlainMetricReplicas (cpu false, Pods metrics):
// average the ready pods' samples; when pods are missing samples or not
// ready, assume the least helpful value for the direction and re-check.
func plainReplicas(m Metric, o Observation, tol float64, cpu bool) (int, string) {
	var (
		values          []float64
		ignored, missed int
	)
	for _, pod := range o.Pods {
		if pod.Pending {
			ignored++
			continue
		}
		v, ok := pod.Metrics[m.Name]
		if !ok {
			missed++
			continue
		}
		if cpu && !pod.Ready {
			ignored++
			continue
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return 0, "did not receive metrics for any ready pods"
	}
	ratio := mean(values) / m.Value
	rebalanceIgnored := ignored > 0 && ratio > 1
	if !rebalanceIgnored && missed == 0 {
		if math.Abs(1-ratio) <= tol {
			return o.Replicas, ""
		}
		return int(math.Ceil(ratio * float64(len(values)))), ""
	}
	if missed > 0 {
		// Scale-down: missing pods count as at target (100% of the request
		// for CPU); scale-up: as 0.
		fill := 0.0
		if ratio < 1 {
			fill = m.Value
			if cpu {
				fill = 100
			}
		}
		if cpu && ratio == 1 {
			fill = -1 // GetResourceReplicas fills nothing at exactly 1
		}
		if fill >= 0 {
			for range missed {
				values = append(values, fill)
			}
		}
	}
	if rebalanceIgnored {
		for range ignored {
			values = append(values, 0)
		}
	}
	newRatio := mean(values) / m.Value
	if math.Abs(1-newRatio) <= tol || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return o.Replicas, ""
	}
	n := int(math.Ceil(newRatio * float64(len(values))))
	if cpu && ((newRatio < 1 && n > o.Replicas) || (newRatio > 1 && n < o.Replicas)) {
		return o.Replicas, ""
	}
	return n, ""
}

// externalReplicas is GetExternalPerPodMetricReplicas (AverageValue) and
// GetExternalMetricReplicas (Value).
func externalReplicas(m Metric, o Observation, tol float64) (int, string) {
	usage, ok := o.External[m.Name]
	if !ok {
		return 0, "unable to get external metric " + m.Name
	}
	if m.Target == AverageValue {
		ratio := usage / (m.Value * float64(o.Replicas))
		if math.Abs(1-ratio) > tol {
			return int(math.Ceil(usage / m.Value)), ""
		}
		return o.Replicas, ""
	}
	ratio := usage / m.Value
	if o.Replicas == 0 {
		return int(math.Ceil(ratio)), ""
	}
	if math.Abs(1-ratio) <= tol {
		return o.Replicas, ""
	}
	ready := 0
	for _, p := range o.Pods {
		if !p.Pending && p.Ready {
			ready++
		}
	}
	return int(math.Ceil(ratio * float64(ready))), ""
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
