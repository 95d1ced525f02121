package track

// Reasons of the batch_index errors answered for ops that fail validation.
const (
	// ReasonInvalid: the op breaks a shape rule (missing identifiers, unknown
	// action, malformed JSON, ...).
	ReasonInvalid = "invalid"
	// ReasonTooLarge: the op breaks a size or count limit.
	ReasonTooLarge = "too_large"
)

// MaxItemErrors is the most batch_index errors a batch answer of cioq's
// ingest and of the fake lists: a batch of many bad ops gets the first
// MaxItemErrors, by index, and the count of the others in
// BatchResponse.Omitted, so the answer stays small whatever the request
// holds.
const MaxItemErrors = 100
