package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cioq/cioq/internal/metrics"
)

const segmentSuffix = ".seg"

// segment is one append-only spool file, named by its sequence number.
type segment struct {
	seq     uint64
	path    string
	size    int64 // bytes of whole records written
	pending int64 // intact records not yet replayed
	ops     int64 // ops in those records (a group record holds several)
	sealed  bool  // no more appends: deleted once read to the end
}

// spool is the on-disk store: an ordered list of segment files in one
// locked directory. Appends go to the last segment; the replay loop reads
// from the first with a spoolReader and deletes each segment once every op
// in it is in Redis. All fields behind mu.
type spool struct {
	cfg SpoolConfig
	log *slog.Logger
	m   *metrics.Producer

	lock *os.File // holds the flock on Dir/LOCK

	mu       sync.Mutex
	segs     []*segment
	w        *os.File // writer of the last segment when it is not sealed
	dirty    bool     // w has writes not yet synced
	nextSeq  uint64
	depth    int64
	bytes    int64
	buf      []byte
	degraded bool // Enqueue goes to the spool
	closed   bool

	replayed, dropped, rejected uint64
}

// openSpool locks cfg.Dir, checks every segment found there (cutting off a
// torn tail, counting corrupt records) and returns the spool ready for
// replay: degraded when it holds ops.
func openSpool(cfg SpoolConfig, log *slog.Logger, m *metrics.Producer) (*spool, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("producer: spool: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &spool{cfg: cfg, log: log, m: m, lock: lock, nextSeq: 1}
	if err := s.load(); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("producer: spool %s: %w", cfg.Dir, err)
	}
	s.degraded = s.depth > 0
	s.publish()
	if s.depth > 0 {
		log.Info("spool holds ops from an earlier run; replaying when Redis answers",
			slog.String("dir", cfg.Dir), slog.Int64("ops", s.depth), slog.Int64("bytes", s.bytes))
	}
	return s, nil
}

// load reads the segment files of the directory in sequence order.
func (s *spool) load() error {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		name := de.Name()
		seqText, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(seqText, 16, 64)
		if err != nil {
			continue // not ours
		}
		seg := &segment{seq: seq, path: filepath.Join(s.cfg.Dir, name), sealed: true}
		if err := s.check(seg); err != nil {
			return err
		}
		s.nextSeq = max(s.nextSeq, seq+1)
		if seg.pending == 0 {
			if err := os.Remove(seg.path); err != nil {
				return err
			}
			continue
		}
		s.segs = append(s.segs, seg)
		s.depth += seg.ops
		s.bytes += seg.size
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmpUint(a.seq, b.seq) })
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// check scans one segment and cuts off what cannot be read.
func (s *spool) check(seg *segment) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sc, err := scanSegment(f, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(seg.path), err)
	}
	if sc.corrupt > 0 {
		s.dropped += uint64(sc.corrupt)
		s.m.SpoolDropped.Add(float64(sc.corrupt))
		s.log.Error("spool segment has corrupt records; skipped", slog.String("segment", seg.path),
			slog.Int64("corrupt", sc.corrupt), slog.Int64("intact", sc.records), slog.Int64("bytes_cut", sc.lost))
	}
	if sc.lost > 0 {
		if sc.torn {
			s.log.Warn("spool segment has a torn tail; cut off", slog.String("segment", seg.path),
				slog.Int64("bytes_cut", sc.lost))
		}
		if err := f.Truncate(sc.end); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	seg.size, seg.pending, seg.ops = sc.end, sc.records, sc.ops
	return nil
}

// isDegraded reports whether Enqueue must go to the spool.
func (s *spool) isDegraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.degraded
}

// markDegraded sends later Enqueues to the spool; it reports whether this
// call changed that.
func (s *spool) markDegraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.degraded
	s.degraded = !s.closed
	return !was && s.degraded
}

