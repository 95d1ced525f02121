// Package task is the one place that knows how a cioq operation is stored in
// an asynq task: the task type ("cio:" + action; "cio:pipelines:" + action
// for a Pipelines API call), the lane (queue) an action runs on, the
// deterministic task id, and the compact binary payload. An op of either API
// (API) is stored alike: a Pipelines call carries the Track action and
// person it means, so lanes, order and tombstones treat it as that op.
//
// The producer builds a task with NewTask; the worker reads it back with
// FromTask (or Decode):
//
//	p := &task.Payload{
//		Workspace:  "default",
//		OpID:       "01J9Z3...",
//		Action:     track.ActionEvent,
//		Person:     "id:u1",
//		EnqueuedAt: now,
//		Op:         opJSON, // from track.EncodeOp
//	}
//	t := task.NewTask(p, asynq.MaxRetry(25)) // type "cio:event", queue "default", TaskID "default:01J9Z3..."
//
//	// in a handler
//	p, err := task.FromTask(t) // errors.Is(err, task.ErrCorrupt) on anything malformed
//
// The payload format is versioned (the first byte) so a later format can be
// read beside this one during a rolling upgrade.
package task
