package fake

import (
	"net/http"
	"net/url"
	"strings"
)

// handleFunc answers one routed, authorized, admitted request; params are
// the unescaped path wildcards in order.
type handleFunc func(s *Server, c *call, params []string)

// endpoint is one Track API path with a handler per method.
type endpoint struct {
	segs    []string // "{}" is a wildcard for one non-empty segment
	methods map[string]handleFunc
}

// newEndpoints returns the Track API paths the fake answers (TRACK_API.md).
func newEndpoints() []endpoint {
	return []endpoint{
		{segs: split("api/v1/customers/{}"), methods: map[string]handleFunc{
			http.MethodPut: (*Server).v1Call, http.MethodDelete: (*Server).v1Call}},
		{segs: split("api/v1/customers/{}/events"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v1Call}},
		{segs: split("api/v1/events"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v1Call}},
		{segs: split("api/v1/customers/{}/suppress"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v1Call}},
		{segs: split("api/v1/customers/{}/unsuppress"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v1Call}},
		{segs: split("api/v1/customers/{}/devices"), methods: map[string]handleFunc{
			http.MethodPut: (*Server).v1Call}},
		{segs: split("api/v1/customers/{}/devices/{}"), methods: map[string]handleFunc{
			http.MethodDelete: (*Server).v1Call}},
		{segs: split("api/v1/merge_customers"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v1Call}},
		{segs: split("api/v2/entity"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v2Entity}},
		{segs: split("api/v2/batch"), methods: map[string]handleFunc{
			http.MethodPost: (*Server).v2Batch}},
	}
}

func split(p string) []string { return strings.Split(p, "/") }

// match is the result of routing: a handler and its params, or, when the
// path exists but not for the method, the methods allowed.
type match struct {
	handle handleFunc
	params []string
	allow  []string
}

// route finds the endpoint for method and escapedPath. Wildcards are matched
// on the escaped path, so an id holding "%2F" stays one segment.
func route(endpoints []endpoint, method, escapedPath string) match {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var allow []string
	for _, e := range endpoints {
		params, ok := e.match(segs)
		if !ok {
			continue
		}
		if h := e.methods[method]; h != nil {
			return match{handle: h, params: params}
		}
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
			if e.methods[m] != nil {
				allow = append(allow, m)
			}
		}
	}
	return match{allow: allow}
}

func (e endpoint) match(segs []string) ([]string, bool) {
	if len(segs) != len(e.segs) {
		return nil, false
	}
	var params []string
	for i, want := range e.segs {
		if want != "{}" {
			if segs[i] != want {
				return nil, false
			}
			continue
		}
		p, err := url.PathUnescape(segs[i])
		if err != nil || p == "" {
			return nil, false
		}
		params = append(params, p)
	}
	return params, true
}