// append writes es (one op, or a unit's ops as one record) at the end of
// the spool and marks it degraded. It returns an error matching
// ErrSpoolFull when MaxBytes (or the disk) is reached: then nothing of es
// is spooled.
func (s *spool) append(es []*entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.buf = appendRecord(s.buf[:0], es)
	if len(s.buf)-recordHeader > maxRecordBody {
		return fmt.Errorf("producer: spool: a unit of %d ops is %d bytes, more than one record holds (%d)",
			len(es), len(s.buf)-recordHeader, maxRecordBody)
	}
	rec := int64(len(s.buf))
	if s.bytes+rec > s.cfg.MaxBytes {
		return s.reject(nil)
	}
	if s.w != nil && s.last().size > 0 && s.last().size+rec > s.cfg.SegmentBytes {
		if err := s.seal(); err != nil {
			return fmt.Errorf("producer: spool: %w", err)
		}
	}
	if s.w == nil {
		if err := s.create(); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return s.reject(err)
			}
			return fmt.Errorf("producer: spool: %w", err)
		}
	}
	seg := s.last()
	if n, err := s.w.Write(s.buf); err != nil {
		// Take a partial write back so the next record starts clean; if
		// that fails too, start a new segment (open cuts the tail off).
		if n > 0 {
			if terr := s.w.Truncate(seg.size); terr != nil {
				_ = s.seal()
			}
		}
		if errors.Is(err, syscall.ENOSPC) {
			return s.reject(err)
		}
		return fmt.Errorf("producer: spool: write: %w", err)
	}
	seg.size += rec
	seg.pending++
	seg.ops += int64(len(es))
	s.bytes += rec
	s.depth += int64(len(es))
	s.degraded = true
	s.dirty = true
	if s.cfg.Fsync == FsyncAlways {
		if err := s.w.Sync(); err != nil {
			// Written but maybe not durable: report it, keep the op (a
			// retry with the same key is a harmless duplicate).
			return fmt.Errorf("producer: spool: sync: %w", err)
		}
		s.dirty = false
	}
	s.publish()
	return nil
}

func (s *spool) reject(cause error) error {
	s.rejected++
	s.m.SpoolRejected.Inc()
	if cause != nil {
		return fmt.Errorf("%w: %w", ErrSpoolFull, cause)
	}
	return fmt.Errorf("%w: %d of %d bytes used", ErrSpoolFull, s.bytes, s.cfg.MaxBytes)
}

func (s *spool) last() *segment { return s.segs[len(s.segs)-1] }

// create starts a new segment and makes its name durable.
func (s *spool) create() error {
	seg := &segment{seq: s.nextSeq, path: filepath.Join(s.cfg.Dir, fmt.Sprintf("%016x%s", s.nextSeq, segmentSuffix))}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if s.cfg.Fsync != FsyncNever {
		if err := syncDir(s.cfg.Dir); err != nil {
			_ = f.Close()
			_ = os.Remove(seg.path)
			return err
		}
	}
	s.nextSeq++
	s.w = f
	s.segs = append(s.segs, seg)
	return nil
}

// seal syncs and closes the writer; its segment takes no more appends.
func (s *spool) seal() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Sync()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	s.w, s.dirty = nil, false
	s.last().sealed = true
	return err
}

// sync flushes the writer when it has unsynced writes (FsyncInterval).
func (s *spool) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil || !s.dirty {
		return nil
	}
	s.dirty = false
	return s.w.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// publish updates the gauges; mu held.
func (s *spool) publish() {
	s.m.SpoolOps.Set(float64(s.depth))
	s.m.SpoolBytes.Set(float64(s.bytes))
}

func (s *spool) stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpoolStats{
		Depth: s.depth, Bytes: s.bytes, Segments: len(s.segs),
		Replayed: s.replayed, Dropped: s.dropped, Rejected: s.rejected, Degraded: s.degraded,
	}
}

// close syncs and closes the writer and releases the directory lock. What
// is not replayed stays on disk for the next New on the same directory.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.seal()
	if len(s.segs) == 0 {
		s.degraded = false
	}
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
