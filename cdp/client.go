package cdp

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cioq/cioq/track"
)

// Region is a Customer.io data center: the same value as track.Region, so
// one workspace setting picks both APIs' hosts.
type Region = track.Region

// The Customer.io regions.
const (
	RegionUS = track.RegionUS
	RegionEU = track.RegionEU
)

// Region base URLs and client defaults.
const (
	// USBaseURL is the Pipelines API of the US region.
	USBaseURL = "https://cdp.customer.io"
	// EUBaseURL is the Pipelines API of the EU region.
	EUBaseURL = "https://cdp-eu.customer.io"
	// StrictModeHeader is the header that makes the Pipelines API answer
	// validation and auth failures with 400/401 instead of a 200 that drops
	// the call. The Client sends it, set to "1", on every request.
	StrictModeHeader = "X-Strict-Mode"
	// DefaultTimeout bounds one request, from dial to the end of the body.
	DefaultTimeout = 10 * time.Second
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "cioq-cdp/1"
	// DefaultMaxIdleConnsPerHost is how many keep-alive connections the
	// built-in HTTP client keeps per host.
	DefaultMaxIdleConnsPerHost = 64
	// MaxResponseBytes caps how much of a response body is read.
	MaxResponseBytes = 1 << 20
)

// BaseURL returns the Pipelines API base URL of region r (the zero Region
// is RegionUS), or "" for an unknown region.
func BaseURL(r Region) string {
	switch cmp.Or(r, RegionUS) {
	case RegionUS:
		return USBaseURL
	case RegionEU:
		return EUBaseURL
	}
	return ""
}

// Config configures a Client. It prints with the API key redacted.
type Config struct {
	// APIKey is the workspace's Pipelines API key (the Basic-auth user
	// name; the password is blank). Required. Never logged or printed.
	APIKey string
	// Region picks the base URL when BaseURL is empty. Zero means RegionUS.
	Region Region
	// BaseURL overrides Region, e.g. a fake or a proxy: scheme (http or
	// https), host and optional path prefix. A trailing "/" or "/v1" is
	// stripped. Zero means the Region's URL.
	BaseURL string
	// HTTPClient sends the requests. Zero means a client built once per
	// Client with bounded dial, TLS and header waits and
	// DefaultMaxIdleConnsPerHost keep-alive connections per host.
	HTTPClient *http.Client
	// Timeout bounds each request. Zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request. Zero means DefaultUserAgent.
	UserAgent string
	// Logger receives debug records of requests (method, path, status,
	// duration; never keys or bodies). Nil means no logging.
	Logger *slog.Logger
}

// String renders the config with the API key redacted.
func (c Config) String() string {
	key := ""
	if c.APIKey != "" {
		key = "REDACTED"
	}
	return fmt.Sprintf("cdp.Config{Region:%s BaseURL:%s APIKey:%s Timeout:%s UserAgent:%s}",
		c.Region, c.BaseURL, key, c.Timeout, c.UserAgent)
}

// GoString renders the config with the API key redacted.
func (c Config) GoString() string { return c.String() }

// Format renders the config with the API key redacted for every verb.
func (c Config) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

func formatRedacted(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}

