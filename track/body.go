package track

import (
	"encoding/json"
	"strings"
)

// ErrorBody is the Track API's error body: {"meta":{"error":"..."}} or
// {"meta":{"errors":["..."]}}.
type ErrorBody struct {
	Meta struct {
		Error  string   `json:"error,omitempty"`
		Errors []string `json:"errors,omitempty"`
	} `json:"meta"`
}

// ErrorMessage extracts the message of a Track API error body, joining
// meta.errors with "; ". It returns "" when body is not of that shape.
func ErrorMessage(body []byte) string {
	var eb ErrorBody
	if len(body) == 0 || json.Unmarshal(body, &eb) != nil {
		return ""
	}
	if eb.Meta.Error != "" {
		return eb.Meta.Error
	}
	return strings.Join(eb.Meta.Errors, "; ")
}

// BatchResponse is the body of a v2 batch answer with per-op errors.
type BatchResponse struct {
	// Errors are the failed ops, by batch_index.
	Errors []ItemError `json:"errors,omitempty"`
	// Omitted counts the failed ops left out of Errors (cioq's answers
	// list at most MaxItemErrors). When it is not zero, the outcome of
	// the ops after the last one listed is unknown to the client.
	Omitted int `json:"errors_omitted,omitempty"`
}
