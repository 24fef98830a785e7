package static

import (
	"io/fs"
	"strings"
	"testing"
)

func TestFSHasThePage(t *testing.T) {
	f := FS()
	index, err := fs.ReadFile(f, "index.html")
	if err != nil {
		t.Fatalf("index.html: %v", err)
	}
	for _, hook := range []string{`id="name-input"`, `id="join-button"`, `id="balance"`, `id="messages"`, `id="packet-dialog"`, `id="open-overlay"`, `id="rain-dialog"`, `id="conn-status"`, `src="js/main.js"`, `href="app.css"`} {
		if !strings.Contains(string(index), hook) {
			t.Errorf("index.html lacks %s", hook)
		}
	}
	// Every module that main.js imports, directly or not, must be embedded.
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		src, err := fs.ReadFile(f, "js/"+name)
		if err != nil {
			t.Errorf("js/%s: %v", name, err)
			return
		}
		for _, line := range strings.Split(string(src), "\n") {
			i := strings.Index(line, "from './")
			if i < 0 || !strings.HasPrefix(strings.TrimSpace(line), "import") && !strings.HasPrefix(strings.TrimSpace(line), "}") && !strings.HasPrefix(strings.TrimSpace(line), "export") {
				continue
			}
			rest := line[i+len("from './"):]
			if j := strings.IndexByte(rest, '\''); j > 0 {
				walk(rest[:j])
			}
		}
	}
	walk("main.js")
	if _, err := fs.Stat(f, "app.css"); err != nil {
		t.Errorf("app.css: %v", err)
	}
	if matches, _ := fs.Glob(f, "js/*.test.mjs"); len(matches) != 0 {
		t.Errorf("tests embedded: %v", matches)
	}
}
