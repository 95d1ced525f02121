package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// maxImportLine bounds one JSON line (a v2 op is at most 32 KB; keys and
// workspace add little).
const maxImportLine = 64 * 1024

// importSummary is what `cioq import` reports at the end.
type importSummary struct {
	Read       int           `json:"read"`
	Enqueued   int           `json:"enqueued"`
	Duplicates int           `json:"duplicates"`
	Invalid    []invalidLine `json:"invalid"`
	Elapsed    time.Duration `json:"-"`
}

type invalidLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

func newImportCmd(g *globals) *cobra.Command {
	var asJSON bool
	var runName string
	var useBulk func(isFile bool) bool
	cmd := &cobra.Command{
		Use:   "import [FILE|-]",
		Short: "Enqueue operations from JSON Lines (one Track v2 person op or Pipelines call per line)",
		Long: `import reads JSON Lines, one operation per line: a Customer.io Track v2 person op
("type":"person"), e.g.

  {"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase","attributes":{"amount":10}}

or a Pipelines API call ("type" identify, track, page, screen, group or alias, as
in a /v1/batch), e.g.

  {"type":"track","userId":"u1","event":"Purchase","messageId":"m-1","properties":{"amount":10}}

and enqueues each through the producer; a call goes to the workspace's Pipelines
API (its cdp_api_key, else the line is invalid). A line may carry "key" (its
idempotency key) and "workspace". Without a key, the op id is derived from the line's
content and how many times that content came before in the input: every line,
repeated or not, is an op of its own (suppress, unsuppress, suppress are three
ops), and running the same input again (or a longer one it starts, such as a
file that was cut short) enqueues nothing twice. Two imports holding the same
line within the done-marker TTL (24 h) would share its op: name each import
with --run NAME to keep them apart. An invalid line is reported with its line
number and skipped; nothing of it is queued. A call without a messageId gets one
derived from its op id, the same on every run. A file is imported in bulk (--bulk, the default for a file: ops packed
into bulk tasks of up to 2,000, each delivered in one request; suppress,
unsuppress and delete still go one by one to the critical lane); standard input,
or --bulk=false, queues one task per op. Interrupted and run again on the same
file, import queues only what is missing and nothing is delivered twice. Exit status: 0 when every line was enqueued or already present, 1 when a
line was invalid, 2 on usage or configuration errors.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			name := "-"
			size := int64(-1)
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageError(err)
				}
				defer f.Close()
				in, name = f, args[0]
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				}
			}
			bulk := useBulk(name != "-")
			keys := newImportKeys(runName)
			conn, err := cfg.Redis.ConnOpt()
			if err != nil {
				return usageError(err)
			}
			p, err := producer.New(producer.Config{Redis: conn, KeyPrefix: cfg.KeyPrefix,
				Workspace: cfg.Workspaces[0].Name, PipelinesWorkspaces: pipelinesWorkspaces(cfg), MaxRetry: cfg.Worker.MaxRetry})
			if err != nil {
				return usageError(err)
			}
			defer p.Close(context.Background())
			var progress io.Writer
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) && !asJSON {
				progress = f
			}
			var sum importSummary
			if bulk {
				sum, err = importLinesBulk(cmd.Context(), p, in, size, progress, keys) // import_bulk.go
			} else {
				sum, err = importLines(cmd.Context(), p, in, progress, keys)
			}
			if err != nil {
				return err
			}
			printImportSummary(cmd.OutOrStdout(), name, sum, asJSON)
			if len(sum.Invalid) > 0 {
				return exitError{code: 1, err: fmt.Errorf("%d invalid line(s)", len(sum.Invalid))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().StringVar(&runName, "run", "", "name of this import: op ids of lines without a key derive from it, the line and its repeat count, so imports of different names never share an op")
	useBulk = bulkFlag(cmd)
	return cmd
}

// importLine is one parsed line: the op (or call) plus cioq's own fields.
type importLine struct {
	op *track.Op
	// call and its encoding, for a Pipelines call (op is nil then).
	call      *cdp.Call
	callJSON  []byte
	key       string
	workspace string
}

// parseImportLine splits "key" and "workspace" off a line and validates the
// rest: a Pipelines call when its "type" is a call type (identify, track,
// page, screen, group, alias), else a v2 op.
func parseImportLine(line []byte) (importLine, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return importLine{}, fmt.Errorf("not a JSON object: %w", err)
	}
	var il importLine
	for name, dst := range map[string]*string{"key": &il.key, "workspace": &il.workspace} {
		if raw, ok := fields[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return importLine{}, fmt.Errorf("%q must be a string", name)
			}
			delete(fields, name)
		}
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return importLine{}, err
	}
	var typ string
	if json.Unmarshal(fields["type"], &typ) == nil && cdp.Type(typ).Valid() {
		call, enc, err := cdp.DecodeCall(rest, "")
		if err != nil {
			return importLine{}, err
		}
		il.call, il.callJSON = call, enc
		return il, nil
	}
	op, err := track.ValidateRawOp(rest)
	if err != nil {
		return importLine{}, err
	}
	il.op = op
	return il, nil
}

// importKeys gives the op id of a line without a key: derived from the
// run name (--run, may be empty), the workspace, the line's content and how
// many times that content came before in the input. Every line is an op of
// its own (a repeated line is the next occurrence), and a re-run over the
// same input, or over a longer one it is the start of (an interrupted or
// growing file), maps each line to the same op.
type importKeys struct {
	run    string
	counts map[[sha256.Size]byte]int
}

func newImportKeys(run string) *importKeys {
	return &importKeys{run: run, counts: map[[sha256.Size]byte]int{}}
}

// key returns the op id of line in workspace.
func (k *importKeys) key(workspace string, line []byte) string {
	sum := sha256.Sum256(line)
	n := k.counts[sum]
	k.counts[sum] = n + 1
	h := sha256.New()
	h.Write([]byte(k.run))
	h.Write([]byte{0})
	h.Write([]byte(workspace))
	h.Write([]byte{0})
	h.Write(sum[:])
	fmt.Fprintf(h, "\x00%d", n)
	return "imp-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func importLines(ctx context.Context, p *producer.Producer, in io.Reader, progress io.Writer, keys *importKeys) (importSummary, error) {
	var sum importSummary
	start := time.Now()
	var bar *progressbar.ProgressBar
	if progress != nil {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("ops"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
		defer bar.Finish()
	}
	r := bufio.NewReaderSize(in, 64*1024)
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
			return sum, fmt.Errorf("import: read line %d: %w", lineNo, err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		sum.Read++
		il, perr := parseImportLine(line)
		if perr != nil {
			sum.Invalid = append(sum.Invalid, invalidLine{Line: lineNo, Error: perr.Error()})
			continue
		}
		res, eerr := p.Enqueue(ctx, importOp(il, keys, line))
		switch {
		case eerr != nil && errors.Is(eerr, track.ErrInvalidOp):
			sum.Invalid = append(sum.Invalid, invalidLine{Line: lineNo, Error: eerr.Error()})
			continue
		case eerr != nil:
			return sum, fmt.Errorf("import: line %d: %w", lineNo, eerr)
		case res.Duplicate:
			sum.Duplicates++
		default:
			sum.Enqueued++
		}
		if bar != nil {
			_ = bar.Add(1)
		}
		if err == io.EOF {
			break
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

type errLineTooLong struct{ n int }

func (e errLineTooLong) Error() string {
	return fmt.Sprintf("line longer than %d bytes", e.n)
}

// readLine returns the next line without its newline; an over-long line is
// consumed whole and reported as errLineTooLong.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxImportLine {
			buf = nil
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return []byte{}, errLineTooLong{maxImportLine}
		}
		buf = append(buf, chunk...)
		switch err {
		case nil:
			return buf[:len(buf)-1], nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, io.EOF
		default:
			return nil, err
		}
	}
}

func printImportSummary(w io.Writer, name string, s importSummary, asJSON bool) {
	if asJSON {
		if s.Invalid == nil {
			s.Invalid = []invalidLine{}
		}
		b, _ := json.MarshalIndent(s, "", "  ")
		fmt.Fprintln(w, string(b))
		return
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Enqueued+s.Duplicates) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "import %s: read %d, enqueued %d, duplicates %d, invalid %d (%.0f ops/s)\n",
		name, s.Read, s.Enqueued, s.Duplicates, len(s.Invalid), rate)
	for i, inv := range s.Invalid {
		if i == 50 {
			fmt.Fprintf(w, "  ... and %d more invalid lines\n", len(s.Invalid)-50)
			break
		}
		fmt.Fprintf(w, "  line %d: %s\n", inv.Line, inv.Error)
	}
}
