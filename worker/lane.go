package worker

import (
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

// lane is the path an op takes through a worker: its asynq queue, its
// batcher and its share of the workspace's rate budget.
type lane uint8

const (
	// laneLive carries single-op tasks of the default queue: one batcher per
	// workspace, the non-critical share of the budget.
	laneLive lane = iota
	// laneCritical carries suppress, unsuppress and delete: its own server
	// and batcher, the whole budget (its reserved share first).
	laneCritical
	// laneBulk carries bulk tasks: many ops in one task, sent as one
	// request, with the tokens live requests leave.
	laneBulk
)

// String is the lane's metric label: "default", "critical" or "bulk".
func (l lane) String() string {
	switch l {
	case laneCritical:
		return task.QueueCritical
	case laneBulk:
		return task.QueueBulk
	}
	return task.QueueDefault
}

// laneOf returns the lane of a single-op task with action a.
func laneOf(a track.Action) lane {
	if task.Critical(a) {
		return laneCritical
	}
	return laneLive
}
