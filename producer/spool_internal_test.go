package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

var spoolNow = time.Date(2026, 11, 24, 10, 30, 15, 123_456_000, time.UTC)

// testEntry returns entry i: a delete every fifth, else an event.
func testEntry(i int) *entry {
	action := track.ActionEvent
	if i%5 == 4 {
		action = track.ActionDelete
	}
	return &entry{
		payload: &task.Payload{
			Workspace:  "default",
			OpID:       fmt.Sprintf("op-%04d", i),
			Action:     action,
			Person:     fmt.Sprintf("id:u%d", i%7),
			EnqueuedAt: spoolNow.Add(time.Duration(i) * time.Microsecond),
			Timestamp:  1_764_000_000 + int64(i),
			Op:         fmt.Appendf(nil, `{"type":"person","action":%q,"identifiers":{"id":"u%d"},"n":%d}`, action, i%7, i),
		},
	}
}

func testSpoolConfig(dir string) SpoolConfig {
	return SpoolConfig{Dir: dir, Fsync: FsyncNever}.withDefaults()
}

func openTestSpool(t *testing.T, cfg SpoolConfig) *spool {
	t.Helper()
	m, err := metrics.NewProducer(nil)
	require.NoError(t, err)
	s, err := openSpool(cfg, slog.New(slog.DiscardHandler), m)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.close() })
	return s
}

// readAll reads every op back, acknowledging each, then drains.
func readAll(t *testing.T, s *spool) []*entry {
	t.Helper()
	rd := &spoolReader{}
	defer rd.reset()
	var got []*entry
	for {
		rec, ok, err := s.next(rd)
		require.NoError(t, err)
		if !ok {
			break
		}
		got = append(got, rec.es...)
		s.ack(rd, rec)
	}
	drained, err := s.drain(rd)
	require.NoError(t, err)
	require.True(t, drained)
	return got
}

func entryDiff(want, got []*entry) string {
	return cmp.Diff(want, got, cmp.AllowUnexported(entry{}))
}

// writeSegment writes entries 0..n-1 to one segment file in a new
// directory and returns the file's bytes and where each record starts.
func writeSegment(t *testing.T, n int) (data []byte, starts []int) {
	t.Helper()
	for i := range n {
		starts = append(starts, len(data))
		data = appendRecord(data, []*entry{testEntry(i)})
	}
	return data, starts
}

func spoolDirWith(t *testing.T, data []byte) (dir, seg string) {
	t.Helper()
	dir = t.TempDir()
	seg = filepath.Join(dir, fmt.Sprintf("%016x%s", 1, segmentSuffix))
	require.NoError(t, os.WriteFile(seg, data, 0o600))
	return dir, seg
}

func entries(from, to int) []*entry {
	var es []*entry
	for i := from; i < to; i++ {
		es = append(es, testEntry(i))
	}
	return es
}

func TestSpoolRecordRoundTrip(t *testing.T) {
	t.Parallel()
	s := openTestSpool(t, testSpoolConfig(t.TempDir()))
	want := entries(0, 20)
	for _, e := range want {
		require.NoError(t, s.append([]*entry{e}))
	}
	require.Equal(t, int64(20), s.stats().Depth)
	require.True(t, s.stats().Degraded)
	got := readAll(t, s)
	if diff := entryDiff(want, got); diff != "" {
		t.Fatalf("ops read back (-want +got):\n%s", diff)
	}
	st := s.stats()
	require.Equal(t, SpoolStats{Replayed: 20}, st, "drained: empty, not degraded")
}

