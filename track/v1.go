package track

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Event is a v1 event (track, anonymous track).
type Event struct {
	// Name is the event name (for a page view, the URL). Required, at most
	// MaxEventNameBytes.
	Name string `json:"name"`
	// ID is the event id, a ULID; Customer.io drops an event whose id it has
	// seen. Empty sends none.
	ID string `json:"id,omitempty"`
	// Type is "event" or "page". Empty sends none (an event).
	Type string `json:"type,omitempty"`
	// Timestamp is the unix time in seconds of the event. Zero sends none
	// (Customer.io uses the time it receives the call).
	Timestamp int64 `json:"timestamp,omitempty"`
	// Data are the event properties; their JSON is at most
	// MaxEventDataBytes.
	Data map[string]any `json:"data,omitempty"`
}

// V1Device is a push device as v1 add device takes it.
type V1Device struct {
	// ID is the device token. Required.
	ID string `json:"id"`
	// Platform is "ios" or "android". Required.
	Platform string `json:"platform"`
	// LastUsed is the unix time in seconds the device was last used. Zero
	// sends none.
	LastUsed int64 `json:"last_used,omitempty"`
	// Attributes are optional device attributes.
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Identify creates or updates the person id with attrs (PUT
// /api/v1/customers/{id}). The optional "_timestamp" (unix seconds) and
// "_update" (true: only update an existing person) are passed as attrs.
func (c *Client) Identify(ctx context.Context, id string, attrs map[string]any) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	if len(attrs) > MaxAttributes {
		return &ValidationError{Field: "attributes", Reason: fmt.Sprintf("has %d attributes, limit %d", len(attrs), MaxAttributes), Limit: MaxAttributes, Got: len(attrs)}
	}
	if err := validateAttrMap("attributes", attrs, true); err != nil {
		return err
	}
	if attrs == nil {
		attrs = map[string]any{}
	}
	return c.sendJSON(ctx, http.MethodPut, customerPath(id), attrs)
}

// Track records the event ev for the person id (POST
// /api/v1/customers/{id}/events).
func (c *Client) Track(ctx context.Context, id string, ev Event) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	if err := ev.validate(); err != nil {
		return err
	}
	return c.sendJSON(ctx, http.MethodPost, customerPath(id)+"/events", ev)
}

// TrackAnonymous records ev for an anonymous person (POST /api/v1/events,
// with "anonymous_id" in the body; an empty anonymousID sends none).
func (c *Client) TrackAnonymous(ctx context.Context, anonymousID string, ev Event) error {
	if anonymousID != "" {
		if err := checkPathID("anonymous_id", anonymousID); err != nil {
			return err
		}
	}
	if err := ev.validate(); err != nil {
		return err
	}
	body := struct {
		Event
		AnonymousID string `json:"anonymous_id,omitempty"`
	}{ev, anonymousID}
	return c.sendJSON(ctx, http.MethodPost, "/api/v1/events", body)
}

// Suppress deletes the person id and makes Customer.io ignore later calls
// for that identifier (POST /api/v1/customers/{id}/suppress).
func (c *Client) Suppress(ctx context.Context, id string) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	return c.send(ctx, request{method: http.MethodPost, path: customerPath(id) + "/suppress"})
}

// Unsuppress lifts a suppression (POST /api/v1/customers/{id}/unsuppress).
// It does not bring the deleted profile back.
func (c *Client) Unsuppress(ctx context.Context, id string) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	return c.send(ctx, request{method: http.MethodPost, path: customerPath(id) + "/unsuppress"})
}

// Delete deletes the person id (DELETE /api/v1/customers/{id}).
func (c *Client) Delete(ctx context.Context, id string) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	return c.send(ctx, request{method: http.MethodDelete, path: customerPath(id)})
}

// AddDevice adds or updates a push device of the person id (PUT
// /api/v1/customers/{id}/devices, body {"device":{...}}).
func (c *Client) AddDevice(ctx context.Context, id string, d V1Device) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	if d.ID == "" {
		return invalid("device.id", "is required")
	}
	if err := checkString("device.id", "device id", d.ID, MaxAttributeValueBytes); err != nil {
		return err
	}
	if d.Platform == "" {
		return invalid("device.platform", "is required")
	}
	if err := checkString("device.platform", "platform", d.Platform, MaxAttributeNameBytes); err != nil {
		return err
	}
	if d.LastUsed < 0 || d.LastUsed > MaxTimestamp {
		return invalid("device.last_used", "must be unix seconds (not milliseconds), not negative")
	}
	if err := validateAttrMap("device.attributes", d.Attributes, true); err != nil {
		return err
	}
	body := struct {
		Device V1Device `json:"device"`
	}{d}
	return c.sendJSON(ctx, http.MethodPut, customerPath(id)+"/devices", body)
}

// DeleteDevice removes the device deviceID of the person id (DELETE
// /api/v1/customers/{id}/devices/{device_id}).
func (c *Client) DeleteDevice(ctx context.Context, id, deviceID string) error {
	if err := checkPathID("id", id); err != nil {
		return err
	}
	if deviceID == "" {
		return invalid("device_id", "is required")
	}
	if err := checkString("device_id", "device id", deviceID, MaxAttributeValueBytes); err != nil {
		return err
	}
	return c.send(ctx, request{method: http.MethodDelete, path: customerPath(id) + "/devices/" + url.PathEscape(deviceID)})
}

// Merge merges the secondary person into the primary one (POST
// /api/v1/merge_customers). Each names one person by exactly one of id,
// email, cio_id or phone.
func (c *Client) Merge(ctx context.Context, primary, secondary Identifiers) error {
	op := Op{Action: ActionMerge, Primary: &primary, Secondary: &secondary}
	if err := validatePeople(&op); err != nil {
		return err
	}
	body := struct {
		Primary   Identifiers `json:"primary"`
		Secondary Identifiers `json:"secondary"`
	}{primary, secondary}
	return c.sendJSON(ctx, http.MethodPost, "/api/v1/merge_customers", body)
}

func (ev Event) validate() error {
	if strings.TrimSpace(ev.Name) == "" {
		return invalid("name", "is required")
	}
	if err := checkString("name", "name", ev.Name, MaxEventNameBytes); err != nil {
		return err
	}
	if ev.Type != "" && ev.Type != "event" && ev.Type != "page" {
		return invalid("type", `must be "event" or "page"`)
	}
	if err := checkString("id", "event id", ev.ID, MaxIdentifierBytes); err != nil {
		return err
	}
	if ev.Timestamp < 0 || ev.Timestamp > MaxTimestamp {
		return invalid("timestamp", "must be unix seconds (not milliseconds), not negative")
	}
	if err := validateAttrMap("data", ev.Data, false); err != nil {
		return err
	}
	if len(ev.Data) > 0 {
		n, err := jsonSize(ev.Data)
		if err != nil {
			return invalid("data", "cannot be encoded as JSON: "+err.Error())
		}
		if n > MaxEventDataBytes {
			return tooBig("data", "event data", n, MaxEventDataBytes)
		}
	}
	return nil
}

// checkPathID checks a person identifier that goes into a v1 path or body.
func checkPathID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	return checkString(field, "identifier", id, MaxIdentifierBytes)
}

func customerPath(id string) string { return "/api/v1/customers/" + url.PathEscape(id) }

// sendJSON encodes v (no HTML escaping) and sends it.
func (c *Client) sendJSON(ctx context.Context, method, path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return invalid("", "cannot be encoded as JSON: "+err.Error())
	}
	return c.send(ctx, request{method: method, path: path, body: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))})
}
