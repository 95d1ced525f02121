package track

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// BasicAuth returns the site id and API key of r's Basic Authorization
// header, as the Track API reads it: the credentials in standard base64
// (RFC 7617, what net/http's Request.BasicAuth reads) or in URL-safe
// base64, which go-customerio v3 sends (base64.URLEncoding). ok is false
// when r has no Basic credentials.
func BasicAuth(r *http.Request) (siteID, apiKey string, ok bool) {
	if siteID, apiKey, ok = r.BasicAuth(); ok {
		return siteID, apiKey, true
	}
	const prefix = "Basic "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	enc := strings.TrimSpace(h[len(prefix):])
	for _, e := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.RawStdEncoding} {
		b, err := e.DecodeString(enc)
		if err != nil {
			continue
		}
		if siteID, apiKey, ok = strings.Cut(string(b), ":"); ok {
			return siteID, apiKey, true
		}
	}
	return "", "", false
}
