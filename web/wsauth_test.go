package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWSCredentials(t *testing.T) {
	tests := []struct {
		name      string
		url       string
		protocols string // the Sec-WebSocket-Protocol request header
		token     string
		accept    string // the subprotocol answered, "" for none
	}{
		{"browser", "/ws?room=r", "hongbao.v1, bearer.a.b.c", "a.b.c", "hongbao.v1"},
		{"bearer first", "/ws?room=r", "bearer.a.b.c, hongbao.v1", "a.b.c", "hongbao.v1"},
		{"query only", "/ws?room=r&token=q.r.s", "", "q.r.s", ""},
		{"subprotocol wins over query", "/ws?room=r&token=q.r.s", "hongbao.v1, bearer.a.b.c", "a.b.c", "hongbao.v1"},
		{"protocol without bearer", "/ws?room=r", "hongbao.v1", "", "hongbao.v1"},
		{"protocol without bearer, query", "/ws?room=r&token=q.r.s", "hongbao.v1", "q.r.s", "hongbao.v1"},
		{"empty bearer falls back to query", "/ws?room=r&token=q.r.s", "hongbao.v1, bearer.", "q.r.s", "hongbao.v1"},
		{"bearer without our protocol", "/ws?room=r", "bearer.a.b.c", "a.b.c", ""},
		{"first bearer wins", "/ws?room=r", "hongbao.v1, bearer.one, bearer.two", "one", "hongbao.v1"},
		{"prefix is case-sensitive", "/ws?room=r", "hongbao.v1, Bearer.a.b.c", "", "hongbao.v1"},
		{"foreign protocols only", "/ws?room=r", "chat, superchat", "", ""},
		{"nothing", "/ws?room=r", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			if tt.protocols != "" {
				r.Header.Set("Sec-WebSocket-Protocol", tt.protocols)
			}
			token, accept := wsCredentials(r)
			if token != tt.token {
				t.Errorf("token %q, want %q", token, tt.token)
			}
			if got := accept.Get("Sec-WebSocket-Protocol"); got != tt.accept {
				t.Errorf("answers subprotocol %q, want %q", got, tt.accept)
			}
		})
	}
}
