package fake

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
)

// ControlPrefix is where the control API lives. It needs no auth, ignores
// faults and is not counted in the ledger. It sits beside the Track API
// fake's /_fake/, so `cioq fakecio` serves both on one listener.
const ControlPrefix = "/_fake/cdp/"

// DefaultControlRequestsLimit is how many requests GET
// /_fake/cdp/requests returns without ?limit.
const DefaultControlRequestsLimit = 100

// control serves the control API:
//
//	GET  /_fake/cdp/ledger             the Ledger as JSON
//	GET  /_fake/cdp/faults             the active Faults as JSON
//	PUT  /_fake/cdp/faults             replace the Faults (JSON body); answers them
//	POST /_fake/cdp/reset              Reset; answers 204
//	GET  /_fake/cdp/requests?limit=N   the newest N recorded requests, oldest first
//	                                   (zero or absent: DefaultControlRequestsLimit;
//	                                   negative: all kept)
//	GET  /_fake/cdp/users?workspace=W  every person's UserState in workspace W, by key;
//	                                   with &key=K only that person's (404 when unknown)
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
	case ControlPrefix + "ledger":
		if only(http.MethodGet) {
			writeValue(w, http.StatusOK, s.Ledger())
		}
	case ControlPrefix + "faults":
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
	case ControlPrefix + "reset":
		if only(http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	case ControlPrefix + "requests":
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
	case ControlPrefix + "users":
		if !only(http.MethodGet) {
			return
		}
		ws, key := r.URL.Query().Get("workspace"), r.URL.Query().Get("key")
		if key == "" {
			writeValue(w, http.StatusOK, s.Users(ws))
			return
		}
		u, ok := s.User(ws, key)
		if !ok {
			writeJSON(w, http.StatusNotFound, controlError("no such person in that workspace"))
			return
		}
		writeValue(w, http.StatusOK, u)
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
