package track

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Region is a Customer.io data center.
type Region string

// The Customer.io regions.
const (
	RegionUS Region = "us"
	RegionEU Region = "eu"
)

// Region base URLs and client defaults.
const (
	// USBaseURL is the Track API of the US region.
	USBaseURL = "https://track.customer.io"
	// EUBaseURL is the Track API of the EU region.
	EUBaseURL = "https://track-eu.customer.io"
	// DefaultTimeout bounds one request, from dial to the end of the body.
	DefaultTimeout = 10 * time.Second
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "cioq-track/1"
	// DefaultDialTimeout bounds a TCP connect of the built-in HTTP client.
	DefaultDialTimeout = 5 * time.Second
	// DefaultTLSHandshakeTimeout bounds a TLS handshake of the built-in HTTP
	// client.
	DefaultTLSHandshakeTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers of
	// the built-in HTTP client.
	DefaultResponseHeaderTimeout = 10 * time.Second
	// DefaultMaxIdleConnsPerHost is how many keep-alive connections the
	// built-in HTTP client keeps per host.
	DefaultMaxIdleConnsPerHost = 64
	// MaxResponseBytes caps how much of a response body is read; the rest is
	// drained (up to a bound) and dropped.
	MaxResponseBytes = 1 << 20
)

// ParseRegion parses "us" or "eu" (case-insensitive, surrounding spaces
// ignored). The empty string is RegionUS.
func ParseRegion(s string) (Region, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "us":
		return RegionUS, nil
	case "eu":
		return RegionEU, nil
	}
	return "", fmt.Errorf("track: unknown region %q (want us or eu)", s)
}

// BaseURL returns the region's Track API base URL, or "" for an unknown
// region. The zero Region is RegionUS.
func (r Region) BaseURL() string {
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
	// SiteID is the workspace's Track API site id. Required.
	SiteID string
	// APIKey is the workspace's Track API key. Required. Never logged or
	// printed.
	APIKey string
	// Region picks the base URL when BaseURL is empty. Zero means RegionUS.
	Region Region
	// BaseURL overrides Region, e.g. a fake or a proxy: scheme (http or
	// https), host and optional path prefix. A trailing "/" or "/api/v1"
	// (or "/api/v2") is stripped. Zero means the Region's URL.
	BaseURL string
	// HTTPClient sends the requests. Zero means a client built once per
	// Client with DefaultDialTimeout, DefaultTLSHandshakeTimeout,
	// DefaultResponseHeaderTimeout, keep-alive and
	// DefaultMaxIdleConnsPerHost idle connections per host.
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
	return fmt.Sprintf("track.Config{SiteID:%s Region:%s BaseURL:%s APIKey:%s Timeout:%s UserAgent:%s}",
		c.SiteID, c.Region, c.BaseURL, key, c.Timeout, c.UserAgent)
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
	c.BaseURL = normalizeBaseURL(cmp.Or(strings.TrimSpace(c.BaseURL), c.Region.BaseURL()))
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// normalizeBaseURL strips trailing slashes and an /api/v1 or /api/v2 suffix.
func normalizeBaseURL(s string) string {
	s = strings.TrimRight(s, "/")
	for _, suffix := range []string{"/api/v1", "/api/v2"} {
		s = strings.TrimSuffix(s, suffix)
	}
	return strings.TrimRight(s, "/")
}

// ErrInvalidConfig is returned by NewClient for an unusable Config.
var ErrInvalidConfig = errors.New("track: invalid config")

func (c Config) validate() error {
	var errs []error
	if strings.TrimSpace(c.SiteID) == "" {
		errs = append(errs, errors.New("site id is required"))
	}
	if strings.TrimSpace(c.APIKey) == "" {
		errs = append(errs, errors.New("api key is required"))
	}
	if c.Region.BaseURL() == "" {
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

// Client calls the Track API of one workspace. It is safe for concurrent
// use. It never prints, logs or returns its API key.
type Client struct {
	siteID    string
	auth      string // "Basic ..." header value
	base      string
	hc        *http.Client
	ownHC     bool
	timeout   time.Duration
	userAgent string
	log       *slog.Logger
	bufs      sync.Pool // *bytes.Buffer for BatchEncoded bodies
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
		siteID:    cfg.SiteID,
		auth:      "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.SiteID+":"+cfg.APIKey)),
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
	dialer := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		ResponseHeaderTimeout: DefaultResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * DefaultMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// SiteID returns the workspace's site id.
func (c *Client) SiteID() string { return c.siteID }

// BaseURL returns the normalized base URL requests go to.
func (c *Client) BaseURL() string { return c.base }

// CloseIdleConnections closes the idle keep-alive connections of the
// built-in HTTP client; a caller-supplied Config.HTTPClient is left alone.
func (c *Client) CloseIdleConnections() {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
}

// String renders the client without its key:
// track.Client{site=abc, base=https://track.customer.io, key=REDACTED}.
func (c *Client) String() string {
	if c == nil {
		return "track.Client(nil)"
	}
	return fmt.Sprintf("track.Client{site=%s, base=%s, key=REDACTED}", c.siteID, c.base)
}

// GoString is String: the key never prints.
func (c *Client) GoString() string { return c.String() }

// Format renders String for every verb, so %v, %+v, %#v and %s never show
// the key.
func (c *Client) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }
