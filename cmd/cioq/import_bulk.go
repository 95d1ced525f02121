package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// bulkFlag adds --bulk to cmd and returns a function that says whether it is
// on: its value when given, else isFile (bulk is the default for file input).
func bulkFlag(cmd *cobra.Command) func(isFile bool) bool {
	var bulk bool
	cmd.Flags().BoolVar(&bulk, "bulk", false, "pack ops into bulk tasks (up to 2,000 ops, one v2 request each); "+
		"the default when the input is a file; --bulk=false queues one task per op")
	return func(isFile bool) bool {
		if cmd.Flags().Changed("bulk") {
			return bulk
		}
		return isFile
	}
}

// countingReader counts the bytes read through it (progress by bytes: the
// ETA of a file of known size).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// importLinesBulk is importLines on the bulk path: every valid line goes to
// a producer.BulkWriter, which packs the ops into bulk tasks (critical ops
// still go one by one to the critical lane). size is the input's size in
// bytes for the progress bar's ETA (≤ 0 when unknown).
//
// Resumable: op ids come from the line's key, else from the workspace and
// the line's content (importKey), and a bulk task's id from its op ids, so
// running the same file again after an interruption queues only what is
// missing, and the workers' done-markers skip every op already delivered.
func importLinesBulk(ctx context.Context, p *producer.Producer, in io.Reader, size int64, progress io.Writer, keys *importKeys) (importSummary, error) {
	var sum importSummary
	start := time.Now()
	w, err := p.NewBulkWriter(producer.BulkOptions{})
	if err != nil {
		return sum, err
	}
	cr := &countingReader{r: in}
	var bar *progressbar.ProgressBar
	lastDescribe := time.Time{}
	ops := 0
	describe := func(force bool) {
		if bar == nil || (!force && time.Since(lastDescribe) < 200*time.Millisecond) {
			return
		}
		lastDescribe = time.Now()
		rate := float64(ops) / max(time.Since(start).Seconds(), 1e-9)
		bar.Describe(fmt.Sprintf("importing: %d ops, %.0f ops/s", ops, rate))
		if size > 0 {
			_ = bar.Set64(cr.n)
		} else {
			_ = bar.Set(ops)
		}
	}
	if progress != nil {
		total := int64(-1)
		if size > 0 {
			total = size
		}
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("importing"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Finish()
	}
	r := bufio.NewReaderSize(cr, 64*1024)
	var runErr error
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(r)
		if err == io.EOF && line == nil {
			break
		}
		if err != nil && err != io.EOF {
			var tooLong errLineTooLong
			if errors.As(err, &tooLong) {
				sum.Read++
				sum.Invalid = append(sum.Invalid, invalidLine{Line: lineNo, Error: err.Error()})
				continue
			}
			runErr = fmt.Errorf("import: read line %d: %w", lineNo, err)
			break
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			sum.Read++
			il, perr := parseImportLine(line)
			if perr != nil {
				sum.Invalid = append(sum.Invalid, invalidLine{Line: lineNo, Error: perr.Error()})
			} else if aerr := w.Add(ctx, importOp(il, keys, line)); aerr != nil {
				if !errors.Is(aerr, track.ErrInvalidOp) {
					runErr = fmt.Errorf("import: line %d: %w", lineNo, aerr)
					break
				}
				sum.Invalid = append(sum.Invalid, invalidLine{Line: lineNo, Error: aerr.Error()})
			} else {
				ops++
				describe(false)
			}
		}
		if err == io.EOF {
			break
		}
	}
	res, cerr := w.Close(ctx)
	describe(true)
	sum.Enqueued = res.Enqueued + res.Spooled
	sum.Duplicates = res.Duplicates
	sum.Elapsed = time.Since(start)
	if runErr == nil && cerr != nil {
		runErr = fmt.Errorf("import: %w", cerr)
	}
	return sum, runErr
}

// importOp is the producer op of a parsed line: its key, else one keys
// derives (for a Pipelines call too: its messageId, when it has none, is
// derived from that key, the same on every run).
func importOp(il importLine, keys *importKeys, line []byte) producer.Op {
	key := il.key
	if key == "" {
		key = keys.key(il.workspace, line)
	}
	if il.call != nil {
		return producer.Op{Call: il.call, CallJSON: il.callJSON, Key: key, Workspace: il.workspace}
	}
	op := producer.Op{Op: *il.op, Key: key, Workspace: il.workspace}
	if il.op.Timestamp > 0 {
		op.Timestamp = time.Unix(il.op.Timestamp, 0)
	}
	return op
}