func TestSpoolOpenCutsTornTail(t *testing.T) {
	t.Parallel()
	const n = 3
	data, starts := writeSegment(t, n)
	last := starts[n-1]
	// A write cut at any byte of the last record loses that record only.
	for cut := last; cut < len(data); cut++ {
		t.Run(fmt.Sprintf("CutAt%d", cut), func(t *testing.T) {
			t.Parallel()
			dir, seg := spoolDirWith(t, data[:cut])
			s := openTestSpool(t, testSpoolConfig(dir))
			st := s.stats()
			require.Equal(t, int64(n-1), st.Depth)
			require.Equal(t, int64(last), st.Bytes)
			require.Zero(t, st.Dropped, "a torn tail is not counted as corrupt")
			fi, err := os.Stat(seg)
			require.NoError(t, err)
			require.Equal(t, int64(last), fi.Size(), "the torn tail is cut off the file")
			if diff := entryDiff(entries(0, n-1), readAll(t, s)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("LastRecordWithBadChecksum", func(t *testing.T) {
		t.Parallel()
		bad := slices.Clone(data)
		bad[len(bad)-1] ^= 0xff
		dir, _ := spoolDirWith(t, bad)
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, SpoolStats{Depth: n - 1, Bytes: int64(last), Segments: 1, Degraded: true}, s.stats())
	})
	t.Run("ZeroFilledTail", func(t *testing.T) {
		t.Parallel()
		dir, _ := spoolDirWith(t, append(slices.Clone(data), make([]byte, 4096)...))
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, SpoolStats{Depth: n, Bytes: int64(len(data)), Segments: 1, Degraded: true}, s.stats())
	})
	t.Run("OnlyATornRecordLeavesNothing", func(t *testing.T) {
		t.Parallel()
		dir, seg := spoolDirWith(t, data[:5])
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, SpoolStats{}, s.stats())
		_, err := os.Stat(seg)
		require.ErrorIs(t, err, os.ErrNotExist, "an empty segment is removed")
	})
}

func TestSpoolOpenSkipsCorruptRecords(t *testing.T) {
	t.Parallel()
	const n = 5
	data, starts := writeSegment(t, n)
	t.Run("BadChecksumInTheMiddleIsSkippedAndCounted", func(t *testing.T) {
		t.Parallel()
		bad := slices.Clone(data)
		bad[starts[2]+recordHeader+3] ^= 0x01 // one bit of record 2's body
		dir, _ := spoolDirWith(t, bad)
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, SpoolStats{Depth: n - 1, Bytes: int64(len(data)), Segments: 1, Dropped: 1, Degraded: true}, s.stats())
		want := append(entries(0, 2), entries(3, n)...)
		if diff := entryDiff(want, readAll(t, s)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		require.Equal(t, uint64(1), s.stats().Dropped, "counted once, at open")
	})
	t.Run("BadLengthInTheMiddleLosesTheRestOfTheSegment", func(t *testing.T) {
		t.Parallel()
		bad := slices.Clone(data)
		bad[starts[2]+3] = 0xff // length > maxRecordBody
		dir, seg := spoolDirWith(t, bad)
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, SpoolStats{Depth: 2, Bytes: int64(starts[2]), Segments: 1, Dropped: 1, Degraded: true}, s.stats())
		fi, err := os.Stat(seg)
		require.NoError(t, err)
		require.Equal(t, int64(starts[2]), fi.Size())
		if diff := entryDiff(entries(0, 2), readAll(t, s)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("OtherSegmentsAreUntouched", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		bad := slices.Clone(data)
		bad[starts[1]+recordHeader] ^= 0x80
		require.NoError(t, os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), bad, 0o600))
		second, _ := writeSegment(t, 2)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "0000000000000002.seg"), second, 0o600))
		s := openTestSpool(t, testSpoolConfig(dir))
		require.Equal(t, int64(n-1+2), s.stats().Depth)
		got := readAll(t, s)
		want := append(append(entries(0, 1), entries(2, n)...), entries(0, 2)...)
		if diff := entryDiff(want, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		left, err := filepath.Glob(filepath.Join(dir, "*.seg"))
		require.NoError(t, err)
		require.Empty(t, left, "replayed segments are deleted")
	})
}

func TestSpoolFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := int64(len(appendRecord(nil, []*entry{testEntry(0)})))
	cfg := SpoolConfig{Dir: dir, Fsync: FsyncNever, MaxBytes: 10*rec + rec/2, SegmentBytes: 3 * rec}.withDefaults()
	s := openTestSpool(t, cfg)
	accepted := 0
	var full error
	for i := range 20 {
		err := s.append([]*entry{testEntry(i % 4)}) // same size: ids op-0000..op-0003
		if err != nil {
			full = err
			break
		}
		accepted++
	}
	require.Equal(t, 10, accepted)
	require.ErrorIs(t, full, ErrSpoolFull)
	require.ErrorIs(t, s.append([]*entry{testEntry(0)}), ErrSpoolFull, "still full")
	st := s.stats()
	require.Equal(t, SpoolStats{Depth: 10, Bytes: 10 * rec, Segments: 4, Rejected: 2, Degraded: true}, st)

	// Nothing accepted is lost: a new spool on the directory holds all ten.
	require.NoError(t, s.close())
	s2 := openTestSpool(t, cfg)
	require.Equal(t, int64(10), s2.stats().Depth)
	require.Len(t, readAll(t, s2), 10)
	require.NoError(t, s2.append([]*entry{testEntry(0)}), "room again once replayed")
}

