package hub

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Position
		err  string // substring of the error; "" for success
	}{
		{in: "k3f9a1:12", want: Position{Seq: 12, Epoch: "k3f9a1"}},
		{in: "E:0", want: Position{Seq: 0, Epoch: "E"}},
		{in: "abc:18446744073709551615", want: Position{Seq: 1<<64 - 1, Epoch: "abc"}},
		{in: strings.Repeat("a", 32) + ":1", want: Position{Seq: 1, Epoch: strings.Repeat("a", 32)}},
		{in: "", err: "no ':'"},
		{in: "abc", err: "no ':'"},
		{in: ":12", err: "epoch must be 1 to 32"},
		{in: strings.Repeat("a", 33) + ":1", err: "epoch must be 1 to 32"},
		{in: "ab-c:1", err: "letters and digits"},
		{in: "ab c:1", err: "letters and digits"},
		{in: "é:1", err: "letters and digits"},
		{in: "abc:", err: "seq must be"},
		{in: "abc:-1", err: "seq must be"},
		{in: "abc:+1", err: "seq must be"},
		{in: "abc:01", err: "seq must be"},
		{in: "abc:1.5", err: "seq must be"},
		{in: "abc:1e3", err: "seq must be"},
		{in: "abc: 1", err: "seq must be"},
		{in: "abc:1:2", err: "seq must be"},
		{in: "abc:18446744073709551616", err: "out of range"},
	} {
		got, err := ParsePosition(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParsePosition(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("%v.String() = %q, want %q", got, s, tc.in)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadPosition) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePosition(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
}

// Whatever a client sends as since=, ParsePosition answers without
// panicking, and what it accepts prints back exactly as it was sent.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"k3f9a1:12", "E:0", ":", "a:01", "a:18446744073709551616", "a-b:1", "é:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("ParsePosition(%q): error %v does not wrap ErrBadPosition", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("ParsePosition(%q) = %v, which prints as %q", s, p, p.String())
		}
		if checkEpoch(p.Epoch) != nil {
			t.Fatalf("ParsePosition(%q) accepted epoch %q", s, p.Epoch)
		}
	})
}

func TestFramePosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Position
		ok   bool
	}{
		{`{"seq":12,"epoch":"k3f9a1","type":"packet"}`, Position{12, "k3f9a1"}, true},
		{`{"seq":1,"epoch":"E"}`, Position{1, "E"}, true},
		{`{"seq":18446744073709551615,"epoch":"E","x":1}`, Position{1<<64 - 1, "E"}, true},
		{`{"seq":18446744073709551616,"epoch":"E","x":1}`, Position{}, false},
		{`{"seq":012,"epoch":"E","x":1}`, Position{}, false},
		{`{"seq":,"epoch":"E","x":1}`, Position{}, false},
		{`{"seq":1,"epoch":"","x":1}`, Position{}, false},
		{`{"seq":1,"epoch":"E-1","x":1}`, Position{}, false},
		{`{"seq":1,"epoch":"E"`, Position{}, false},
		{`{"seq":1,"epoch":"E"x`, Position{}, false},
		{`{"seq":1, "epoch":"E","x":1}`, Position{}, false},
		{`{"type":"event","seq":1}`, Position{}, false},
		{`{"seq":1,"epoch":"` + strings.Repeat("a", 33) + `","x":1}`, Position{}, false},
		{``, Position{}, false},
		{`{"seq":`, Position{}, false},
	} {
		got, ok := framePosition([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("framePosition(%s) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// framePosition reads any frame without panicking, and what it reads is
// exactly what the broker would have written.
func FuzzFramePosition(f *testing.F) {
	for _, s := range []string{`{"seq":12,"epoch":"k3f9a1","type":"packet"}`, `{"seq":1,"epoch":"E"}`, `{"type":"grabbed"}`, `{"seq":99999999999999999999,"epoch":"E"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, ok := framePosition(frame)
		if !ok {
			return
		}
		head := `{"seq":` + p.String()[len(p.Epoch)+1:] + `,"epoch":"` + p.Epoch + `"`
		if !strings.HasPrefix(string(frame), head) || checkEpoch(p.Epoch) != nil {
			t.Fatalf("framePosition(%q) = %v, which the broker writes as %s", frame, p, head)
		}
	})
}
