package web

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

func resultCases() []resultEvent {
	amount, remaining, zero := int64(188), 12, 0
	return []resultEvent{
		{Type: "result", Ref: "g1", OK: true, PacketID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Amount: &amount, Remaining: &remaining},
		{Type: "result", Ref: "g2", OK: true, PacketID: "p", Amount: &amount, Remaining: &zero},
		{Type: "result", Ref: "c3", OK: true},
		{Type: "result", Ref: "", OK: true},
		{Type: "result", Ref: "g4", Error: &ErrorObject{Code: "sold_out", Message: "all shares are taken"}},
		{Type: "result", Ref: `q"uote\back<tag>&amp;`, Error: &ErrorObject{Code: "invalid_request", Message: `unknown message type "x\n"`}},
		{Type: "result", Ref: "红包\u2028\u2029\x7f\x01", Error: &ErrorObject{Code: "rate_limited", Message: "slow down \t"}},
		{Type: "result", Ref: "bad utf8 \xff\xfe", OK: true},
		{Type: "result", Ref: "a&b", OK: true},
		{Type: "result", Ref: "a>b", OK: true},
		{Type: "result", Ref: "é", OK: true},
	}
}

// The hand-written result frame is byte for byte what encoding/json makes.
func TestAppendResultMatchesEncodingJSON(t *testing.T) {
	for _, ev := range resultCases() {
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendResult(nil, &ev); string(got) != string(want) {
			t.Errorf("appendResult:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendResult(f *testing.F) {
	for _, ev := range resultCases() {
		msg := ""
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		f.Add(ev.Ref, ev.PacketID, msg, int64(7), 3, ev.OK)
	}
	f.Fuzz(func(t *testing.T, ref, id, msg string, amount int64, remaining int, ok bool) {
		ev := resultEvent{Type: "result", Ref: ref, OK: ok, PacketID: id}
		if ok {
			ev.Amount, ev.Remaining = &amount, &remaining
		} else {
			ev.Error = &ErrorObject{Code: "c", Message: msg}
		}
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendResult(nil, &ev); string(got) != string(want) {
			t.Fatalf("appendResult:\n got %s\nwant %s", got, want)
		}
	})
}

var parseCases = []string{
	`{"type":"grab","ref":"g1","packet_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}`,
	` { "type" : "grab" ,	"ref":"g1", "packet_id":"p", "password":"芝麻开门" } `,
	`{"type":"chat","ref":"c1","text":"hello"}`,
	`{"type":"ping"}`,
	`{}`,
	`{"type":"grab","type":"chat"}`,
	`{"Type":"grab"}`,                // case-folded key: encoding/json's
	`{"type":"grab","extra":1}`,      // unknown field: encoding/json's
	`{"type":"grab","ref":"a\"b"}`,   // escape: encoding/json's
	`{"type":"grab","ref":"\u00e9"}`, // escape
	`{"type":"grab","packet_id":5}`,  // wrong type
	`{"type":"grab","ref":null}`,     // null
	`{"type":"grab",}`,               // bad JSON
	`{"type":"grab"} x`,              // trailing garbage
	`{"type":"grab"`,                 // truncated
	`{"type":"gr` + "\x01" + `ab"}`,  // control character
	`["type","grab"]`,                // not an object
	`"grab"`,                         // not an object
	``,                               // empty
	`{"type":"grab","text":"` + "\x7f" + `"}`,
}

// parseClientMessage gives what encoding/json gives, fast path or not.
func TestParseClientMessageMatchesEncodingJSON(t *testing.T) {
	for _, msg := range parseCases {
		checkParse(t, []byte(msg))
	}
	var m clientMessage
	if !parseFlat([]byte(parseCases[0]), &m) || !parseFlat([]byte(parseCases[1]), &m) {
		t.Error("the plain shape of a grab was not taken by the fast path")
	}
}

func FuzzParseFlatMatchesEncodingJSON(f *testing.F) {
	for _, msg := range parseCases {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) { checkParse(t, msg) })
}

// checkParse compares parseClientMessage with a plain encoding/json decode
// of the same frame, as parseClientMessage was before its fast path.
func checkParse(t *testing.T, msg []byte) {
	t.Helper()
	got, gotErr := parseClientMessage(msg)
	var want clientMessage
	var wantErr error
	if !utf8.Valid(msg) {
		want, wantErr = clientMessage{}, errNotJSON
	} else if err := json.Unmarshal(msg, &want); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			wantErr = err
		} else {
			want, wantErr = clientMessage{}, errNotJSON
		}
	}
	if got != want || (gotErr == nil) != (wantErr == nil) || (errors.Is(wantErr, errNotJSON) != errors.Is(gotErr, errNotJSON)) {
		t.Fatalf("parseClientMessage(%q) = %+v, %v; encoding/json gives %+v, %v", msg, got, gotErr, want, wantErr)
	}
}

// The grab round trip's JSON: the hand-written way against encoding/json.
func BenchmarkGrabFrames(b *testing.B) {
	msg := []byte(`{"type":"grab","ref":"g123","packet_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}`)
	amount, remaining := int64(188), 12
	ev := resultEvent{Type: "result", Ref: "g123", OK: true, PacketID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Amount: &amount, Remaining: &remaining}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		var buf [256]byte
		for b.Loop() {
			if _, err := parseClientMessage(msg); err != nil {
				b.Fatal(err)
			}
			_ = appendResult(buf[:0], &ev)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m clientMessage
			if err := json.Unmarshal(msg, &m); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
