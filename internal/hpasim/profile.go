package hpasim

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Profile is a traffic profile: ops arriving over time, plus a backlog
// waiting at the start.
type Profile struct {
	// Name is how `cioq sim hpa --profile` names it.
	Name string
	// Description says what it models.
	Description string
	// Duration is how long the run lasts.
	Duration time.Duration
	// Backlog is the ops waiting at the start.
	Backlog float64
	// Rate is the ops/s arriving at t.
	Rate func(t time.Duration) float64
}

// ErrUnknownProfile is returned (wrapped) by ProfileByName.
var ErrUnknownProfile = errors.New("hpasim: unknown profile")

// Profiles are the built-in traffic profiles, sized against the default
// model (5,000 ops/s per pod, 80 req/s × 500 ops = 40,000 ops/s budget).
func Profiles() []Profile {
	return []Profile{
		{
			Name:        "steady",
			Description: "15,000 ops/s for 30 min (3 pods' worth, well inside the budget)",
			Duration:    30 * time.Minute,
			Rate:        func(time.Duration) float64 { return 15_000 },
		},
		{
			Name: "spike",
			Description: "5,000 ops/s, then 60,000 ops/s (1.5× the budget) from minute 5 to 15, " +
				"then 5,000 ops/s again; 60 min",
			Duration: 60 * time.Minute,
			Rate: func(t time.Duration) float64 {
				if t >= 5*time.Minute && t < 15*time.Minute {
					return 60_000
				}
				return 5_000
			},
		},
		{
			Name:        "daily",
			Description: "a day's curve: 2,000 ops/s at 02:00 rising to 30,000 ops/s at 14:00; 24 h",
			Duration:    24 * time.Hour,
			Rate: func(t time.Duration) float64 {
				h := t.Hours()
				return 16_000 - 14_000*math.Cos(2*math.Pi*(h-2)/24)
			},
		},
		{
			Name:        "backlog",
			Description: "1,000,000 ops waiting at the start (an import), 2,000 ops/s live traffic; 30 min",
			Duration:    30 * time.Minute,
			Backlog:     1_000_000,
			Rate:        func(time.Duration) float64 { return 2_000 },
		},
	}
}

// ProfileByName returns the built-in profile called name.
func ProfileByName(name string) (Profile, error) {
	var names []string
	for _, p := range Profiles() {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("%w %q (one of %s)", ErrUnknownProfile, name, strings.Join(names, ", "))
}
