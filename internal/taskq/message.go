package taskq

import (
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// DefaultTimeout is the task timeout asynq's client gives a task enqueued
// without a timeout or deadline (30 min); the enqueue script gives the same.
const DefaultTimeout = 30 * time.Minute

// message is the part of asynq's TaskMessage (asynq v0.26,
// internal/proto/asynq.proto) a cioq task sets. encode writes it in the
// protobuf wire form asynq stores under the task key's "msg" field; the
// other fields (retried, error_msg, last_failed_at, deadline, unique_key,
// group_key, retention, completed_at) are zero and left out, as proto3
// leaves them out.
type message struct {
	Type    string
	Payload []byte
	Headers map[string]string
	ID      string
	Queue   string
	Retry   int
	Timeout time.Duration
}

// TaskMessage field numbers (asynq.proto).
const (
	fieldType    = 1
	fieldPayload = 2
	fieldID      = 3
	fieldQueue   = 4
	fieldRetry   = 5
	fieldTimeout = 8
	fieldHeaders = 15
)

// encode returns the message's wire form and the offset in it where the
// payload's bytes start. Fields are written in field-number order, as
// asynq's own encoder (proto.Marshal) writes them, so a task written by the
// enqueue script is byte for byte the task asynq's client would write
// (message_test.go checks it).
func (m *message) encode() (b []byte, payloadAt int) {
	n := 16 + len(m.Type) + len(m.Payload) + len(m.ID) + len(m.Queue)
	for k, v := range m.Headers {
		n += 8 + len(k) + len(v)
	}
	b = make([]byte, 0, n)
	b = appendString(b, fieldType, m.Type)
	if len(m.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(m.Payload)))
		payloadAt = len(b)
		b = append(b, m.Payload...)
	}
	b = appendString(b, fieldID, m.ID)
	b = appendString(b, fieldQueue, m.Queue)
	if m.Retry != 0 {
		b = protowire.AppendTag(b, fieldRetry, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(int32(m.Retry))))
	}
	if t := int64(m.Timeout / time.Second); t != 0 {
		b = protowire.AppendTag(b, fieldTimeout, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t))
	}
	if len(m.Headers) > 0 {
		keys := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// A map entry carries its key and value even when empty.
			var e []byte
			e = protowire.AppendTag(e, 1, protowire.BytesType)
			e = protowire.AppendString(e, k)
			e = protowire.AppendTag(e, 2, protowire.BytesType)
			e = protowire.AppendString(e, m.Headers[k])
			b = protowire.AppendTag(b, fieldHeaders, protowire.BytesType)
			b = protowire.AppendBytes(b, e)
		}
	}
	return b, payloadAt
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}