func TestSpoolFsyncPolicies(t *testing.T) {
	t.Parallel()
	dirty := func(s *spool) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dirty
	}
	t.Run("AlwaysSyncsEachOp", func(t *testing.T) {
		t.Parallel()
		s := openTestSpool(t, SpoolConfig{Dir: t.TempDir(), Fsync: FsyncAlways}.withDefaults())
		require.NoError(t, s.append([]*entry{testEntry(0)}))
		require.False(t, dirty(s))
	})
	t.Run("NeverLeavesItToTheOS", func(t *testing.T) {
		t.Parallel()
		s := openTestSpool(t, SpoolConfig{Dir: t.TempDir(), Fsync: FsyncNever}.withDefaults())
		require.NoError(t, s.append([]*entry{testEntry(0)}))
		require.True(t, dirty(s))
	})
	t.Run("IntervalSyncsInTheBackground", func(t *testing.T) {
		t.Parallel()
		cfg := Config{Redis: nil, Timeout: time.Second, Spool: SpoolConfig{Dir: t.TempDir(), FsyncInterval: 10 * time.Millisecond}}.withDefaults()
		require.Equal(t, FsyncInterval, cfg.Spool.Fsync, "the default")
		m, err := metrics.NewProducer(nil)
		require.NoError(t, err)
		s, err := openSpool(cfg.Spool, cfg.Logger, m)
		require.NoError(t, err)
		ss := newSpoolSink(nopSink{}, s, cfg)
		t.Cleanup(func() { _ = ss.close(t.Context()) })
		require.NoError(t, s.append([]*entry{testEntry(0)}))
		require.Eventually(t, func() bool { return !dirty(s) }, 10*time.Second, 5*time.Millisecond)
	})
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run("KeepsOpsAcrossReopen/"+string(policy), func(t *testing.T) {
			t.Parallel()
			cfg := SpoolConfig{Dir: t.TempDir(), Fsync: policy}.withDefaults()
			s := openTestSpool(t, cfg)
			for i := range 7 {
				require.NoError(t, s.append([]*entry{testEntry(i)}))
			}
			require.NoError(t, s.close())
			if diff := entryDiff(entries(0, 7), readAll(t, openTestSpool(t, cfg))); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// nopSink fails every put: Redis is down.
type nopSink struct{}

func (nopSink) put(context.Context, []*entry) ([]stored, error) { return nil, errors.New("down") }
func (nopSink) close(context.Context) error                     { return nil }

func TestSpoolLock(t *testing.T) {
	t.Parallel()
	cfg := testSpoolConfig(t.TempDir())
	s := openTestSpool(t, cfg)
	m, err := metrics.NewProducer(nil)
	require.NoError(t, err)
	_, err = openSpool(cfg, slog.New(slog.DiscardHandler), m)
	require.ErrorIs(t, err, ErrSpoolLocked)
	require.ErrorContains(t, err, cfg.Dir)
	require.NoError(t, s.close())
	openTestSpool(t, cfg) // free again
}

func TestSpoolSegmentsRotateAndAreDeletedOnceReplayed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := int64(len(appendRecord(nil, []*entry{testEntry(0)})))
	s := openTestSpool(t, SpoolConfig{Dir: dir, Fsync: FsyncNever, SegmentBytes: 2 * rec}.withDefaults())
	for i := range 7 {
		require.NoError(t, s.append([]*entry{testEntry(i % 4)}))
	}
	require.Equal(t, 4, s.stats().Segments)
	rd := &spoolReader{}
	defer rd.reset()
	for range 3 { // the first segment and one op of the second
		rec, ok, err := s.next(rd)
		require.NoError(t, err)
		require.True(t, ok)
		s.ack(rd, rec)
	}
	require.Equal(t, 3, s.stats().Segments, "the first segment is deleted")
	require.Equal(t, int64(4), s.stats().Depth)
}
