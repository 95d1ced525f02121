package producer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cioq/cioq/internal/task"
)

// A spool record frames one prepared op:
//
//	length  uint32 little endian: bytes of body
//	crc     uint32 little endian: CRC-32C of the length field and body
//	body    kind byte, then
//	        recordOp:    task.Encode(payload)
//	        recordGroup: uvarint count, then count times uvarint length +
//	                     task.Encode(payload)
//
// A group is the ops of one unit (an ingest request, a bulk task's ops):
// they are spooled, and later queued, all or none.
const (
	recordHeader = 8
	// maxRecordBody bounds one body: an op is at most track.MaxOpBytes of
	// JSON (event data at most track.MaxEventDataBytes) plus a few short
	// fields, far below this.
	maxRecordBody = 1 << 20

	recordOp byte = 1
	// recordTombstone (2) was a single op that wrote a tombstone before its
	// task; the enqueue script now does that for every delete or suppress,
	// so it reads as recordOp.
	recordTombstone byte = 2
	recordGroup     byte = 3
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Framing errors of readRecord.
var (
	// errTorn: the record runs past the end of the data (a write cut short).
	errTorn = errors.New("torn record")
	// errBadLength: the length field is zero or too large.
	errBadLength = errors.New("bad record length")
	// errBadCRC: the checksum does not match; the length may be right.
	errBadCRC = errors.New("record checksum mismatch")
)

// appendRecord appends the framed record of es (one op, or a group) to b.
func appendRecord(b []byte, es []*entry) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	if len(es) == 1 {
		b = append(b, recordOp)
		b = append(b, task.Encode(es[0].payload)...)
	} else {
		b = append(b, recordGroup)
		b = binary.AppendUvarint(b, uint64(len(es)))
		for _, e := range es {
			enc := task.Encode(e.payload)
			b = binary.AppendUvarint(b, uint64(len(enc)))
			b = append(b, enc...)
		}
	}
	body := b[start+recordHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	crc := crc32.Update(0, crcTable, b[start:start+4])
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Update(crc, crcTable, body))
	return b
}

// readRecord reads the record at off of r, whose data ends at limit. It
// returns the body (in buf when it fits, else newly allocated) and the
// offset of the next record. On errBadCRC next is where the next record
// starts if the length field was right.
func readRecord(r io.ReaderAt, off, limit int64, buf []byte) (body []byte, next int64, err error) {
	if limit-off < recordHeader {
		return nil, off, errTorn
	}
	var hdr [recordHeader]byte
	if _, err := r.ReadAt(hdr[:], off); err != nil {
		return nil, off, fmt.Errorf("read record header: %w", err)
	}
	n := int64(binary.LittleEndian.Uint32(hdr[:4]))
	if n == 0 || n > maxRecordBody {
		return nil, off, errBadLength
	}
	next = off + recordHeader + n
	if next > limit {
		return nil, off, errTorn
	}
	if int64(cap(buf)) >= n {
		body = buf[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := r.ReadAt(body, off+recordHeader); err != nil {
		return nil, off, fmt.Errorf("read record body: %w", err)
	}
	crc := crc32.Update(crc32.Update(0, crcTable, hdr[:4]), crcTable, body)
	if crc != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, next, errBadCRC
	}
	return body, next, nil
}

// opsIn returns how many ops a record body holds (1 unless it is a group
// whose count reads).
func opsIn(body []byte) int64 {
	if len(body) > 1 && body[0] == recordGroup {
		if n, k := binary.Uvarint(body[1:]); k > 0 && n > 0 {
			return int64(n)
		}
	}
	return 1
}

// decodeRecord turns a body back into its entries. They do not alias body.
func decodeRecord(body []byte) ([]*entry, error) {
	kind := body[0]
	switch kind {
	case recordOp, recordTombstone:
		p, err := task.Decode(append([]byte(nil), body[1:]...))
		if err != nil {
			return nil, err
		}
		return []*entry{{payload: p}}, nil
	case recordGroup:
		rest := append([]byte(nil), body[1:]...)
		n, k := binary.Uvarint(rest)
		if k <= 0 || n == 0 || n > uint64(len(rest)) {
			return nil, errors.New("bad group count")
		}
		rest = rest[k:]
		es := make([]*entry, 0, n)
		for range n {
			l, k := binary.Uvarint(rest)
			if k <= 0 || l > uint64(len(rest)-k) {
				return nil, errors.New("bad group member length")
			}
			p, err := task.Decode(rest[k : k+int(l)])
			if err != nil {
				return nil, err
			}
			es = append(es, &entry{payload: p})
			rest = rest[k+int(l):]
		}
		if len(rest) != 0 {
			return nil, errors.New("trailing bytes after a group")
		}
		return es, nil
	}
	return nil, fmt.Errorf("unknown record kind %d", kind)
}

// segmentScan is what scanSegment found in one segment file.
type segmentScan struct {
	records int64 // intact records
	ops     int64 // ops in them
	corrupt int64 // records skipped, plus 1 for an unreadable rest
	end     int64 // end of the last intact record: the file is cut here
	lost    int64 // bytes past end: a torn tail or an unreadable rest
	torn    bool  // the bytes past end are a torn tail (a write cut short)
}

// scanSegment checks the framing of data (a whole segment, size bytes):
//   - a record cut short at the end (a torn write), or a last record whose
//     checksum fails, or a zero-filled tail, is a torn tail: cut off;
//   - a record whose checksum fails but is followed by an intact record is
//     skipped and counted as corrupt;
//   - anything else unreadable in the middle makes the rest of the segment
//     unreadable: cut off and counted as one corrupt record.
func scanSegment(r io.ReaderAt, size int64) (segmentScan, error) {
	var s segmentScan
	buf := make([]byte, 64<<10)
	off := int64(0)
	for off < size {
		body, next, err := readRecord(r, off, size, buf)
		switch {
		case err == nil:
			s.records++
			s.ops += opsIn(body)
			off = next
			s.end = off
			continue
		case errors.Is(err, errBadCRC) && next == size:
			s.torn = true // the last record: its write was cut short
		case errors.Is(err, errBadCRC) && intactAt(r, next, size, buf):
			s.corrupt++
			off = next
			s.end = off
			continue
		case errors.Is(err, errTorn):
			s.torn = true
		case errors.Is(err, errBadCRC), errors.Is(err, errBadLength):
			zero, zerr := allZero(r, off, size)
			if zerr != nil {
				return s, zerr
			}
			if zero {
				s.torn = true
			} else {
				s.corrupt++
			}
		default:
			return s, err
		}
		break
	}
	s.lost = size - s.end
	return s, nil
}

// intactAt reports whether an intact record, or a torn last record, starts
// at off.
func intactAt(r io.ReaderAt, off, size int64, buf []byte) bool {
	if off == size {
		return true
	}
	_, _, err := readRecord(r, off, size, buf)
	return err == nil || errors.Is(err, errTorn)
}

func allZero(r io.ReaderAt, off, size int64) (bool, error) {
	buf := make([]byte, 32<<10)
	for off < size {
		n := min(int64(len(buf)), size-off)
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return false, fmt.Errorf("read segment: %w", err)
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		off += n
	}
	return true, nil
}
