package fake

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/cioq/cioq/internal/wire"
)

// controlPrefix is where the control API lives. It needs no auth, ignores
// faults and is not counted in the ledger.
const controlPrefix = "/_fake/"

// DefaultControlRequestsLimit is how many requests GET /_fake/requests
// returns without ?limit.
const DefaultControlRequestsLimit = 100

// control serves the control API:
//
//	GET  /_fake/ledger            the Ledger as JSON
//	GET  /_fake/faults            the active Faults as JSON
//	PUT  /_fake/faults            replace the Faults (JSON body); answers them
//	POST /_fake/reset             Reset; answers 204
//	GET  /_fake/requests?limit=N  the newest N recorded requests, oldest first
//	                              (N zero or absent: DefaultControlRequestsLimit;
//	                              negative: all kept)
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	only := func(method string) bool {
		if r.Method == method {
			return true
		}
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, controlError("method not allowed"))
		return false
	}
	switch r.URL.Path {
	case controlPrefix + "ledger":
		if only(http.MethodGet) {
			writeValue(w, http.StatusOK, s.Ledger())
		}
	case controlPrefix + "faults":
		switch r.Method {
		case http.MethodGet:
			writeValue(w, http.StatusOK, s.Faults())
		case http.MethodPut:
			var f Faults
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
				writeJSON(w, http.StatusBadRequest, controlError("faults: "+err.Error()))
				return
			}
			if err := s.SetFaults(f); err != nil {
				writeJSON(w, http.StatusBadRequest, controlError(err.Error()))
				return
			}
			writeValue(w, http.StatusOK, s.Faults())
		default:
			w.Header().Set("Allow", "GET, PUT")
			writeJSON(w, http.StatusMethodNotAllowed, controlError("method not allowed"))
		}
	case controlPrefix + "reset":
		if only(http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	case controlPrefix + "requests":
		if !only(http.MethodGet) {
			return
		}
		limit := DefaultControlRequestsLimit
		if q := r.URL.Query().Get("limit"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, controlError("limit must be an integer"))
				return
			}
			limit = cmp.Or(n, limit)
		}
		s.mu.Lock()
		reqs := s.log.newest(max(limit, 0))
		s.mu.Unlock()
		writeValue(w, http.StatusOK, reqs)
	default:
		writeJSON(w, http.StatusNotFound, controlError("no such control endpoint"))
	}
}

func controlError(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, controlError(err.Error()))
		return
	}
	writeJSON(w, status, b)
}

// strictUnmarshal decodes b into v, rejecting unknown fields.
func strictUnmarshal(b []byte, v any) error {
	return wire.DecodeStrict(b, v)
}
