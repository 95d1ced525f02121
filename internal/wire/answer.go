package wire

import (
	"encoding/json"
	"errors"

	"github.com/cioq/cioq/track"
)

// ErrorBody returns the JSON error body the Track API answers with:
// {"meta":{"error":"..."}} for one message, {"meta":{"errors":[...]}} for
// several (track.ErrorBody, which track.ErrorMessage reads).
func ErrorBody(msgs ...string) []byte {
	var eb track.ErrorBody
	if len(msgs) == 1 {
		eb.Meta.Error = msgs[0]
	} else {
		eb.Meta.Errors = msgs
	}
	b, _ := json.Marshal(eb)
	return b
}

// NewItemError turns err, a validation error of the op at batch index i
// (from track.ValidateRawOp or track.ValidateOp), into the batch_index
// error the Track API answers with: Reason track.ReasonTooLarge when a size
// or count limit was broken, else track.ReasonInvalid; Field and Message
// from the *track.ValidationError (Message is err's text for any other
// error).
func NewItemError(i int, err error) track.ItemError {
	it := track.ItemError{Index: i, Reason: track.ReasonInvalid, Message: err.Error()}
	var ve *track.ValidationError
	if errors.As(err, &ve) {
		it.Field, it.Message = ve.Field, ve.Reason
		if ve.Limit > 0 {
			it.Reason = track.ReasonTooLarge
		}
	}
	return it
}

// NewBatchResponse returns the answer listing errs (sorted by index): the
// first track.MaxItemErrors of them and how many more there are.
func NewBatchResponse(errs []track.ItemError) track.BatchResponse {
	if len(errs) <= track.MaxItemErrors {
		return track.BatchResponse{Errors: errs}
	}
	return track.BatchResponse{Errors: errs[:track.MaxItemErrors:track.MaxItemErrors], Omitted: len(errs) - track.MaxItemErrors}
}
