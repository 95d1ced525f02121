package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

const (
	// DefaultRate is the budget, in requests/s shared by every replica, of a
	// workspace whose configuration sets none (Customer.io's fair use is
	// 100/s). Limit itself has no default rate: a zero Rate is invalid.
	DefaultRate = 80.0
	// DefaultCriticalShare is the fraction of a workspace's rate reserved
	// for critical requests when Limit.CriticalShare is zero.
	DefaultCriticalShare = 0.2
)

// ErrInvalidLimit is matched (errors.Is) by the error for a Limit that cannot
// be enforced; nothing was sent to Redis.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// Limit is a workspace's request budget, shared by every replica.
type Limit struct {
	// Rate is the sustained budget in requests per second; it must be > 0.
	Rate float64
	// Burst is how many requests may go at once from an idle budget. Zero
	// means max(1, ceil(Rate/10)): a tenth of a second's worth, so a full
	// burst never much exceeds the rate in any 100 ms window.
	Burst int
	// CriticalShare is the fraction of Rate (and Burst) that non-critical
	// requests may not use, so critical requests (suppress, delete) always
	// find room when the budget is tight. Zero means DefaultCriticalShare
	// (0.2); a negative value reserves nothing. Must be below 1.
	CriticalShare float64
}

// PerSecond returns a Limit of rate requests per second with the default
// burst and critical share.
func PerSecond(rate float64) Limit { return Limit{Rate: rate} }

func (l Limit) withDefaults() Limit {
	if l.Burst == 0 {
		l.Burst = max(1, int(math.Ceil(l.Rate/10)))
	}
	switch {
	case l.CriticalShare == 0:
		l.CriticalShare = DefaultCriticalShare
	case l.CriticalShare < 0:
		l.CriticalShare = 0
	}
	return l
}

func (l Limit) validate() error {
	switch {
	case !(l.Rate > 0) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("%w: rate %v must be a positive number", ErrInvalidLimit, l.Rate)
	case l.Burst < 1:
		return fmt.Errorf("%w: burst %d must be at least 1", ErrInvalidLimit, l.Burst)
	case l.CriticalShare >= 1:
		return fmt.Errorf("%w: critical share %v must be below 1", ErrInvalidLimit, l.CriticalShare)
	}
	return nil
}

// bulk returns the rate and burst left to non-critical requests.
func (l Limit) bulk() (rate float64, burst int) {
	share := 1 - l.CriticalShare
	return l.Rate * share, max(1, int(math.Floor(float64(l.Burst)*share)))
}

// String returns e.g. "80 req/s (burst 8, critical share 20%)", with the
// defaults applied.
func (l Limit) String() string {
	l = l.withDefaults()
	return fmt.Sprintf("%s req/s (burst %d, critical share %s%%)",
		strconv.FormatFloat(l.Rate, 'g', -1, 64), l.Burst,
		strconv.FormatFloat(l.CriticalShare*100, 'g', 4, 64))
}
