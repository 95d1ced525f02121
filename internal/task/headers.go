package task

import "github.com/hibiken/asynq"

// NewTaskWithHeaders is NewTask with asynq task headers (for example the
// caller's W3C trace context). Nil or empty headers make the same task as
// NewTask.
func NewTaskWithHeaders(p *Payload, headers map[string]string, opts ...asynq.Option) *asynq.Task {
	if len(headers) == 0 {
		return NewTask(p, opts...)
	}
	all := make([]asynq.Option, 0, 2+len(opts))
	all = append(all, asynq.Queue(Queue(p.Workspace, p.Action)), asynq.TaskID(TaskID(p.Workspace, p.OpID)))
	all = append(all, opts...)
	return asynq.NewTaskWithHeaders(TypeName(p.Action), Encode(p), headers, all...)
}
