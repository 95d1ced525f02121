package producer

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// FsyncPolicy says when the spool forces its writes to stable storage. A
// write reaches the kernel before Enqueue returns under every policy, so a
// killed process loses nothing; the policy only matters when the machine
// itself goes down (power loss, kernel panic, a node lost with its disk).
type FsyncPolicy string

// Fsync policies.
const (
	// FsyncAlways syncs each op before Enqueue returns: nothing accepted is
	// lost to a machine crash, at the cost of one fsync per op (they are
	// serialised).
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval syncs in the background every SpoolConfig.FsyncInterval:
	// a machine crash loses at most that much. The default.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves syncing to the operating system (Close and segment
	// rotation still sync).
	FsyncNever FsyncPolicy = "never"
)

// Defaults for SpoolConfig fields left zero.
const (
	// DefaultSpoolMaxBytes bounds the spool's files on disk.
	DefaultSpoolMaxBytes int64 = 256 << 20
	// DefaultSpoolBudget is how long Enqueue waits on Redis before it
	// spools the op.
	DefaultSpoolBudget = 5 * time.Millisecond
	// DefaultFsyncInterval is the sync period of FsyncInterval.
	DefaultFsyncInterval = 100 * time.Millisecond
	// DefaultProbeInterval is how often the replay loop tries Redis again
	// while the spool holds ops.
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultSegmentBytes is the largest size of one segment file (less when
	// MaxBytes/4 is smaller).
	DefaultSegmentBytes int64 = 4 << 20
	// MaxSegmentBytes bounds SpoolConfig.SegmentBytes: a segment is read
	// whole when the spool is opened.
	MaxSegmentBytes int64 = 64 << 20
)

// Spool errors. Match them with errors.Is.
var (
	// ErrSpoolFull: Redis did not take the op and the spool has no room for
	// it (SpoolConfig.MaxBytes reached, or the disk is full). The op was not
	// accepted; nothing accepted before was lost. The error also matches
	// ErrUnavailable.
	ErrSpoolFull = errors.New("producer: spool full")
	// ErrSpoolLocked: another process (or another Producer) holds the spool
	// directory. Each producer process needs a directory of its own.
	ErrSpoolLocked = errors.New("producer: spool directory locked by another producer")
)

// SpoolConfig configures the on-disk spool that takes ops while Redis is
// unreachable or slow and replays them, in order, when it answers again.
// The zero value turns the spool off: Enqueue then waits up to
// Config.Timeout and returns ErrUnavailable when Redis does not answer.
// See docs/spool.md.
type SpoolConfig struct {
	// Dir is the spool directory, created when missing (mode 0700). Empty
	// means no spool. One producer process per directory: New takes an
	// exclusive lock (flock) on Dir/LOCK and returns ErrSpoolLocked when
	// another holds it. In Kubernetes put it on a volume that outlives the
	// pod, or drain it before the pod goes (docs/spool.md).
	Dir string
	// MaxBytes bounds the segment files on disk; past it Enqueue returns
	// ErrSpoolFull. Zero means DefaultSpoolMaxBytes (256 MiB).
	MaxBytes int64
	// Fsync is the sync policy. Empty means FsyncInterval.
	Fsync FsyncPolicy
	// FsyncInterval is the sync period of FsyncInterval. Zero means
	// DefaultFsyncInterval (100 ms).
	FsyncInterval time.Duration
	// Budget bounds how long Enqueue waits on Redis before it spools the op
	// instead. After a failure every Enqueue goes straight to the spool,
	// without trying Redis, until the replay loop has emptied it. Zero
	// means DefaultSpoolBudget (5 ms).
	Budget time.Duration
	// ProbeInterval is how often the replay loop tries Redis while the
	// spool holds ops. Zero means DefaultProbeInterval (100 ms).
	ProbeInterval time.Duration
	// SegmentBytes is the size at which the spool starts a new segment
	// file; a replayed segment is deleted whole. Zero means
	// min(DefaultSegmentBytes, MaxBytes/4); at most MaxSegmentBytes.
	SegmentBytes int64
}

func (c SpoolConfig) withDefaults() SpoolConfig {
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultSpoolMaxBytes)
	c.Fsync = cmp.Or(c.Fsync, FsyncInterval)
	c.FsyncInterval = cmp.Or(c.FsyncInterval, DefaultFsyncInterval)
	c.Budget = cmp.Or(c.Budget, DefaultSpoolBudget)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, DefaultProbeInterval)
	c.SegmentBytes = cmp.Or(c.SegmentBytes, min(DefaultSegmentBytes, max(c.MaxBytes/4, 1)))
	return c
}

func (c SpoolConfig) validate() []error {
	var errs []error
	switch c.Fsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		errs = append(errs, fmt.Errorf("spool fsync %q is not always, interval or never", c.Fsync))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max bytes", c.MaxBytes}, {"fsync interval", int64(c.FsyncInterval)}, {"budget", int64(c.Budget)},
		{"probe interval", int64(c.ProbeInterval)}, {"segment bytes", c.SegmentBytes},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("spool %s is negative", f.name))
		}
	}
	if c.SegmentBytes > MaxSegmentBytes {
		errs = append(errs, fmt.Errorf("spool segment bytes %d exceeds %d", c.SegmentBytes, MaxSegmentBytes))
	}
	return errs
}

// SpoolStats describes the spool at one moment. All zero when the spool is
// off.
type SpoolStats struct {
	// Depth is the number of ops in the spool not yet replayed into Redis.
	Depth int64
	// Bytes is the size of the spool's segment files on disk (what MaxBytes
	// bounds); replayed ops are freed a segment at a time.
	Bytes int64
	// Segments is the number of segment files.
	Segments int
	// Replayed counts ops replayed into Redis since New (a replayed op that
	// was already queued counts too).
	Replayed uint64
	// Dropped counts spooled ops found corrupt on disk and skipped (bad
	// checksum, unreadable framing, undecodable payload). See docs/spool.md.
	Dropped uint64
	// Rejected counts Enqueue calls refused with ErrSpoolFull.
	Rejected uint64
	// Degraded is true while Enqueue writes to the spool instead of Redis:
	// Redis failed and the spool is not empty yet.
	Degraded bool
}
