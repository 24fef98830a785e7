package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// restRoutes are the POST routes whose input FuzzRESTBodies varies: the
// body, and the path parameter (room or packet id) where there is one.
var restRoutes = []struct {
	name string
	path func(param string) string
}{
	{"session", func(string) string { return "/api/v1/sessions" }},
	{"packet", func(p string) string { return "/api/v1/rooms/" + url.PathEscape(p) + "/packets" }},
	{"rain", func(p string) string { return "/api/v1/rooms/" + url.PathEscape(p) + "/rains" }},
	{"grab", func(p string) string { return "/api/v1/packets/" + url.PathEscape(p) + "/grab" }},
}

// FuzzRESTBodies sends arbitrary bodies and path parameters to POST
// /sessions, /rooms/:room/packets, /rooms/:room/rains and /packets/:id/grab
// through the whole Echo app, on a real Redis. Whatever comes in, the answer
// is a success or a refusal with a documented code, never a panic (Echo's
// Recover would turn one into "unavailable", which a healthy Redis never
// causes) and never an uncoded failure; and the books balance afterwards.
func FuzzRESTBodies(f *testing.F) {
	seeds := []struct {
		route uint8
		param string
		body  string
	}{
		{0, "", `{"name":"小明"}`},
		{0, "", `{"name":"  "}`},
		{0, "", `{"name":"Alice\u200b"}`},
		{0, "", `{"name":7}`},
		{0, "", ``},
		{1, "lobby", `{"kind":"lucky","total":1000,"count":10,"greeting":"恭喜发财"}`},
		{1, "lobby", `{"kind":"equal","total":1001,"count":10}`},
		{1, "lobby", `{"kind":"lucky","total":10.5,"count":1}`},
		{1, "lobby", `{"kind":"lucky","total":1e3,"count":1}`},
		{1, "lobby", `{"kind":"lucky","total":"100","count":1}`},
		{1, "lobby", `{"kind":"lucky","total":99999999999999999999,"count":1}`},
		{1, "lobby", `{"kind":"lucky","total":100,"count":1,"ttl_seconds":-5}`},
		{1, "a}b", `{"kind":"lucky","total":100,"count":1}`},
		{2, "lobby", `{"packets":3,"total_per_packet":100,"count_per_packet":2,"duration_seconds":1}`},
		{2, "lobby", `{"packets":0,"total_per_packet":100,"count_per_packet":2,"duration_seconds":1}`},
		{2, "lobby", `{"packets":3,"total_per_packet":100,"count_per_packet":2,"duration_seconds":100000}`},
		{3, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", ``},
		{3, "{x}", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.route, s.param, []byte(s.body))
	}
	st := newStack(f, stackOptions{web: stackConfig()})
	_, tok := st.user(f, "fuzz-sender", 1_000_000_000)
	e := st.app.Echo()
	f.Cleanup(func() { st.auditClean(f) })

	f.Fuzz(func(t *testing.T, route uint8, param string, body []byte) {
		r := restRoutes[int(route)%len(restRoutes)]
		target := r.path(param)
		if _, err := url.ParseRequestURI(target); err != nil {
			return // not a request a client could send
		}
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if rec.Code < 300 {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %q: %d with invalid JSON %q", r.name, param, rec.Code, rec.Body)
			}
			return
		}
		var eb ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%s %q %q: %d %q is not an error body", r.name, param, body, rec.Code, rec.Body)
		}
		if _, known := statusOf[eb.Error.Code]; !known || eb.Error.Message == "" {
			t.Fatalf("%s %q %q: %d with undocumented error %+v", r.name, param, body, rec.Code, eb.Error)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: %d %+v with Redis up: a panic or an uncoded failure", r.name, param, body, rec.Code, eb.Error)
		}
	})
}
