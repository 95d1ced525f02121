package task

import (
	"strings"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/track"
)

// TypePrefix starts every cioq task type: the type of a Track API op is
// TypePrefix + action, e.g. "cio:identify", "cio:event", "cio:suppress".
const TypePrefix = "cio:"

// TypePrefixPipelines starts the task type of a Pipelines API op:
// "cio:pipelines:" + the Track action it means, e.g.
// "cio:pipelines:identify". A type of its own keeps such a task away from a
// worker that has no handler for it (during a rolling upgrade asynq retries
// it instead of handing it to a handler that cannot read it), and names the
// API in asynqmon.
const TypePrefixPipelines = TypePrefix + "pipelines:"

// The lanes. Critical carries the operations that remove or block a person
// (suppress, unsuppress, delete), so they never wait behind bulk traffic.
const (
	// QueueCritical is the asynq queue of suppress, unsuppress and delete.
	QueueCritical = "critical"
	// QueueDefault is the asynq queue of every other action.
	QueueDefault = "default"
)

// TypeName returns the asynq task type of a Track API op with action a:
// TypePrefix + action.
func TypeName(a track.Action) string { return TypePrefix + string(a) }

// TypeNameOf returns the asynq task type of an op of api with action a:
// TypeName(a) for APITrack, TypePrefixPipelines + action for APIPipelines.
func TypeNameOf(api API, a track.Action) string {
	if api == APIPipelines {
		return TypePrefixPipelines + string(a)
	}
	return TypeName(a)
}

// TypeName returns the asynq task type of p: TypeNameOf(p.API, p.Action).
func (p *Payload) TypeName() string { return TypeNameOf(p.API, p.Action) }

// ActionOf returns the action a Track API task type names. ok is false when
// taskType is not a cioq Track type or names an action the Track API does
// not know.
func ActionOf(taskType string) (a track.Action, ok bool) {
	api, a, ok := ParseType(taskType)
	if !ok || api != APITrack {
		return "", false
	}
	return a, true
}

// ParseType returns the API and action a single-op task type names
// (TypeNameOf's inverse). ok is false when taskType is not one.
func ParseType(taskType string) (api API, a track.Action, ok bool) {
	rest, found := strings.CutPrefix(taskType, TypePrefixPipelines)
	if found {
		api = APIPipelines
	} else if rest, found = strings.CutPrefix(taskType, TypePrefix); !found {
		return 0, "", false
	}
	a = track.Action(rest)
	if !a.Valid() {
		return 0, "", false
	}
	return api, a, true
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

// NewTask returns the asynq task for p: type p.TypeName(), payload
// Encode(p), and the options Queue(p.Workspace, p.Action) and TaskID(p.Workspace, p.OpID)
// ahead of opts (a later option of the same kind wins, as in asynq). The
// lane and task id do not depend on the API: ops of both APIs share a
// workspace's lanes and op ids.
func NewTask(p *Payload, opts ...asynq.Option) *asynq.Task {
	all := make([]asynq.Option, 0, 2+len(opts))
	all = append(all, asynq.Queue(Queue(p.Workspace, p.Action)), asynq.TaskID(TaskID(p.Workspace, p.OpID)))
	all = append(all, opts...)
	return asynq.NewTask(p.TypeName(), Encode(p), all...)
}

// FromTask decodes the payload of t and checks that its API and action
// match the task type. Any mismatch or malformed payload is an error
// matching ErrCorrupt.
func FromTask(t *asynq.Task) (*Payload, error) {
	api, a, ok := ParseType(t.Type())
	if !ok {
		return nil, &CorruptError{Offset: -1, Reason: "unknown task type " + quote(t.Type())}
	}
	p, err := Decode(t.Payload())
	if err != nil {
		return nil, err
	}
	if p.Action != a {
		return nil, &CorruptError{Offset: -1, Reason: "task type " + quote(t.Type()) + " carries action " + quote(string(p.Action))}
	}
	if p.API != api {
		return nil, &CorruptError{Offset: -1, Reason: "task type " + quote(t.Type()) + " carries an op of the " + p.API.String() + " API"}
	}
	return p, nil
}