func (c Config) withDefaults() Config {
	c.Region = cmp.Or(c.Region, RegionUS)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.UserAgent = cmp.Or(c.UserAgent, DefaultUserAgent)
	c.BaseURL = NormalizeBaseURL(cmp.Or(strings.TrimSpace(c.BaseURL), BaseURL(c.Region)))
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// NormalizeBaseURL strips trailing slashes and a "/v1" suffix: Customer.io
// documents the base URL both as https://cdp.customer.io and as
// https://cdp.customer.io/v1.
func NormalizeBaseURL(s string) string {
	s = strings.TrimRight(s, "/")
	s = strings.TrimSuffix(s, "/v1")
	return strings.TrimRight(s, "/")
}

// ErrInvalidConfig is returned by NewClient for an unusable Config.
var ErrInvalidConfig = errors.New("cdp: invalid config")

func (c Config) validate() error {
	var errs []error
	if strings.TrimSpace(c.APIKey) == "" {
		errs = append(errs, errors.New("api key is required"))
	}
	if BaseURL(c.Region) == "" {
		errs = append(errs, fmt.Errorf("unknown region %q (want us or eu)", c.Region))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	if err := checkBaseURL(c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the URL, which may hold credentials: keep only
		// the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("base url does not parse: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("base url scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		return errors.New("base url has no host")
	case u.User != nil:
		return errors.New("base url must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("base url must not have a query or fragment")
	}
	return nil
}

// Client calls the Pipelines API of one workspace, in strict mode. It is
// safe for concurrent use. It never prints, logs or returns its API key.
type Client struct {
	auth      string // "Basic ..." header value
	base      string
	hc        *http.Client
	ownHC     bool
	timeout   time.Duration
	userAgent string
	log       *slog.Logger
	now       func() time.Time
}

// NewClient validates cfg and returns a Client. Errors match
// ErrInvalidConfig and never contain the API key.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		auth:      "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.APIKey+":")),
		base:      cfg.BaseURL,
		hc:        cfg.HTTPClient,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		log:       cfg.Logger,
		now:       time.Now,
	}
	if c.hc == nil {
		c.hc, c.ownHC = newHTTPClient(), true
	}
	return c, nil
}

// newHTTPClient builds the default HTTP client: bounded dial, TLS and
// header waits, keep-alive, a deep idle pool per host.
func newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: track.DefaultDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   track.DefaultTLSHandshakeTimeout,
		ResponseHeaderTimeout: track.DefaultResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * DefaultMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// BaseURL returns the normalized base URL requests go to (no "/v1").
func (c *Client) BaseURL() string { return c.base }

// CloseIdleConnections closes the idle keep-alive connections of the
// built-in HTTP client; a caller-supplied Config.HTTPClient is left alone.
func (c *Client) CloseIdleConnections() {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
}

// String renders the client without its key:
// cdp.Client{base=https://cdp.customer.io, key=REDACTED}. The methods that
// print have value receivers, so a copied Client never shows its key
// either.
func (c Client) String() string {
	return fmt.Sprintf("cdp.Client{base=%s, key=REDACTED}", c.base)
}

// GoString is String: the key never prints.
func (c Client) GoString() string { return c.String() }

// Format renders String for every verb, so %v, %+v, %#v and %s never show
// the key.
func (c Client) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

// Send sends one call to its single-call path (POST /v1/identify,
// /v1/track, ...). It validates the call first (EncodeCall); an invalid
// call returns a *ValidationError and nothing is sent. Other outcomes are
// those of BatchEncoded.
func (c *Client) Send(ctx context.Context, call *Call) error {
	b, err := EncodeCall(call)
	if err != nil {
		return err
	}
	return c.send(ctx, call.Type.Path(), b)
}

// Batch encodes calls with EncodeCall and sends them in one batch; see
// BatchEncoded. An invalid call fails the whole call before anything is
// sent, with an error naming its index and wrapping its *ValidationError.
func (c *Client) Batch(ctx context.Context, calls []*Call) error {
	enc := make([][]byte, len(calls))
	for i, call := range calls {
		b, err := EncodeCall(call)
		if err != nil {
			return fmt.Errorf("cdp: batch call %d: %w", i, err)
		}
		enc[i] = b
	}
	return c.BatchEncoded(ctx, enc)
}

// BatchEncoded sends pre-encoded calls (each the output of EncodeCall) in
// one POST /v1/batch, with X-Strict-Mode: 1. The body is built by
// concatenation; calls are not decoded or re-encoded, only checked to be
// non-empty JSON objects of at most MaxCallBytes. It has the shape of
// track.Client.BatchEncoded, so a sender can hold either.
//
// Outcomes:
//   - nil: a 2xx answer; in strict mode every call was accepted (Customer.io
//     processes a messageId once, so calls sent before are not repeated).
//   - *APIError: a non-2xx answer; no call of the request counts as
//     accepted. A 400 means some call was refused; the Pipelines API does
//     not say which (docs/pipelines.md, "Strict mode"): split the batch and
//     resend, which the messageId dedupe makes harmless for calls already
//     taken.
//   - *TransportError: no answer (network error, timeout, reset, or a body
//     that could not be read); the outcome is unknown.
//   - *ValidationError: nothing was sent: no calls is not an error (nil is
//     returned at once), but an empty or oversized call, or a body over
//     MaxBatchBytes, is.
func (c *Client) BatchEncoded(ctx context.Context, calls [][]byte) error {
	if len(calls) == 0 {
		return nil
	}
	for i, call := range calls {
		if len(call) > MaxCallBytes {
			return tooBig(fmt.Sprintf("batch[%d]", i), "call", len(call), MaxCallBytes)
		}
		if len(call) < 2 || call[0] != '{' || call[len(call)-1] != '}' {
			return invalid(fmt.Sprintf("batch[%d]", i), "is not an encoded call (a JSON object)")
		}
	}
	size := EncodedBatchSize(calls)
	if size > MaxBatchBytes {
		return &ValidationError{Field: "batch", Reason: fmt.Sprintf("batch is %d bytes, limit %d", size, MaxBatchBytes), Limit: MaxBatchBytes, Got: size}
	}
	body := make([]byte, 0, size)
	body = append(body, batchPrefix...)
	for i, call := range calls {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, call...)
	}
	body = append(body, batchSuffix...)
	return c.send(ctx, BatchPath, body)
}
