package producer

import (
	"hash/fnv"
)

// HashRouter returns a Config.Route that shards people across workspaces by
// a hash of the person's identifier (FNV-1a of track.Identifiers.Key()), so
// every op of one person lands in the same workspace. Ops without a person
// (merge names its primary) go to the first workspace.
func HashRouter(workspaces ...string) func(op *Op) string {
	ws := append([]string(nil), workspaces...)
	return func(op *Op) string {
		if len(ws) == 0 {
			return ""
		}
		key := op.Person().Key()
		if key == "" {
			return ws[0]
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(key))
		return ws[h.Sum32()%uint32(len(ws))]
	}
}
