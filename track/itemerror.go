package track

import "errors"

// Reasons of the batch_index errors answered for ops that fail validation.
const (
	// ReasonInvalid: the op breaks a shape rule (missing identifiers, unknown
	// action, malformed JSON, ...).
	ReasonInvalid = "invalid"
	// ReasonTooLarge: the op breaks a size or count limit.
	ReasonTooLarge = "too_large"
)

// NewItemError turns err, a validation error of the op at batch index i
// (from ValidateRawOp or ValidateOp), into the batch_index error the Track
// API answers with: Reason ReasonTooLarge when a size or count limit was
// broken, else ReasonInvalid; Field and Message from the *ValidationError
// (Message is err's text for any other error).
func NewItemError(i int, err error) ItemError {
	it := ItemError{Index: i, Reason: ReasonInvalid, Message: err.Error()}
	var ve *ValidationError
	if errors.As(err, &ve) {
		it.Field, it.Message = ve.Field, ve.Reason
		if ve.Limit > 0 {
			it.Reason = ReasonTooLarge
		}
	}
	return it
}

// MaxItemErrors is the most batch_index errors a batch answer lists (ingest
// and the fake): a batch of many bad ops gets the first MaxItemErrors, by
// index, and the count of the others in BatchResponse.Omitted, so the
// answer stays small whatever the request holds.
const MaxItemErrors = 100

// NewBatchResponse returns the answer listing errs (sorted by index): the
// first MaxItemErrors of them and how many more there are.
func NewBatchResponse(errs []ItemError) BatchResponse {
	if len(errs) <= MaxItemErrors {
		return BatchResponse{Errors: errs}
	}
	return BatchResponse{Errors: errs[:MaxItemErrors:MaxItemErrors], Omitted: len(errs) - MaxItemErrors}
}
