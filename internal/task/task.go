package task

import (
	"strings"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/track"
)

// TypePrefix starts every cioq task type: the type is TypePrefix + action,
// e.g. "cio:identify", "cio:event", "cio:suppress".
const TypePrefix = "cio:"

// The lanes. Critical carries the operations that remove or block a person
// (suppress, unsuppress, delete), so they never wait behind bulk traffic.
const (
	// QueueCritical is the asynq queue of suppress, unsuppress and delete.
	QueueCritical = "critical"
	// QueueDefault is the asynq queue of every other action.
	QueueDefault = "default"
)

// TypeName returns the asynq task type of an action: TypePrefix + action.
func TypeName(a track.Action) string { return TypePrefix + string(a) }

// ActionOf returns the action a task type names. ok is false when taskType
// is not a cioq type or names an action the Track API does not know.
func ActionOf(taskType string) (a track.Action, ok bool) {
	rest, found := strings.CutPrefix(taskType, TypePrefix)
	if !found {
		return "", false
	}
	a = track.Action(rest)
	if !a.Valid() {
		return "", false
	}
	return a, true
}

// DefaultWorkspace is the workspace of ops that name none. Its lanes are the
// plain QueueCritical and QueueDefault queues.
const DefaultWorkspace = "default"

// Queue returns the asynq queue (lane) of an op of workspace with action a:
// the critical lane for suppress, unsuppress and delete, the default lane
// otherwise. Every workspace has its own two lanes, so a backlog in one
// cannot starve another: DefaultWorkspace's are QueueCritical and
// QueueDefault, any other's are "critical.<workspace>" and
// "default.<workspace>".
func Queue(workspace string, a track.Action) string {
	critical, def := Lanes(workspace)
	if Critical(a) {
		return critical
	}
	return def
}

// Lanes returns the critical and default queue of workspace.
func Lanes(workspace string) (critical, def string) {
	if workspace == DefaultWorkspace || workspace == "" {
		return QueueCritical, QueueDefault
	}
	return QueueCritical + "." + workspace, QueueDefault + "." + workspace
}

// TaskID returns the asynq task id of an op: workspace + ":" + opID. It is
// deterministic, so enqueueing the same op twice conflicts
// (asynq.ErrTaskIDConflict) instead of queueing it twice. A workspace name
// must not contain ':' or two (workspace, op id) pairs could share an id;
// the producer rejects such names.
func TaskID(workspace, opID string) string { return workspace + ":" + opID }

// NewTask returns the asynq task for p: type TypeName(p.Action), payload
// Encode(p), and the options Queue(p.Workspace, p.Action) and TaskID(p.Workspace, p.OpID)
// ahead of opts (a later option of the same kind wins, as in asynq).
func NewTask(p *Payload, opts ...asynq.Option) *asynq.Task {
	all := make([]asynq.Option, 0, 2+len(opts))
	all = append(all, asynq.Queue(Queue(p.Workspace, p.Action)), asynq.TaskID(TaskID(p.Workspace, p.OpID)))
	all = append(all, opts...)
	return asynq.NewTask(TypeName(p.Action), Encode(p), all...)
}

// FromTask decodes the payload of t and checks that its action matches the
// task type. Any mismatch or malformed payload is an error matching
// ErrCorrupt.
func FromTask(t *asynq.Task) (*Payload, error) {
	a, ok := ActionOf(t.Type())
	if !ok {
		return nil, &CorruptError{Reason: "unknown task type " + quote(t.Type())}
	}
	p, err := Decode(t.Payload())
	if err != nil {
		return nil, err
	}
	if p.Action != a {
		return nil, &CorruptError{Reason: "task type " + quote(t.Type()) + " carries action " + quote(string(p.Action))}
	}
	return p, nil
}
