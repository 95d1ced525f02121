package producer

import (
	"errors"
	"log/slog"
	"os"
)

// spoolReader is the replay loop's position in the spool: a segment, its
// file and the offset of the next record. Only the replay loop uses it.
type spoolReader struct {
	seg *segment
	f   *os.File
	off int64
	buf []byte
}

// spooled is one record read back: its entry and where the next begins.
type spooled struct {
	es   []*entry // one op, or the ops of one unit (queued together)
	next int64
}

func (rd *spoolReader) reset() {
	if rd.f != nil {
		_ = rd.f.Close()
	}
	rd.seg, rd.f, rd.off = nil, nil, 0
}

// next returns the oldest op not yet replayed, or ok false when the reader
// has caught up with the writer (or the spool is closed). Corrupt records
// are skipped; a segment read to its end is deleted when sealed.
func (s *spool) next(rd *spoolReader) (rec spooled, ok bool, err error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return spooled{}, false, nil
		}
		if rd.seg == nil {
			if len(s.segs) == 0 {
				s.mu.Unlock()
				return spooled{}, false, nil
			}
			seg := s.segs[0]
			f, err := os.Open(seg.path)
			if err != nil {
				s.mu.Unlock()
				return spooled{}, false, err
			}
			rd.seg, rd.f, rd.off = seg, f, 0
		}
		seg := rd.seg
		limit, sealed := seg.size, seg.sealed
		if rd.off >= limit {
			if !sealed {
				s.mu.Unlock()
				return spooled{}, false, nil // caught up with the writer
			}
			err := s.finish(seg)
			s.mu.Unlock()
			rd.reset()
			if err != nil {
				return spooled{}, false, err
			}
			continue
		}
		s.mu.Unlock()

		if rd.buf == nil {
			rd.buf = make([]byte, 64<<10)
		}
		body, next, rerr := readRecord(rd.f, rd.off, limit, rd.buf)
		switch {
		case rerr == nil:
			es, derr := decodeRecord(body)
			if derr != nil {
				s.log.Error("spooled op cannot be decoded; skipped", slog.String("segment", seg.path),
					slog.Int64("offset", rd.off), slog.String("error", derr.Error()))
				s.skip(seg, true, opsIn(body))
				rd.off = next
				continue
			}
			return spooled{es: es, next: next}, true, nil
		case errors.Is(rerr, errBadCRC) && intactAt(rd.f, next, limit, rd.buf):
			// Counted when the spool was opened, or when its segment is
			// finished with ops still pending.
			rd.off = next
			continue
		case errors.Is(rerr, errBadCRC), errors.Is(rerr, errBadLength), errors.Is(rerr, errTorn):
			// Written by this process, now unreadable: give up on the rest
			// of the segment (finish counts what it still held).
			s.log.Error("spool segment unreadable past an offset; rest skipped", slog.String("segment", seg.path),
				slog.Int64("offset", rd.off), slog.String("error", rerr.Error()))
			s.mu.Lock()
			if !seg.sealed {
				if err := s.seal(); err != nil {
					s.log.Error("spool seal failed", slog.String("error", err.Error()))
				}
			}
			err := s.finish(seg)
			s.mu.Unlock()
			rd.reset()
			if err != nil {
				return spooled{}, false, err
			}
		default:
			return spooled{}, false, rerr
		}
	}
}

// ack records that rec is in Redis.
func (s *spool) ack(rd *spoolReader, rec spooled) {
	rd.off = rec.next
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.skip(rd.seg, false, int64(len(rec.es)))
}

// skip takes one record of seg, holding ops ops, off the depth: replayed,
// or dropped when corrupt.
func (s *spool) skip(seg *segment, corrupt bool, ops int64) {
	if seg.pending > 0 {
		seg.pending--
		ops = min(ops, seg.ops)
		seg.ops -= ops
		s.depth -= ops
	}
	if corrupt {
		s.dropped += uint64(ops)
		s.m.SpoolDropped.Add(float64(ops))
	} else {
		s.replayed += uint64(ops)
		s.m.SpoolReplayed.Add(float64(ops))
	}
	s.publish()
}

// finish deletes a segment read to its end; ops it still counts as pending
// could not be read back and are dropped. mu held.
func (s *spool) finish(seg *segment) error {
	if seg.pending > 0 {
		s.dropped += uint64(seg.ops)
		s.m.SpoolDropped.Add(float64(seg.ops))
		s.depth -= seg.ops
		seg.pending, seg.ops = 0, 0
	}
	if s.w != nil && s.last() == seg {
		if err := s.seal(); err != nil {
			return err
		}
	}
	err := os.Remove(seg.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.segs = s.segs[1:] // seg is always the first
	s.bytes -= seg.size
	s.publish()
	return nil
}

// drain ends the degraded state when the reader has replayed everything:
// the last segment is deleted and Enqueue goes to Redis again. It reports
// whether it did.
func (s *spool) drain(rd *spoolReader) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, nil
	}
	if len(s.segs) > 1 || (len(s.segs) == 1 && (rd.seg != s.segs[0] || rd.off < rd.seg.size)) {
		return false, nil
	}
	var err error
	if len(s.segs) == 1 {
		err = s.finish(s.segs[0])
		rd.reset()
	}
	s.degraded = false
	return true, err
}
