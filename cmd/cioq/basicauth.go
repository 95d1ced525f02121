package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// basicAuth requires HTTP basic auth for requests whose path starts with one
// of prefixes (the dashboard and op lookups) and passes every other request
// (health probes, metrics) through. Credentials are compared in constant
// time, on their hashes so their lengths do not leak either.
func basicAuth(next http.Handler, user, password string, prefixes ...string) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		protected := false
		for _, p := range prefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				protected = true
				break
			}
		}
		if protected {
			u, pw, ok := r.BasicAuth()
			gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(pw))
			if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
				rw.Header().Set("WWW-Authenticate", `Basic realm="cioq", charset="UTF-8"`)
				http.Error(rw, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(rw, r)
	})
}
